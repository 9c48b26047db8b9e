"""The LangGraph checkpointer on the product's Postgres, in its own schema (`langgraph`), outside the
application's tables and migrations. `thread_id` is the conversation id.

A `PostgresSaver` serializes every operation behind one lock, even over a connection pool, so each thread
gets its own saver over the shared pool: sixteen concurrent conversations in one process do not queue on
one another's checkpoint writes."""

from __future__ import annotations

import threading
from functools import lru_cache

from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from sqlalchemy import make_url

from models.db import owner_url

SCHEMA = "langgraph"
_local = threading.local()


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@lru_cache(maxsize=1)
def _pool() -> ConnectionPool:
    """One pool per process; the checkpoint tables are created (once) on first use."""
    import psycopg

    url = _libpq(owner_url())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    # checked on checkout: after a database restart the pool would otherwise hand out dead connections
    pool = ConnectionPool(url, min_size=1, max_size=20, open=True, check=ConnectionPool.check_connection, kwargs={
        "autocommit": True, "row_factory": dict_row, "prepare_threshold": None,
        "options": f"-c search_path={SCHEMA}"})
    PostgresSaver(pool).setup()  # type: ignore[arg-type]
    return pool


def checkpointer() -> PostgresSaver:
    """This thread's saver over the process's pool."""
    saver = getattr(_local, "saver", None)
    if saver is None:
        saver = _local.saver = PostgresSaver(_pool())  # type: ignore[arg-type]
    return saver
