"""The LangGraph checkpointer on the product's Postgres, in its own schema (`langgraph`), outside the
application's tables and migrations. `thread_id` is the conversation id."""

from __future__ import annotations

from functools import lru_cache

from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from sqlalchemy import make_url

from models.db import owner_url

SCHEMA = "langgraph"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@lru_cache(maxsize=1)
def checkpointer() -> PostgresSaver:
    """One pooled saver per process; its tables are created on first use."""
    import psycopg

    url = _libpq(owner_url())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    pool = ConnectionPool(url, min_size=1, max_size=20, open=True, kwargs={
        "autocommit": True, "row_factory": dict_row, "prepare_threshold": None,
        "options": f"-c search_path={SCHEMA}"})
    saver = PostgresSaver(pool)  # type: ignore[arg-type]
    saver.setup()
    return saver
