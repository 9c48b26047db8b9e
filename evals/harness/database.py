"""One database per scenario trial: a copy of a template (migrated, demo agency, checkpoint tables), made in
~50 ms by CREATE DATABASE ... TEMPLATE. The process is pointed at the copy (settings, engines, the checkpoint
pool and the cached graphs are reset), the scenario runs, the copy is dropped. Trials never share state, so
the order of scenarios cannot change a result."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import fasteners
from sqlalchemy import create_engine, make_url, pool, text
from sqlalchemy.orm import Session

EVAL_TEMPLATE = "lp_eval_template"
DEMO_SEED = 42


def url_for(server_url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def _admin(server_url: str):  # type: ignore[no-untyped-def]
    return create_engine(url_for(server_url, "postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)


def create_copy(server_url: str, name: str, template: str) -> str:
    """(Re)create `name` as a copy of `template`; return its owner URL."""
    engine = _admin(server_url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine.dispose()
    return url_for(server_url, name)


def drop(server_url: str, name: str) -> None:
    """Drop a database this harness created."""
    engine = _admin(server_url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _fingerprint() -> str:
    from models.migrate import seed_fingerprint

    return seed_fingerprint()


def ensure_demo_template(server_url: str, lock_dir: Path) -> str:
    """Build `lp_eval_template` (migrations + the demo agency, seed 42) unless it is current; return its name."""
    from models.migrate import upgrade
    from services.demo_agency import seed_demo

    wanted = _fingerprint()
    lock_dir.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(lock_dir / "eval-template.lock")):
        admin = _admin(server_url)
        with admin.connect() as conn:
            current = conn.execute(text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"),
                {"n": EVAL_TEMPLATE}).scalar()
        if current != wanted:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{EVAL_TEMPLATE}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{EVAL_TEMPLATE}"'))
            url = url_for(server_url, EVAL_TEMPLATE)
            upgrade(url)
            from datetime import date

            engine = create_engine(url, poolclass=pool.NullPool)
            with Session(engine) as session, session.begin():
                seed_demo(session=session, seed=DEMO_SEED, as_of=date(2026, 11, 24))
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"COMMENT ON DATABASE \"{EVAL_TEMPLATE}\" IS '{wanted}'"))
        admin.dispose()
    return EVAL_TEMPLATE


def _with_checkpoint_tables(url: str) -> None:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    from agents.checkpoint import SCHEMA, _libpq

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    with psycopg.connect(_libpq(url), autocommit=True, prepare_threshold=None,
                         options=f"-c search_path={SCHEMA}") as conn:
        from psycopg.rows import dict_row

        conn.row_factory = dict_row  # type: ignore[assignment]
        PostgresSaver(conn).setup()  # type: ignore[arg-type]


def point_process_at(url: str | None) -> None:
    """Make every cached engine, pool and graph of this process use the database at `url` (None: unset): the
    settings, both engines and the session maker, the SMS writers' engine, the checkpointer's pool and every
    thread's saver and lead graph over it, and the remembered "is anyone listening" answers."""
    from agents import checkpoint
    from agents.lead import runner
    from channels import sms_store
    from leadpilot.settings import get_settings
    from models import db
    from services import subscribers

    for cached in (db.get_owner_engine, db.get_app_engine, sms_store._engine):
        if cached.cache_info().currsize:
            cached().dispose()
        cached.cache_clear()
    db._app_sessionmaker.cache_clear()
    if checkpoint._pool.cache_info().currsize:
        checkpoint._pool().close()
    checkpoint._pool.cache_clear()
    checkpoint._local = threading.local()  # every thread's saver, not only this one's
    runner._local = threading.local()
    if url is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    subscribers.forget()


@dataclass
class Databases:
    """Where trial databases come from: a server, the template they copy, and a name prefix."""

    server_url: str
    template: str
    prefix: str

    shared: dict[str, str] = field(default_factory=dict)  # isolation group -> its database (see `trial`)

    @contextmanager
    def base(self) -> Iterator[Databases]:
        """A per-run base copy of the template with the checkpoint tables created once; trials copy it."""
        name = f"{self.prefix}_base"[:63]
        url = create_copy(self.server_url, name, self.template)
        _with_checkpoint_tables(url)
        run = Databases(self.server_url, name, self.prefix)
        try:
            yield run
        finally:
            for shared in run.shared.values():
                drop(self.server_url, shared)
            drop(self.server_url, name)

    @contextmanager
    def trial(self, group: str | None = None) -> Iterator[str]:
        """A fresh copy for one trial, with the process pointed at it; dropped afterwards. Trials of an isolation
        `group` share one copy instead (created on the first, dropped with the base): a trial that builds its own
        business writes only inside its new sub-account and reads nothing outside it, so the previous trial's
        rows, in other sub-accounts and older than its start, cannot change its outcome."""
        if group is not None and group in self.shared:
            name, fresh = self.shared[group], False
        else:
            name, fresh = f"{self.prefix}_{uuid.uuid4().hex[:10]}"[:63], True
        url = create_copy(self.server_url, name, self.template) if fresh else url_for(self.server_url, name)
        if group is not None:
            self.shared[group] = name
        previous = os.environ.get("DATABASE_URL")
        point_process_at(url)
        try:
            yield url
        finally:
            point_process_at(previous)
            if group is None:
                drop(self.server_url, name)
