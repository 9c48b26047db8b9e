"""Shared response shaping: ORM rows to JSON (money as exact strings, ids and times as text)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import inspect

from tools.base import jsonable

HIDDEN = {"secret_sha256", "password_hash"}


def row(obj: Any, *, only: Iterable[str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mapped columns of `obj` (or `only` those) as JSON-ready values, plus `extra`."""
    attrs = [a.key for a in inspect(obj).mapper.column_attrs if a.key not in HIDDEN]
    names = list(only) if only is not None else attrs
    out = {("metadata" if n == "metadata_" else n): jsonable(getattr(obj, n)) for n in names}
    out.update(jsonable(extra or {}))
    return out
