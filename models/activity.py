"""Cross-cutting: activity logs (audit), outbound webhooks and their logs, integrations, analytics events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ForeignKeyConstraint, Index, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    Entity,
    SoftDelete,
    SubAccountOwned,
    Timestamps,
    UUIDPrimaryKey,
    choice,
    counter,
    fk,
    flag,
    jsonb_list,
    jsonb_obj,
    short,
)

AUDIT_ACTIONS = ("created", "updated", "deleted", "restored")
WEBHOOK_LOG_STATUSES = ("pending", "success", "failed", "retrying")
PROVIDERS = ("meta", "whop", "stripe", "twilio", "sendgrid", "google", "zapier", "smtp", "other")
SYNC_STATUSES = ("up_to_date", "delayed", "failed", "never_synced")
AUTH_STATUSES = ("connected", "disconnected", "expired", "error")


class ActivityLog(UUIDPrimaryKey, Base):
    """Audit trail: who changed which entity how, written by a database trigger.

    No foreign keys on purpose: the trail outlives the rows (and users) it talks about.
    """

    __tablename__ = "activity_logs"
    __tenancy__: ClassVar[str | None] = "agency_sub_account"
    __table_args__ = (
        Index("ix_activity_logs_entity", "entity_type", "entity_id", "created_at"),
        Index("ix_activity_logs_sub_account_created", "sub_account_id", "created_at"),
        Index("ix_activity_logs_agency_created", "agency_id", "created_at"),
    )

    agency_id: Mapped[uuid.UUID]
    sub_account_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]
    entity_type: Mapped[str] = short(64, nullable=False)
    entity_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(choice("audit_action", *AUDIT_ACTIONS), nullable=False)
    changes: Mapped[dict[str, Any]] = jsonb_obj()
    ip_address: Mapped[str | None] = short(45)
    user_agent: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class Webhook(Entity, Base):
    """A customer endpoint subscribed to events, signed with its secret."""

    __tablename__ = "webhooks"

    url: Mapped[str] = mapped_column(nullable=False)
    description: Mapped[str | None]
    events: Mapped[list[Any]] = jsonb_list()
    secret: Mapped[str] = mapped_column(nullable=False)
    is_active: Mapped[bool] = flag(True)
    consecutive_failures: Mapped[int] = counter()
    disabled_at: Mapped[datetime | None]


class WebhookLog(UUIDPrimaryKey, SubAccountOwned, Base):
    """One delivery attempt of an event to a webhook."""

    __tablename__ = "webhook_logs"
    __table_args__ = (
        Index("ix_webhook_logs_webhook_created", "webhook_id", "created_at"),
        Index("ix_webhook_logs_retry", "next_retry_at", postgresql_where=text("status = 'retrying'")),
    )

    webhook_id: Mapped[uuid.UUID] = fk("webhooks.id", ondelete="CASCADE", index=False)
    delivery_id: Mapped[uuid.UUID] = mapped_column(nullable=False, index=True)
    event_type: Mapped[str] = short(100, nullable=False)
    payload: Mapped[dict[str, Any]] = jsonb_obj()
    attempt: Mapped[int] = mapped_column(nullable=False, server_default=text("1"))
    response_status: Mapped[int | None]
    response_time_ms: Mapped[int | None]
    response_body: Mapped[str | None]
    status: Mapped[str] = mapped_column(choice("webhook_log_status", *WEBHOOK_LOG_STATUSES), nullable=False)
    error: Mapped[str | None]
    next_retry_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class Integration(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A connection to an outside system: the ER seed's integrations and the sales seed's
    integration_sources (Meta, Whop, Stripe) in one table. Agency-wide when sub_account_id is NULL."""

    __tablename__ = "integrations"
    __tenancy__: ClassVar[str | None] = "agency_sub_account"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        ForeignKeyConstraint(["agency_id", "sub_account_id"], ["sub_accounts.agency_id", "sub_accounts.id"],
                             ondelete="CASCADE", name="fk_integrations_agency_sub_account"),
        Index("ix_integrations_sub_account", "sub_account_id"),
        # an outside account (Stripe account, Whop company, Meta ad account) belongs to one live integration:
        # events are routed by it, so a second claim would take another sub-account's events
        Index("uq_integrations_provider_connection", "provider_name", "connection_id", unique=True,
              postgresql_where=text("connection_id IS NOT NULL AND deleted_at IS NULL")),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    sub_account_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    provider_name: Mapped[str] = mapped_column(choice("integration_provider", *PROVIDERS), nullable=False)
    name: Mapped[str] = short(255, nullable=False)
    connection_id: Mapped[str | None] = short(255)
    data_sync_status: Mapped[str] = mapped_column(choice("data_sync_status", *SYNC_STATUSES), nullable=False,
                                                  server_default="never_synced")
    last_sync_time: Mapped[datetime | None]
    authentication_status: Mapped[str] = mapped_column(choice("authentication_status", *AUTH_STATUSES),
                                                       nullable=False, server_default="disconnected")
    api_version: Mapped[str | None] = short(32)
    config: Mapped[dict[str, Any]] = jsonb_obj()
    # Fernet-encrypted token blob; never returned by the API
    credentials_encrypted: Mapped[str | None]
    last_error: Mapped[str | None]
    is_active: Mapped[bool] = flag(True)


class AnalyticsEvent(UUIDPrimaryKey, SubAccountOwned, Base):
    """A tracked action (page view, form submission, message, booking) for funnels and journeys."""

    __tablename__ = "analytics_events"
    __sub_account_index__ = False  # ix_analytics_events_name_created leads with it
    __table_args__ = (
        Index("ix_analytics_events_name_created", "sub_account_id", "event_name", "created_at"),
        Index("ix_analytics_events_contact_created", "contact_id", "created_at"),
        Index("ix_analytics_events_session", "session_id", postgresql_where=text("session_id IS NOT NULL")),
    )

    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="SET NULL", nullable=True, index=False)
    event_name: Mapped[str] = short(100, nullable=False)
    event_category: Mapped[str | None] = short(100)
    properties: Mapped[dict[str, Any]] = jsonb_obj()
    source: Mapped[str | None] = short(64)
    session_id: Mapped[str | None] = short(128)
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
