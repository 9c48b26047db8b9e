"""Alembic environment: runs as the owner role against DATABASE_URL or the embedded server."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import models
from models.db import owner_url

config = context.config
target_metadata = models.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Leave Alembic's own table and the objects Alembic cannot reflect out of comparisons."""
    return not (type_ == "table" and name == "alembic_version")


def run_migrations_online() -> None:
    """Run migrations on the connection handed in by the caller, or a fresh owner connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or owner_url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=include_object,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


run_migrations_online()
