"""Workflows over HTTP: build one (triggers and the action tree), edit it (a new version: running executions keep
the plan they started with), publish or pause it, dry-run it for a contact, and follow its executions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.deps import Tenant, sub_account
from api.params import Limit
from models.workflows import (
    ACTION_TYPES,
    TRIGGER_TYPES,
    Workflow,
    WorkflowAction,
    WorkflowActionExecution,
    WorkflowExecution,
    WorkflowTrigger,
)
from services import workflows
from services.errors import InvalidInput, NotFound

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}/workflows", tags=["Workflows"])
Manage = Annotated[Tenant, Depends(sub_account("workflows.manage"))]


class Node(BaseModel):
    """One action; `then` is the next one, an if_else has `yes` and `no` instead."""

    model_config = ConfigDict(extra="forbid")
    type: Literal[ACTION_TYPES]  # type: ignore[valid-type]
    name: str | None = Field(None, max_length=255)
    config: dict[str, Any] = Field(default_factory=dict)
    then: Node | None = None
    yes: Node | None = None
    no: Node | None = None


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal[TRIGGER_TYPES]  # type: ignore[valid-type]
    conditions: dict[str, Any] = Field(default_factory=dict)


class WorkflowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    allow_reentry: bool = False
    triggers: list[Trigger] = Field(min_length=1)
    actions: Node


class DryRun(BaseModel):
    contact_id: uuid.UUID


def _store_tree(session: Session, flow: Workflow, node: Node, parent: WorkflowAction | None = None,
                branch: str | None = None, position: int = 0) -> None:
    if node.type == "if_else" and node.then is not None:
        raise InvalidInput("An if_else continues with yes and no, not then.", field="actions")
    if node.type != "if_else" and (node.yes or node.no):
        raise InvalidInput(f"Only if_else has yes/no branches (not {node.type}).", field="actions")
    row = WorkflowAction(sub_account_id=flow.sub_account_id, workflow_id=flow.id, action_type=node.type,
                         name=node.name, config=node.config, parent_action_id=parent.id if parent else None,
                         branch=branch, position=position)
    session.add(row)
    session.flush()
    for child, child_branch in ((node.then, None), (node.yes, "yes"), (node.no, "no")):
        if child is not None:
            _store_tree(session, flow, child, row, child_branch, position + 1)


def _replace(session: Session, flow: Workflow, body: WorkflowIn) -> None:
    session.execute(delete(WorkflowAction).where(WorkflowAction.workflow_id == flow.id))
    session.execute(delete(WorkflowTrigger).where(WorkflowTrigger.workflow_id == flow.id))
    for trigger in body.triggers:
        session.add(WorkflowTrigger(sub_account_id=flow.sub_account_id, workflow_id=flow.id,
                                    trigger_type=trigger.type, conditions=trigger.conditions))
    _store_tree(session, flow, body.actions)


def _summary(session: Session, flow: Workflow) -> dict[str, Any]:
    return {"id": str(flow.id), "name": flow.name, "status": flow.status, "version": flow.version,
            "allow_reentry": flow.allow_reentry, "plan": workflows.plan_of(session, flow.id),
            "triggers": [{"type": t.trigger_type, "conditions": t.conditions} for t in session.scalars(
                select(WorkflowTrigger).where(WorkflowTrigger.workflow_id == flow.id))]}


def _get(session: Session, workflow_id: uuid.UUID) -> Workflow:
    flow = session.get(Workflow, workflow_id)
    if flow is None or flow.deleted_at is not None:
        raise NotFound("No such workflow.")
    return flow


@router.post("", status_code=201, summary="Create a workflow (draft)")
def create(t: Manage, body: WorkflowIn) -> dict[str, Any]:
    with t.session() as s:
        flow = Workflow(sub_account_id=t.sub_account_id, name=body.name, description=body.description,
                        allow_reentry=body.allow_reentry, status="draft")
        s.add(flow)
        s.flush()
        _replace(s, flow, body)
        return _summary(s, flow)


@router.put("/{workflow_id}", summary="Replace triggers and actions (a new version)")
def update(t: Manage, workflow_id: uuid.UUID, body: WorkflowIn) -> dict[str, Any]:
    """Contacts already inside keep the plan they started with; new executions take this version."""
    with t.session() as s:
        flow = _get(s, workflow_id)
        flow.name, flow.description, flow.allow_reentry = body.name, body.description, body.allow_reentry
        flow.version += 1
        _replace(s, flow, body)
        return _summary(s, flow)


def _set_status(t: Tenant, workflow_id: uuid.UUID, status: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    with t.session() as s:
        flow = _get(s, workflow_id)
        flow.status = status
        if status == "published":
            flow.published_at = datetime.now(UTC)
        return _summary(s, flow)


@router.post("/{workflow_id}/publish", summary="Publish: its triggers start executions")
def publish(t: Manage, workflow_id: uuid.UUID) -> dict[str, Any]:
    return _set_status(t, workflow_id, "published")


@router.post("/{workflow_id}/pause", summary="Pause: no new executions (running ones go on)")
def pause(t: Manage, workflow_id: uuid.UUID) -> dict[str, Any]:
    return _set_status(t, workflow_id, "paused")


@router.post("/{workflow_id}/dry-run", summary="The path a contact would take now")
def dry_run(t: Manage, workflow_id: uuid.UUID, body: DryRun) -> list[dict[str, Any]]:
    with t.session() as s:
        _get(s, workflow_id)
        return workflows.dry_run(s, workflow_id, body.contact_id)


@router.get("/{workflow_id}/executions", summary="Executions with their steps")
def executions(t: Manage, workflow_id: uuid.UUID, limit: Limit = 50) -> list[dict[str, Any]]:
    with t.session() as s:
        _get(s, workflow_id)
        rows = s.scalars(select(WorkflowExecution).where(WorkflowExecution.workflow_id == workflow_id)
                         .order_by(WorkflowExecution.started_at.desc()).limit(limit)).all()
        steps: dict[uuid.UUID, list[dict[str, Any]]] = {r.id: [] for r in rows}
        for step in s.scalars(select(WorkflowActionExecution).where(
                WorkflowActionExecution.workflow_execution_id.in_(list(steps))).order_by(
                WorkflowActionExecution.created_at)):
            steps[step.workflow_execution_id].append({
                "action_id": str(step.workflow_action_id), "status": step.status, "attempts": step.attempts,
                "scheduled_for": step.scheduled_for.isoformat() if step.scheduled_for else None,
                "result": step.result, "error": step.error})
        return [{"id": str(r.id), "contact_id": str(r.contact_id), "version": r.workflow_version,
                 "status": r.status, "error": r.error, "started_at": r.started_at.isoformat(),
                 "completed_at": r.completed_at.isoformat() if r.completed_at else None,
                 "steps": steps[r.id]} for r in rows]
