"""Workflows: triggers, the action tree (parent_action_id), durable executions and their steps."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Index, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    Entity,
    SubAccountOwned,
    Timestamps,
    UUIDPrimaryKey,
    choice,
    counter,
    fk,
    flag,
    jsonb_obj,
    short,
)

WORKFLOW_STATUSES = ("draft", "published", "paused", "archived")
TRIGGER_TYPES = (
    "contact_created", "tag_added", "tag_removed", "form_submitted", "survey_submitted", "appointment_booked",
    "appointment_cancelled", "appointment_no_show", "opportunity_stage_changed", "invoice_paid",
    "invoice_overdue", "inbound_message", "handoff_opened", "custom_date", "manual",
)
ACTION_TYPES = (
    "send_email", "send_sms", "wait", "if_else", "add_tag", "remove_tag", "update_field", "create_task",
    "create_opportunity", "move_opportunity", "assign_user", "hand_to_ai", "hand_to_human", "webhook", "end",
)
BRANCHES = ("yes", "no")
EXECUTION_STATUSES = ("running", "waiting", "completed", "failed", "cancelled")
STEP_STATUSES = ("pending", "scheduled", "running", "completed", "failed", "skipped")


class Workflow(Entity, Base):
    """An automation: triggers start executions that walk the action tree."""

    __tablename__ = "workflows"

    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    status: Mapped[str] = mapped_column(choice("workflow_status", *WORKFLOW_STATUSES), nullable=False,
                                        server_default="draft")
    version: Mapped[int] = mapped_column(nullable=False, server_default=text("1"))
    allow_reentry: Mapped[bool] = flag(False)
    published_at: Mapped[datetime | None]
    settings: Mapped[dict[str, Any]] = jsonb_obj()


class WorkflowTrigger(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """An event type, with conditions, that starts a workflow."""

    __tablename__ = "workflow_triggers"
    __table_args__ = (Index("ix_workflow_triggers_type", "sub_account_id", "trigger_type",
                            postgresql_where=text("is_active")),)

    workflow_id: Mapped[uuid.UUID] = fk("workflows.id", ondelete="CASCADE")
    trigger_type: Mapped[str] = mapped_column(choice("workflow_trigger_type", *TRIGGER_TYPES), nullable=False)
    conditions: Mapped[dict[str, Any]] = jsonb_obj()
    is_active: Mapped[bool] = flag(True)


class WorkflowAction(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """A node of the action tree; children of an if/else carry the branch they hang from."""

    __tablename__ = "workflow_actions"
    __audited__: ClassVar[bool] = True

    workflow_id: Mapped[uuid.UUID] = fk("workflows.id", ondelete="CASCADE")
    parent_action_id: Mapped[uuid.UUID | None] = fk("workflow_actions.id", ondelete="CASCADE", nullable=True)
    branch: Mapped[str | None] = mapped_column(choice("workflow_action_branch", *BRANCHES))
    position: Mapped[int] = counter()
    action_type: Mapped[str] = mapped_column(choice("workflow_action_type", *ACTION_TYPES), nullable=False)
    name: Mapped[str | None] = short(255)
    config: Mapped[dict[str, Any]] = jsonb_obj()


class WorkflowExecution(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """One contact's run through one version of a workflow."""

    __tablename__ = "workflow_executions"
    __table_args__ = (
        Index("ix_workflow_executions_active", "workflow_id", "contact_id",
              postgresql_where=text("status IN ('running', 'waiting')")),
    )

    workflow_id: Mapped[uuid.UUID] = fk("workflows.id", ondelete="CASCADE")
    workflow_version: Mapped[int] = mapped_column(nullable=False, server_default=text("1"))
    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    status: Mapped[str] = mapped_column(choice("workflow_execution_status", *EXECUTION_STATUSES),
                                        nullable=False, server_default="running")
    current_action_id: Mapped[uuid.UUID | None] = fk("workflow_actions.id", ondelete="SET NULL", nullable=True)
    context: Mapped[dict[str, Any]] = jsonb_obj()
    trigger_event: Mapped[dict[str, Any]] = jsonb_obj()
    started_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    completed_at: Mapped[datetime | None]
    error: Mapped[str | None]


class WorkflowActionExecution(UUIDPrimaryKey, SubAccountOwned, Base):
    """One step of an execution: when it was due, when it ran, what came of it."""

    __tablename__ = "workflow_action_executions"
    __table_args__ = (
        Index("ix_workflow_action_executions_due", "scheduled_for",
              postgresql_where=text("status IN ('pending', 'scheduled')")),
    )

    workflow_execution_id: Mapped[uuid.UUID] = fk("workflow_executions.id", ondelete="CASCADE")
    workflow_action_id: Mapped[uuid.UUID | None] = fk("workflow_actions.id", ondelete="SET NULL", nullable=True)
    status: Mapped[str] = mapped_column(choice("workflow_step_status", *STEP_STATUSES), nullable=False,
                                        server_default="pending")
    scheduled_for: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    attempts: Mapped[int] = counter()
    result: Mapped[dict[str, Any]] = jsonb_obj()
    error: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
