"""What every tool shares: capability checks inside the tool, and expected failures as structured results
the agent can recover from (slot taken, not found) instead of exceptions that end the run."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.runnables import RunnableConfig

from services.errors import DomainError
from tools.context import AgentContext

F = TypeVar("F", bound=Callable[..., dict[str, Any]])


def jsonable(value: Any) -> Any:
    """Decimals, ids and times as JSON a model reads easily (money stays exact as a string)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def failure(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """A structured, recoverable failure."""
    return {"ok": False, "error": {"type": kind, "message": message, **jsonable(extra)}}


class NoContact(DomainError):
    """The run has no contact to act for (a conversation before its contact is known)."""

    status = 409
    title = "No contact"


def contact_of(ctx: AgentContext) -> UUID:
    """The contact the run acts for; a structured NoContact failure when there is none."""
    if ctx.contact_id is None:
        raise NoContact("This conversation has no contact yet.")
    return ctx.contact_id


def guarded(capability: str) -> Callable[[F], F]:
    """Refuse when the run's agent lacks `capability`; turn domain errors into structured failures."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, config: RunnableConfig, **kwargs: Any) -> dict[str, Any]:
            ctx = AgentContext.from_config(config)
            if capability not in ctx.capabilities:
                return failure("not_permitted", f"This assistant is not allowed to {capability.replace('_', ' ')}.")
            try:
                return {"ok": True, **jsonable(fn(*args, config=config, **kwargs))}
            except DomainError as exc:
                return failure(type(exc).__name__, exc.detail, **exc.extra)

        return run  # type: ignore[return-value]

    return wrap


def dumps(result: dict[str, Any]) -> str:
    """Compact JSON for logs."""
    return json.dumps(result, separators=(",", ":"))
