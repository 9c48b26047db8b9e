"""One embedded Postgres + pgvector and one embedded Redis per test run; a template database copied once
per test session (and per module for tests that must commit); a rolled-back transaction per test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session

from evals.harness.database import point_process_at
from leadpilot.settings import PROJECT_ROOT
from tests import dbutil

TEST_STATE = PROJECT_ROOT / ".leadpilot" / "test"


def pytest_configure(config: pytest.Config) -> None:
    """Point the whole process at a test database copied from the template, before anything reads settings."""
    _travel_to(os.environ.get("LP_TEST_NOW"))
    os.environ["LEADPILOT_STATE_DIR"] = str(TEST_STATE)
    os.environ.pop("APP_DATABASE_URL", None)
    from leadpilot.infra import start_embedded_postgres, start_embedded_redis

    server_url = os.environ.get("TEST_DATABASE_SERVER_URL") or start_embedded_postgres(TEST_STATE / "pg")
    if "REDIS_URL" not in os.environ or "LP_TEST_REDIS_BASE" in os.environ:
        # one Redis database per xdist worker (workers inherit the controller's environment): a Celery worker
        # started by one test process must never take tasks queued by another, which has its own Postgres
        base = os.environ.get("LP_TEST_REDIS_BASE") or start_embedded_redis(TEST_STATE / "redis").rsplit("/", 1)[0]
        os.environ["LP_TEST_REDIS_BASE"] = base
        os.environ["REDIS_URL"] = f"{base}/{int(os.environ.get('PYTEST_XDIST_WORKER', 'gw-1')[2:]) + 1}"
        import redis

        # tasks a stopped worker handed back (acks_late) belong to an earlier run's databases
        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    if not os.environ.get("TEST_DATABASE_SERVER_URL"):
        _tune_for_tests(server_url)
    template = dbutil.ensure_template(server_url, TEST_STATE)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["DATABASE_URL"] = dbutil.create_database(server_url, f"lp_test_{worker}", template=template)
    from leadpilot.settings import get_settings

    get_settings.cache_clear()  # building the template read settings before DATABASE_URL pointed here
    config.stash[SERVER_KEY] = server_url


def _travel_to(moment: str | None) -> None:
    """`LP_TEST_NOW=2027-03-14T06:58:00+00:00`: run the suite with Python's clock starting there and ticking, to
    find tests that hold only at some times of day or dates. Postgres's now() (column defaults) does not move;
    point TEST_DATABASE_SERVER_URL at a server run under libfaketime for that."""
    if not moment:
        return
    import time_machine

    time_machine.travel(datetime.fromisoformat(moment), tick=True).start()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Under CI, stop the embedded test servers; locally they stay up so the next run starts in a second."""
    if os.environ.get("CI") and not os.environ.get("PYTEST_XDIST_WORKER") and SERVER_KEY in config.stash:
        from leadpilot.infra import stop_embedded_postgres, stop_embedded_redis

        stop_embedded_postgres(TEST_STATE / "pg")
        stop_embedded_redis(TEST_STATE / "redis")


