"""Marketing: email/SMS templates and message campaigns (the ER seed's campaigns), recipients, clicks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint, text
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
    jsonb_list,
    jsonb_obj,
    short,
)

CAMPAIGN_CHANNELS = ("email", "sms")
MESSAGE_CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "sent", "paused", "cancelled", "failed")
RECIPIENT_STATUSES = (
    "queued", "sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "failed", "skipped",
)


class EmailTemplate(Entity, Base):
    """A reusable email with {{variables}} and their defaults."""

    __tablename__ = "email_templates"

    name: Mapped[str] = short(255, nullable=False)
    subject: Mapped[str] = mapped_column(nullable=False)
    html_content: Mapped[str] = mapped_column(nullable=False)
    text_content: Mapped[str | None]
    variables: Mapped[list[Any]] = jsonb_list()


class SmsTemplate(Entity, Base):
    """A reusable SMS body with {{variables}} and their defaults."""

    __tablename__ = "sms_templates"

    name: Mapped[str] = short(255, nullable=False)
    body: Mapped[str] = mapped_column(nullable=False)
    variables: Mapped[list[Any]] = jsonb_list()


class MessageCampaign(Entity, Base):
    """An email or SMS blast to an audience resolved at send time."""

    __tablename__ = "message_campaigns"

    name: Mapped[str] = short(255, nullable=False)
    channel_type: Mapped[str] = mapped_column(choice("message_campaign_channel", *CAMPAIGN_CHANNELS),
                                              nullable=False)
    email_template_id: Mapped[uuid.UUID | None] = fk("email_templates.id", ondelete="SET NULL", nullable=True)
    sms_template_id: Mapped[uuid.UUID | None] = fk("sms_templates.id", ondelete="SET NULL", nullable=True)
    created_by_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    # tags, filters and exclusions
    audience: Mapped[dict[str, Any]] = jsonb_obj()
    status: Mapped[str] = mapped_column(choice("message_campaign_status", *MESSAGE_CAMPAIGN_STATUSES),
                                        nullable=False, server_default="draft")
    scheduled_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    total_recipients: Mapped[int] = counter()
    sent_count: Mapped[int] = counter()
    delivered_count: Mapped[int] = counter()
    opened_count: Mapped[int] = counter()
    clicked_count: Mapped[int] = counter()
    bounced_count: Mapped[int] = counter()
    unsubscribed_count: Mapped[int] = counter()
    failed_count: Mapped[int] = counter()


class MessageCampaignRecipient(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """One contact's copy of a campaign and what they did with it."""

    __tablename__ = "message_campaign_recipients"
    __table_args__ = (
        UniqueConstraint("message_campaign_id", "contact_id"),
        # the next batch's recipients (those still waiting for their message), however far the campaign is
        Index("ix_message_campaign_recipients_pending", "message_campaign_id",
              postgresql_where=text("message_id IS NULL AND status = 'queued'")),
    )

    message_campaign_id: Mapped[uuid.UUID] = fk("message_campaigns.id", ondelete="CASCADE", index=False)
    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    message_id: Mapped[uuid.UUID | None] = fk("messages.id", ondelete="SET NULL", nullable=True)
    tracking_token: Mapped[str] = mapped_column(String(64), nullable=False, unique=True,
                                                server_default=text("md5(gen_random_uuid()::text)"))
    status: Mapped[str] = mapped_column(choice("recipient_status", *RECIPIENT_STATUSES), nullable=False,
                                        server_default="queued")
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    first_clicked_at: Mapped[datetime | None]
    open_count: Mapped[int] = counter()
    click_count: Mapped[int] = counter()
    bounced_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    error: Mapped[str | None]


class EmailClick(UUIDPrimaryKey, SubAccountOwned, Base):
    """A tracked click on a link in a campaign email."""

    __tablename__ = "email_clicks"

    recipient_id: Mapped[uuid.UUID] = fk("message_campaign_recipients.id", ondelete="CASCADE")
    url: Mapped[str] = mapped_column(nullable=False)
    clicked_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    ip_address: Mapped[str | None] = short(45)
    user_agent: Mapped[str | None]
