"""Sales pipelines: agency stage templates, pipelines, stages, opportunities and their stage history."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, UniqueConstraint, text
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
from models.crm import CustomFieldDefinition

OPPORTUNITY_STATUSES = ("open", "won", "lost", "abandoned")


class CustomStage(UUIDPrimaryKey, Timestamps, Base):
    """An agency-defined pipeline stage template that sub-account pipelines copy."""

    __tablename__ = "custom_stages"
    __tenancy__: ClassVar[str | None] = "agency"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability_range"),
        CheckConstraint("NOT (is_won AND is_lost)", name="won_xor_lost"),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    stage_order: Mapped[int] = mapped_column(nullable=False)
    stage_name: Mapped[str] = short(120, nullable=False)
    stage_description: Mapped[str | None]
    completion_criteria: Mapped[str | None]
    probability: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, server_default=text("0"))
    is_won: Mapped[bool] = flag(False)
    is_lost: Mapped[bool] = flag(False)
    active_status: Mapped[bool] = flag(True)


class AgencyStage(Base):
    """Junction of agencies and the custom stages they use, with the agency's own ordering."""

    __tablename__ = "agency_stages"
    __tenancy__: ClassVar[str | None] = "agency"

    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True)
    custom_stage_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("custom_stages.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = counter()
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class Pipeline(Entity, Base):
    """An ordered set of stages opportunities move through."""

    __tablename__ = "pipelines"
    __table_args__ = (
        Index("uq_pipelines_one_default", "sub_account_id", unique=True,
              postgresql_where=text("is_default AND deleted_at IS NULL")),
    )

    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    is_default: Mapped[bool] = flag(False)
    position: Mapped[int] = counter()


class PipelineStage(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """One stage of a pipeline, with its win probability."""

    __tablename__ = "pipeline_stages"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        UniqueConstraint("pipeline_id", "position", deferrable=True, initially="DEFERRED"),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability_range"),
        CheckConstraint("NOT (is_won AND is_lost)", name="won_xor_lost"),
    )

    pipeline_id: Mapped[uuid.UUID] = fk("pipelines.id", ondelete="CASCADE")
    custom_stage_id: Mapped[uuid.UUID | None] = fk("custom_stages.id", ondelete="SET NULL", nullable=True)
    name: Mapped[str] = short(120, nullable=False)
    position: Mapped[int] = mapped_column(nullable=False)
    probability: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, server_default=text("0"))
    is_won: Mapped[bool] = flag(False)
    is_lost: Mapped[bool] = flag(False)


class Opportunity(Entity, Base):
    """A deal with a contact, sitting in one stage of one pipeline."""

    __tablename__ = "opportunities"
    __table_args__ = (
        CheckConstraint("monetary_value >= 0", name="value_non_negative"),
        Index("ix_opportunities_board", "sub_account_id", "pipeline_id", "stage_id",
              postgresql_where=text("deleted_at IS NULL")),
        Index("ix_opportunities_custom_fields", "custom_fields", postgresql_using="gin",
              postgresql_ops={"custom_fields": "jsonb_path_ops"}),
    )

    pipeline_id: Mapped[uuid.UUID] = fk("pipelines.id", ondelete="CASCADE")
    stage_id: Mapped[uuid.UUID] = fk("pipeline_stages.id", ondelete="RESTRICT")
    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    assigned_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    campaign_id: Mapped[uuid.UUID | None] = fk("campaigns.id", ondelete="SET NULL", nullable=True)
    name: Mapped[str] = short(255, nullable=False)
    monetary_value: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    status: Mapped[str] = mapped_column(choice("opportunity_status", *OPPORTUNITY_STATUSES),
                                        nullable=False, server_default="open")
    source: Mapped[str | None] = short(120)
    lost_reason: Mapped[str | None]
    expected_close_date: Mapped[date | None]
    custom_fields: Mapped[dict[str, Any]] = jsonb_obj()
    stage_entered_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    closed_at: Mapped[datetime | None]


class OpportunityStageHistory(UUIDPrimaryKey, SubAccountOwned, Base):
    """One stage move, with the seconds the opportunity spent in the stage it left."""

    __tablename__ = "opportunity_stage_history"
    __table_args__ = (
        CheckConstraint("duration_seconds >= 0", name="duration_non_negative"),
        Index("ix_opportunity_stage_history_opp_changed", "opportunity_id", "changed_at"),
    )

    opportunity_id: Mapped[uuid.UUID] = fk("opportunities.id", ondelete="CASCADE", index=False)
    from_stage_id: Mapped[uuid.UUID | None] = fk("pipeline_stages.id", ondelete="SET NULL", nullable=True)
    to_stage_id: Mapped[uuid.UUID | None] = fk("pipeline_stages.id", ondelete="SET NULL", nullable=True)
    changed_by_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    duration_seconds: Mapped[int | None]
    changed_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class OpportunityCustomField(CustomFieldDefinition, Base):
    """Definition of a custom field on opportunities (values live in opportunities.custom_fields)."""

    __tablename__ = "opportunity_custom_fields"
