"""Conversations: channels, conversations, messages, AI config per conversation, handoffs, outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, Index, Numeric, String, UniqueConstraint, text
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
    jsonb_list,
    jsonb_obj,
    short,
)

CHANNEL_TYPES = ("sms", "email", "webchat", "whatsapp", "facebook", "instagram", "gmb", "voice")
PROVIDERS = ("twilio", "sendgrid", "smtp", "meta", "leadpilot", "sandbox")
CONVERSATION_STATUSES = ("open", "pending", "resolved")
DIRECTIONS = ("inbound", "outbound")
SENDER_TYPES = ("contact", "user", "bot", "system")
CONTENT_TYPES = ("text", "image", "video", "audio", "file", "email", "note")
MESSAGE_STATUSES = (
    "draft", "pending_approval", "received", "queued", "sending", "sent", "delivered", "read", "undelivered",
    "failed", "discarded",
)
AI_MODES = ("off", "suggestive", "autopilot")
HANDOFF_REASONS = (
    "human_requested", "lack_of_information", "failed_to_resolve", "negative_sentiment",
    "missing_capability", "manual", "urgent",
)
HANDOFF_STATUSES = ("open", "claimed", "resolved", "returned_to_ai")
OUTBOX_STATUSES = ("pending", "dispatched", "done", "failed")


class Channel(Entity, Base):
    """A way a business is reached: a Twilio number, an inbound email address, a webchat widget."""

    __tablename__ = "channels"
    __table_args__ = (
        # an inbound address routes to exactly one live channel, whichever sub-account owns it
        Index("uq_channels_type_address", "channel_type", "address", unique=True,
              postgresql_where=text("deleted_at IS NULL")),
    )

    channel_type: Mapped[str] = mapped_column(choice("channel_type", *CHANNEL_TYPES), nullable=False)
    provider: Mapped[str] = mapped_column(choice("channel_provider", *PROVIDERS), nullable=False)
    name: Mapped[str] = short(255, nullable=False)
    # phone number in E.164, inbound email address, or widget public key
    address: Mapped[str] = short(320, nullable=False)
    config: Mapped[dict[str, Any]] = jsonb_obj()
    is_active: Mapped[bool] = flag(True)


class Conversation(Entity, Base):
    """A thread between a contact and the business on one channel."""

    __tablename__ = "conversations"
    # last_message_at, moved by every message, is in no index: those updates stay heap-only (HOT, see 0009)
    __sub_account_index__ = False
    __table_args__ = (
        Index("ix_conversations_inbox", "sub_account_id", "status"),
        Index("ix_conversations_thread", "channel_id", "external_thread_id"),
    )

    channel_id: Mapped[uuid.UUID] = fk("channels.id", ondelete="CASCADE")
    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    assigned_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    status: Mapped[str] = mapped_column(choice("conversation_status", *CONVERSATION_STATUSES),
                                        nullable=False, server_default="open")
    subject: Mapped[str | None]
    # email thread root Message-ID, or webchat session id
    external_thread_id: Mapped[str | None] = short(998)
    last_message_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    unread_count: Mapped[int] = counter()
    snoozed_until: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class Message(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """One message in a conversation; provider retries are harmless thanks to the unique provider id."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("uq_messages_channel_provider_id", "channel_id", "provider_message_id", unique=True,
              postgresql_where=text("provider_message_id IS NOT NULL")),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
    )

    conversation_id: Mapped[uuid.UUID] = fk("conversations.id", ondelete="CASCADE", index=False)
    channel_id: Mapped[uuid.UUID] = fk("channels.id", ondelete="CASCADE")
    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="CASCADE", nullable=True)
    direction: Mapped[str] = mapped_column(choice("message_direction", *DIRECTIONS), nullable=False)
    sender_type: Mapped[str] = mapped_column(choice("message_sender_type", *SENDER_TYPES), nullable=False)
    # polymorphic: a contact, user or ai_agent id, per sender_type
    sender_id: Mapped[uuid.UUID | None]
    content_type: Mapped[str] = mapped_column(choice("message_content_type", *CONTENT_TYPES),
                                              nullable=False, server_default="text")
    subject: Mapped[str | None]
    body: Mapped[str] = mapped_column(nullable=False, server_default="")
    html_body: Mapped[str | None]
    attachments: Mapped[list[Any]] = jsonb_list()
    status: Mapped[str] = mapped_column(choice("message_status", *MESSAGE_STATUSES), nullable=False)
    provider_message_id: Mapped[str | None] = short(255)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    error_code: Mapped[str | None] = short(64)
    error_message: Mapped[str | None]
    attempts: Mapped[int] = counter()
    # email headers (Message-ID, In-Reply-To, References), Twilio fields, suggestion provenance
    metadata_: Mapped[dict[str, Any]] = jsonb_obj("metadata")
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]


