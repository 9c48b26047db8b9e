"""Whether a sub-account has anyone listening to its events at all (active webhook endpoints, published
workflows with active triggers): asked on every inbound message and new contact, answered from a short
in-process memory so the hot path does not pay a query per event when nobody listens.

A process forgets its answer for a sub-account as soon as it writes an endpoint, workflow or trigger of it
(a flush listener), so changes made here count at once; another process's changes count within TTL_S."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import event, exists, select
from sqlalchemy.orm import Session

from models.activity import Webhook
from models.workflows import Workflow, WorkflowTrigger

TTL_S = 5.0
_memory: dict[tuple[str, uuid.UUID], tuple[float, Any]] = {}


def _ask(session: Session, kind: str, sub_account_id: uuid.UUID) -> Any:
    if kind == "webhooks":
        return bool(session.scalar(select(exists().where(Webhook.sub_account_id == sub_account_id, Webhook.is_active,
                                                         Webhook.deleted_at.is_(None)))))
    # workflows: the trigger types that would start one, so an event of another type costs no query
    return frozenset(session.scalars(select(WorkflowTrigger.trigger_type).distinct().where(
        WorkflowTrigger.sub_account_id == sub_account_id, WorkflowTrigger.is_active,
        WorkflowTrigger.workflow_id == Workflow.id, Workflow.status == "published", Workflow.deleted_at.is_(None))))


def _remembered(session: Session, kind: str, sub_account_id: uuid.UUID) -> Any:
    key = (kind, sub_account_id)
    remembered = _memory.get(key)
    if remembered is not None and remembered[0] > time.monotonic():
        return remembered[1]
    answer = _ask(session, kind, sub_account_id)
    _memory[key] = (time.monotonic() + TTL_S, answer)
    return answer


def listening(session: Session, kind: str, sub_account_id: uuid.UUID, trigger_type: str | None = None) -> bool:
    """`kind` "webhooks" or "workflows": may anything of that kind react to this sub-account's events (for
    workflows, to events of `trigger_type` when given)?"""
    answer = _remembered(session, kind, sub_account_id)
    if kind == "webhooks":
        return bool(answer)
    return trigger_type in answer if trigger_type is not None else bool(answer)


def forget(sub_account_id: uuid.UUID | None = None) -> None:
    """Drop remembered answers (of one sub-account, or all)."""
    for key in [k for k in _memory if sub_account_id is None or k[1] == sub_account_id]:
        _memory.pop(key, None)


def _on_flush(session: Session, context: Any) -> None:
    for row in (*session.new, *session.dirty):
        if isinstance(row, Webhook | Workflow | WorkflowTrigger) and getattr(row, "sub_account_id", None):
            forget(row.sub_account_id)


event.listen(Session, "after_flush", _on_flush)
