"""CRM: contacts (the sales seed's leads too), tags, notes, tasks, custom-field definitions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Numeric,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from models.base import Base, Entity, SubAccountOwned, choice, counter, fk, flag, jsonb_list, jsonb_obj, short

LIFECYCLE_STAGES = (
    "subscriber", "lead", "marketing_qualified", "sales_qualified", "opportunity", "customer",
    "evangelist", "other",
)
QUALIFICATION_STATUSES = ("new", "contacted", "qualified", "unqualified", "disqualified")
FIELD_TYPES = (
    "text", "textarea", "number", "money", "date", "select", "multi_select", "checkbox", "phone", "email",
    "url",
)
TASK_STATUSES = ("open", "in_progress", "completed", "cancelled")
TASK_PRIORITIES = ("low", "normal", "high", "urgent")
E164 = r"^\+[1-9][0-9]{6,14}$"


class Contact(Entity, Base):
    """A person a business talks to; with lifecycle_stage `lead` it is the sales seed's lead."""

    __tablename__ = "contacts"
    __table_args__ = (
        # composite FK: the contact's agency is its sub-account's agency
        ForeignKeyConstraint(
            ["agency_id", "sub_account_id"], ["sub_accounts.agency_id", "sub_accounts.id"],
            ondelete="CASCADE", name="fk_contacts_agency_sub_account",
        ),
        Index("uq_contacts_sub_account_email", "sub_account_id", "email_normalized", unique=True,
              postgresql_where=text("deleted_at IS NULL AND email_normalized IS NOT NULL")),
        Index("uq_contacts_sub_account_phone", "sub_account_id", "phone", unique=True,
              postgresql_where=text("deleted_at IS NULL AND phone IS NOT NULL")),
        CheckConstraint(f"phone ~ '{E164}'", name="phone_e164"),
        CheckConstraint("conversion_probability BETWEEN 0 AND 1", name="conversion_probability_range"),
        Index("ix_contacts_sub_account_stage", "sub_account_id", "lifecycle_stage"),
        Index("ix_contacts_sub_account_created", "sub_account_id", "created_at"),
        Index("ix_contacts_custom_fields", "custom_fields", postgresql_using="gin",
              postgresql_ops={"custom_fields": "jsonb_path_ops"}),
        Index("ix_contacts_search", "search_tsv", postgresql_using="gin"),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    assigned_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    first_name: Mapped[str | None] = short(120)
    last_name: Mapped[str | None] = short(120)
    name: Mapped[str] = mapped_column(
        Computed("btrim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))", persisted=True)
    )
    email: Mapped[str | None] = short(320)
    email_normalized: Mapped[str | None] = mapped_column(
        Computed("nullif(lower(btrim(email)), '')", persisted=True)
    )
    phone: Mapped[str | None] = short(16)
    company_name: Mapped[str | None] = short(255)
    timezone: Mapped[str | None] = short(64)
    date_of_birth: Mapped[date | None]
    address: Mapped[dict[str, Any]] = jsonb_obj()
    contact_info: Mapped[dict[str, Any]] = jsonb_obj()
    source: Mapped[str | None] = short(120)

    lifecycle_stage: Mapped[str] = mapped_column(
        choice("lifecycle_stage", *LIFECYCLE_STAGES), nullable=False, server_default="lead"
    )
    lead_score: Mapped[int] = counter()
    lead_source: Mapped[str | None] = short(120)
    initial_contact_date: Mapped[datetime | None]
    qualification_status: Mapped[str] = mapped_column(
        choice("qualification_status", *QUALIFICATION_STATUSES), nullable=False, server_default="new"
    )
    conversion_probability: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    converted_client_id: Mapped[uuid.UUID | None] = fk("sub_accounts.id", ondelete="SET NULL", nullable=True)
    converted_at: Mapped[datetime | None]
    campaign_id: Mapped[uuid.UUID | None] = fk("campaigns.id", ondelete="SET NULL", nullable=True)
    attribution: Mapped[dict[str, Any]] = jsonb_obj()

    custom_fields: Mapped[dict[str, Any]] = jsonb_obj()
    # per-channel do-not-disturb: {"sms": {"reason": "STOP", "at": "..."}}
    dnd_all: Mapped[bool] = flag(False)
    dnd_channels: Mapped[dict[str, Any]] = jsonb_obj()
    last_activity_at: Mapped[datetime | None]
    search_tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('simple'::regconfig, coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '"
            " || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(company_name, ''))",
            persisted=True,
        ),
    )


class Tag(Entity, Base):
    """A label on contacts, unique by name in a sub-account."""

    __tablename__ = "tags"
    __table_args__ = (
        Index("uq_tags_sub_account_name", "sub_account_id", text("lower(name)"), unique=True,
              postgresql_where=text("deleted_at IS NULL")),
    )

    name: Mapped[str] = short(100, nullable=False)
    color: Mapped[str | None] = short(16)
    description: Mapped[str | None]


class ContactTag(SubAccountOwned, Base):
    """Many-to-many between contacts and tags."""

    __tablename__ = "contact_tags"

    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class Note(Entity, Base):
    """A free-text note on a contact."""

    __tablename__ = "notes"

    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    body: Mapped[str]
    is_pinned: Mapped[bool] = flag(False)


class Task(Entity, Base):
    """A to-do with a due date and an assignee, usually about a contact."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_assignee_open", "assigned_user_id", "due_at",
                            postgresql_where=text("status IN ('open', 'in_progress')")),)

    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="CASCADE", nullable=True)
    assigned_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    created_by_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    title: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(choice("task_status", *TASK_STATUSES), nullable=False,
                                        server_default="open")
    priority: Mapped[str] = mapped_column(choice("task_priority", *TASK_PRIORITIES), nullable=False,
                                          server_default="normal")
    completed_at: Mapped[datetime | None]


class CustomFieldDefinition(Entity):
    """Shape shared by contact and opportunity custom-field definitions."""

    __tablename__: str

    key: Mapped[str] = short(64, nullable=False)
    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    options: Mapped[list[Any]] = jsonb_list()
    is_required: Mapped[bool] = flag(False)
    position: Mapped[int] = counter()

    @declared_attr
    def field_type(cls) -> Mapped[str]:
        return mapped_column(choice(f"{cls.__tablename__}_field_type", *FIELD_TYPES), nullable=False)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            Index(f"uq_{cls.__tablename__}_key", "sub_account_id", "key", unique=True,
                  postgresql_where=text("deleted_at IS NULL")),
            CheckConstraint("key ~ '^[a-z][a-z0-9_]*$'", name="key_slug"),
        )


class ContactCustomField(CustomFieldDefinition, Base):
    """Definition of a custom field on contacts (values live in contacts.custom_fields)."""

    __tablename__ = "contact_custom_fields"



