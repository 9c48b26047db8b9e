"""Test databases on the embedded server: a template (migrated + demo agency) copied per session/module."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import fasteners
from sqlalchemy import create_engine, make_url, pool, text
from sqlalchemy.orm import Session

TEMPLATE_DB = "lp_template"
DEMO_SEED = 42
DEMO_AS_OF = date(2026, 11, 24)


def url_for(server_url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def _admin(server_url: str):  # type: ignore[no-untyped-def]
    return create_engine(url_for(server_url, "postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)


def fingerprint() -> str:
    """Hash of everything that shapes the template: migrations, models and the demo seed."""
    from models.migrate import seed_fingerprint

    return seed_fingerprint()


def drop_database(server_url: str, name: str) -> None:
    """Drop `name`, closing whatever still connects to it."""
    with _admin(server_url).connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """(Re)create `name`, empty or as a copy of `template`; return its URL."""
    drop_database(server_url, name)
    with _admin(server_url).connect() as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    return url_for(server_url, name)


def ensure_template(server_url: str, lock_dir: Path) -> str:
    """Build the template database unless one with the current fingerprint exists; return its name."""
    from models.migrate import upgrade

    wanted = fingerprint()
    lock_dir.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(lock_dir / "template.lock")):
        with _admin(server_url).connect() as conn:
            current = conn.execute(
                text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"),
                {"n": TEMPLATE_DB},
            ).scalar()
        if current == wanted:
            return TEMPLATE_DB
        url = create_database(server_url, TEMPLATE_DB)
        upgrade(url)
        from services.demo_agency import seed_demo

        engine = create_engine(url, poolclass=pool.NullPool)
        with Session(engine) as session, session.begin():
            seed_demo(session=session, seed=DEMO_SEED, as_of=DEMO_AS_OF)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        engine.dispose()
        with _admin(server_url).connect() as conn:
            conn.execute(text(f"COMMENT ON DATABASE \"{TEMPLATE_DB}\" IS '{wanted}'"))
    return TEMPLATE_DB
