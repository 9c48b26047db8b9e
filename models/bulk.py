"""Many rows in one short statement: `INSERT ... SELECT * FROM unnest(<one array per column>)`.

A multi-row VALUES insert of 500 rows is a 5,000-placeholder statement that SQLAlchemy compiles and psycopg
re-parses on every batch (too long for its query cache); here the statement text depends only on the columns,
so it is prepared once, and each column travels as one typed array. Row-level security, defaults, triggers
and constraints apply as for any INSERT (it is one)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import JSON, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=64)
def _columns(model: type, keys: tuple[str, ...]) -> tuple[tuple[str, str, bool], ...]:
    """(column name, SQL type, is JSON) per mapped attribute name."""
    mapper = model.__mapper__  # type: ignore[attr-defined]
    out = []
    for key in keys:
        column = mapper.attrs[key].columns[0]
        out.append((column.name, column.type.compile(dialect=_DIALECT), isinstance(column.type, JSON)))
    return tuple(out)


def insert_rows(session: Session, model: type, rows: Sequence[dict[str, Any]], *,
                on_conflict_do_nothing: Sequence[str] = (), returning: Sequence[str] = ()) -> list[Any]:
    """Insert `rows` (dicts keyed by mapped attribute names, all with the same keys) in one statement; with
    `returning`, the named columns of the rows actually inserted."""
    if not rows:
        return []
    keys = tuple(rows[0])
    columns = _columns(model, keys)
    params: dict[str, list[Any]] = {}
    casts = []
    for i, ((_, sql_type, is_json), key) in enumerate(zip(columns, keys, strict=True)):
        values = [row[key] for row in rows]
        params[f"c{i}"] = [Jsonb(v) if v is not None else None for v in values] if is_json else values
        casts.append(f"CAST(:c{i} AS {sql_type}[])")
    table = model.__table__.name  # type: ignore[attr-defined]
    names = ", ".join(f'"{column[0]}"' for column in columns)
    sql = f'INSERT INTO "{table}" ({names}) SELECT * FROM unnest({", ".join(casts)})'
    if on_conflict_do_nothing:
        sql += f" ON CONFLICT ({', '.join(on_conflict_do_nothing)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    result = session.execute(text(sql), params)
    return list(result.all()) if returning else []
