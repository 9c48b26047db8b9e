"""A scratch database on the embedded (or configured) server for one benchmark: migrated, then dropped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, pool, text

from leadpilot.infra import ensure_infra
from leadpilot.settings import get_settings
from models.migrate import upgrade


@contextmanager
def scratch_database(name: str) -> Iterator[tuple[str, str]]:
    """Yield (owner_url, app_url) of a freshly migrated database `name`, dropped afterwards."""
    base = make_url(ensure_infra().database_url)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    owner = base.set(database=name).render_as_string(hide_password=False)
    settings = get_settings()
    app = base.set(database=name, username=settings.app_db_role, password=settings.app_db_password)
    try:
        upgrade(owner)
        yield owner, app.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank, rounded to 0.01."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 2)
