"""What an inbound path does inside its one transaction, a message at a time (email, webchat): find or open the
conversation, store the message once per provider id, and queue the agent turn through the outbox. The turn
is handed to a worker after the commit; should that hand-off be lost, the outbox dispatcher reclaims it. SMS,
many messages a second, does the same for a whole batch of texts at once (`channels.sms_store`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from channels import realtime
from models.ai import AIAgent
from models.conversations import Channel, Conversation, ConversationAIConfig, Message, OutboxEvent
from models.db import after_commit
from services import outbox

# how long a lead may keep typing before the agent answers everything at once (GoHighLevel's reply delay):
# a burst of texts gets one coherent reply; a channel can set its own `reply_delay_seconds`
REPLY_DELAY_SECONDS = {"sms": 1.0, "webchat": 0.6, "email": 0.0}


@dataclass(frozen=True)
class Stored:
    """An inbound message after its transaction: new, or a provider retry of one already stored."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    created: bool


def reply_delay(channel: Channel) -> float:
    """Seconds to wait after a lead's message before answering (a newer message restarts the wait)."""
    configured = (channel.config or {}).get("reply_delay_seconds")
    return float(configured) if configured is not None else REPLY_DELAY_SECONDS.get(channel.channel_type, 0.0)


def agent_for(session: Session, channel_type: str) -> tuple[AIAgent, str] | None:
    """The sub-account's active AI agent that works this channel, with its mode there (None: humans only)."""
    agent = session.scalars(select(AIAgent).where(AIAgent.is_active, AIAgent.deleted_at.is_(None),
                                                  AIAgent.enabled_channels.contains([channel_type]))
                            .order_by(AIAgent.created_at).limit(1)).first()
    return (agent, (agent.channel_modes or {}).get(channel_type, agent.mode)) if agent is not None else None


def attach_agent(session: Session, conversation: Conversation, channel_type: str) -> ConversationAIConfig | None:
    """A new conversation gets the sub-account's active AI agent that works this channel, in the agent's mode
    for the channel (none: the conversation is for humans only)."""
    found = agent_for(session, channel_type)
    if found is None:
        return None
    config = ConversationAIConfig(sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
                                  ai_agent_id=found[0].id, mode=found[1])
    session.add(config)
    session.flush()
    return config


def open_conversation(session: Session, channel: Channel, contact_id: uuid.UUID, *,
                      thread_id: str | None = None, subject: str | None = None,
                      reuse_latest: bool = True) -> Conversation:
    """The contact's latest conversation on this channel (`reuse_latest`), else a new one with the agent
    attached."""
    if reuse_latest:
        found = session.scalar(select(Conversation).where(
            Conversation.channel_id == channel.id, Conversation.contact_id == contact_id,
            Conversation.deleted_at.is_(None)).order_by(Conversation.created_at.desc()).limit(1))
        if found is not None:
            return found
    conversation = Conversation(sub_account_id=channel.sub_account_id, channel_id=channel.id, contact_id=contact_id,
                                external_thread_id=thread_id, subject=subject)
    session.add(conversation)
    session.flush()
    attach_agent(session, conversation, channel.channel_type)
    return conversation


def existing(session: Session, idempotency_key: str) -> Stored | None:
    """The message a provider retry refers to, if it is already stored."""
    found = session.execute(select(Message.id, Message.conversation_id)
                            .where(Message.idempotency_key == idempotency_key)).first()
    return Stored(found[0], found[1], False) if found else None


def store_message(session: Session, conversation: Conversation, *, idempotency_key: str, body: str,
                  provider_message_id: str | None = None, now: datetime | None = None,
                  **fields: Any) -> Stored:
    """Store one inbound message (once per idempotency key, also under concurrent retries) and bring the
    conversation up to date; the realtime event goes out after the commit."""
    now = now or datetime.now(UTC)
    message = session.scalars(pg_insert(Message).values(
        sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
        channel_id=conversation.channel_id, contact_id=conversation.contact_id, direction="inbound",
        sender_type="contact", sender_id=conversation.contact_id, body=body, status="received",
        provider_message_id=provider_message_id, idempotency_key=idempotency_key, **fields,
    ).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message)).first()
    if message is None:  # a concurrent retry stored it first
        found = existing(session, idempotency_key)
        assert found is not None
        return found
    conversation.last_message_at = conversation.last_inbound_at = now
    conversation.unread_count += 1
    if conversation.status == "resolved":
        conversation.status, conversation.resolved_at = "open", None
    realtime.message_event(session, message)
    from services import analytics, webhooks

    analytics.record(session, conversation.sub_account_id, "message_received", contact_id=conversation.contact_id,
                     properties={"conversation_id": str(conversation.id), "message_id": str(message.id),
                                 "channel_id": str(conversation.channel_id)})
    from services import workflows

    workflows.fire(session, conversation.sub_account_id, "inbound_message", conversation.contact_id,
                   {"channel_id": str(conversation.channel_id)})
    webhooks.emit(session, conversation.sub_account_id, "message.received", {
        "message_id": str(message.id), "conversation_id": str(conversation.id),
        "contact_id": str(conversation.contact_id), "body": body, "channel_id": str(conversation.channel_id)})
    return Stored(message.id, conversation.id, True)


def queue_turn(session: Session, conversation: Conversation, message_id: uuid.UUID, *, agency_id: uuid.UUID,
               delay_seconds: float = 0.0, now: datetime | None = None) -> OutboxEvent:
    """The agent turn for a stored message, written in the same transaction and handed to a worker after the
    commit, to run once the lead has stopped typing (`delay_seconds`)."""
    now = now or datetime.now(UTC)
    due = now + timedelta(seconds=delay_seconds)
    # marked dispatched: it is handed over right after the commit; a lost hand-off is reclaimed later
    event = OutboxEvent(sub_account_id=conversation.sub_account_id, topic="agent.turn", aggregate_type="message",
                        aggregate_id=message_id, available_at=due, status="dispatched", dispatched_at=now, attempts=1,
                        dedupe_key=f"agent.turn:{message_id}",
                        payload={"conversation_id": str(conversation.id), "message_id": str(message_id)})
    session.add(event)
    session.flush()
    event_id, sub_account_id = event.id, conversation.sub_account_id

    def hand_over() -> None:
        from workers.tasks import agent_turn_event

        agent_turn_event.apply_async(args=[str(event_id), str(agency_id), str(sub_account_id)],
                                     countdown=delay_seconds or None)

    after_commit(session, outbox.handing_over([event_id], hand_over))
    return event