class ConversationAIConfig(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """Whether (and how) an AI agent handles one conversation."""

    __tablename__ = "conversation_ai_configs"
    __table_args__ = (
        CheckConstraint("satisfaction_score BETWEEN 0 AND 5", name="satisfaction_range"),
        UniqueConstraint("conversation_id"),
    )

    conversation_id: Mapped[uuid.UUID] = fk("conversations.id", ondelete="CASCADE", index=False)
    ai_agent_id: Mapped[uuid.UUID | None] = fk("ai_agents.id", ondelete="SET NULL", nullable=True)
    is_active: Mapped[bool] = flag(True)
    mode: Mapped[str] = mapped_column(choice("conversation_ai_mode", *AI_MODES), nullable=False,
                                      server_default="autopilot")
    messages_handled: Mapped[int] = counter()
    satisfaction_score: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    handoff_to_human: Mapped[bool] = flag(False)
    handoff_reason: Mapped[str | None]
    # reactivation timer: the bot resumes at this time if no human replied
    paused_until: Mapped[datetime | None]


class Handoff(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """A conversation waiting for, or taken by, a human: the needs-human queue."""

    __tablename__ = "handoffs"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        # at most one unresolved handoff per conversation
        Index("uq_handoffs_open_conversation", "conversation_id", unique=True,
              postgresql_where=text("resolved_at IS NULL")),
        Index("ix_handoffs_queue", "sub_account_id", "requested_at", postgresql_where=text("resolved_at IS NULL")),
        CheckConstraint("claimed_at IS NULL OR claimed_by IS NOT NULL", name="claimed_has_user"),
    )

    conversation_id: Mapped[uuid.UUID] = fk("conversations.id", ondelete="CASCADE")
    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="CASCADE", nullable=True)
    ai_agent_id: Mapped[uuid.UUID | None] = fk("ai_agents.id", ondelete="SET NULL", nullable=True)
    reason: Mapped[str] = mapped_column(choice("handoff_reason", *HANDOFF_REASONS), nullable=False)
    reason_detail: Mapped[str | None]
    summary: Mapped[str | None]
    status: Mapped[str] = mapped_column(choice("handoff_status", *HANDOFF_STATUSES), nullable=False,
                                        server_default="open")
    requested_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    assigned_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    claimed_by: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    claimed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    returned_to_ai_at: Mapped[datetime | None]


class CannedResponse(Entity, Base):
    """A saved reply staff insert in the inbox ("/hours" -> the opening hours), per sub-account."""

    __tablename__ = "canned_responses"
    __table_args__ = (
        Index("uq_canned_responses_shortcut", "sub_account_id", text("lower(shortcut)"), unique=True,
              postgresql_where=text("deleted_at IS NULL")),
    )

    shortcut: Mapped[str] = short(32, nullable=False)
    title: Mapped[str] = short(120, nullable=False)
    body: Mapped[str] = mapped_column(nullable=False)


class OutboxEvent(UUIDPrimaryKey, SubAccountOwned, Base):
    """Work written in the same transaction as the change that causes it (agent turns, sends)."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_pending", "available_at", postgresql_where=text("status = 'pending'")),
    )

    topic: Mapped[str] = short(64, nullable=False)
    aggregate_type: Mapped[str] = short(64, nullable=False)
    aggregate_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]] = jsonb_obj()
    dedupe_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(choice("outbox_status", *OUTBOX_STATUSES), nullable=False,
                                        server_default="pending")
    attempts: Mapped[int] = counter()
    available_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    dispatched_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
