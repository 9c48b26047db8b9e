"""Programmatic Alembic: upgrade, autogenerate comparison; used by the CLI and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool, text

import models

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (and at `url` when given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, *, revision: str = "head", app_password: str | None = None) -> None:
    """Migrate the database at `url` to `revision`; optionally (re)set the app role's password."""
    command.upgrade(alembic_config(url), revision)
    if app_password:
        from leadpilot.settings import get_settings

        role = get_settings().app_db_role
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.begin() as conn:
            quoted = conn.exec_driver_sql("SELECT quote_literal(%s)", (app_password,)).scalar_one()
            conn.exec_driver_sql(f'ALTER ROLE "{role}" WITH LOGIN PASSWORD {quoted}')
        engine.dispose()


def drift(url: str) -> list[Any]:
    """Differences autogenerate would write between the models and the database at `url`."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _include_object}
        )
        diff = compare_metadata(ctx, models.metadata)
    engine.dispose()
    return list(diff)


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name == "alembic_version")


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is on, or None before the first migration."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
        rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if exists else None
    engine.dispose()
    return rev


SEED_INPUTS = ("models", "services", "leadpilot/settings.py")


def seed_fingerprint() -> str:
    """A hash of everything that shapes a migrated, seeded database (models, migrations, services with the demo
    seed, settings): a template database built from an older fingerprint is stale."""
    import hashlib

    from leadpilot.settings import PROJECT_ROOT

    digest = hashlib.sha256()
    for folder in SEED_INPUTS:
        root = PROJECT_ROOT / folder
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in {".py", ".yaml"})
        for path in files:
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