def _tune_for_tests(server_url: str) -> None:
    # durability is worthless for throwaway test data; these cut commit latency several-fold
    engine = create_engine(dbutil.url_for(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            conn.execute(text(f"ALTER SYSTEM SET {setting}"))
        conn.execute(text("SELECT pg_reload_conf()"))
    engine.dispose()


SERVER_KEY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def server_url(pytestconfig: pytest.Config) -> str:
    """Owner URL of the embedded test server (database `postgres`)."""
    return pytestconfig.stash[SERVER_KEY]


@dataclass(frozen=True)
class Demo:
    """Ids of the demo agency every test database starts with."""

    agency_id: uuid.UUID
    a: uuid.UUID
    b: uuid.UUID


@pytest.fixture(scope="session")
def demo(owner_engine: Engine) -> Demo:
    """The demo agency seeded into the template (sub-accounts A and B)."""
    with owner_engine.connect() as conn:
        rows = dict(conn.execute(text(
            "SELECT s.slug, s.id FROM sub_accounts s JOIN agencies a ON a.id = s.agency_id "
            "WHERE a.slug = 'digital-marketing-co'"
        )).all())
        agency_id = conn.execute(text("SELECT id FROM agencies WHERE slug = 'digital-marketing-co'")).scalar_one()
    return Demo(agency_id=agency_id, a=rows["restaurant-a"], b=rows["restaurant-b"])


@pytest.fixture
def daytime(demo: Demo, owner_engine: Engine) -> Iterator[None]:
    """Sub-account A without quiet hours for one test: automated texts (reminders, campaigns) go out now rather
    than wait for the morning when the suite runs in a lead's evening. Restored afterwards."""
    with owner_engine.begin() as conn:
        saved = conn.execute(text("SELECT settings->'quiet_hours' FROM sub_accounts WHERE id = :id"),
                             {"id": demo.a}).scalar()
        conn.execute(text("UPDATE sub_accounts SET settings = settings - 'quiet_hours' WHERE id = :id"), {"id": demo.a})
    try:
        yield
    finally:
        if saved is not None:
            with owner_engine.begin() as conn:
                conn.execute(text("UPDATE sub_accounts SET settings = jsonb_set(settings, '{quiet_hours}', "
                                  "CAST(:q AS jsonb)) WHERE id = :id"), {"id": demo.a, "q": json.dumps(saved)})


@pytest.fixture
def demo_day() -> Iterator[datetime]:
    """Python's clock at noon in New York on the demo's as-of date (ticking) for one test: a question relative to
    now ("last month", "this quarter") then asks about months the demo holds, whatever the date of the run."""
    import time_machine

    moment = datetime.combine(dbutil.DEMO_AS_OF, time(12), tzinfo=ZoneInfo("America/New_York"))
    with time_machine.travel(moment, tick=True):
        yield moment


@pytest.fixture(scope="session")
def owner_engine() -> Engine:
    """Engine as the tables' owner (no row-level security)."""
    from models.db import get_owner_engine

    return get_owner_engine()


@pytest.fixture(scope="session")
def app_engine() -> Engine:
    """Engine as the application role (row-level security applies)."""
    from models.db import get_app_engine

    return get_app_engine()


@contextmanager
def _rolled_back(engine: Engine) -> Iterator[Session]:
    conn: Connection = engine.connect()
    outer = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        conn.close()


@pytest.fixture
def db(owner_engine: Engine) -> Iterator[Session]:
    """An owner session inside a transaction that is rolled back after the test."""
    with _rolled_back(owner_engine) as session:
        yield session


@pytest.fixture
def scoped(app_engine: Engine) -> Iterator[Callable[..., Session]]:
    """`scoped(TenantScope)`: an application-role session bound to that tenant, rolled back after the test."""
    from models.db import TenantScope, apply_scope

    with _rolled_back(app_engine) as session:

        def bind(scope: TenantScope) -> Session:
            apply_scope(session, scope)
            return session

        yield bind


@pytest.fixture
def a(scoped: Callable[..., Session], demo: Demo) -> Session:
    """An application-role session scoped to sub-account A of the demo agency, rolled back after the test."""
    from models.db import TenantScope

    return scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))


@pytest.fixture(scope="module")
def fresh_db_url(server_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A private copy of the template for a module whose tests commit (concurrency, workers)."""
    name = f"lp_{request.module.__name__.rsplit('.', 1)[-1]}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"[:63]
    url = dbutil.create_database(server_url, name, template=dbutil.TEMPLATE_DB)
    yield url
    dbutil.drop_database(server_url, name)


def app_url_for(owner_url: str) -> str:
    """The application-role URL for a database given by its owner URL."""
    from sqlalchemy import make_url

    from leadpilot.settings import get_settings

    settings = get_settings()
    return make_url(owner_url).set(username=settings.app_db_role, password=settings.app_db_password).render_as_string(
        hide_password=False
    )



@pytest.fixture(scope="module")
def private_app_database(server_url: str, request: pytest.FixtureRequest, owner_engine: Engine,
                         app_engine: Engine) -> Iterator[str]:
    """The whole process (the API app, services, `owner_session`) on a private copy of the template for one
    module whose tests write freely (a fuzz, a sweep of every write route): the seeded demo that other modules
    read stays as it was. Yields the copy's owner URL; afterwards the process is back on its own database. (The
    session's `owner_engine` and `app_engine` are made first, so they keep pointing at the session's database.)"""
    name = f"lp_private_{request.module.__name__.rsplit('.', 1)[-1]}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    name = name[:63]
    url = dbutil.create_database(server_url, name, template=dbutil.TEMPLATE_DB)
    previous = os.environ["DATABASE_URL"]
    point_process_at(url)
    try:
        yield url
    finally:
        # what the module's writes handed to workers (agent turns, sends) names rows of the copy: a real worker
        # started by a later test would work through that backlog first, against a database that is gone
        from workers.app import celery_app

        celery_app.control.purge()
        point_process_at(previous)
        dbutil.drop_database(server_url, name)
