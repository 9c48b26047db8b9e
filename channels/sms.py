"""Inbound SMS from Twilio: verified with Twilio's own RequestValidator, then in ONE transaction the contact is
matched or created, the conversation found or opened, the message stored (unique per MessageSid, so Twilio's
retries store nothing new) and the agent turn queued through the outbox. Opt-out keywords are the carrier
rules': STOP and friends set do-not-disturb (confirmed once), START/UNSTOP lift it, HELP answers."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from twilio.request_validator import RequestValidator

from leadpilot.settings import get_settings
from models.ai import AIAgent
from models.conversations import Channel, Conversation, ConversationAIConfig, Message, OutboxEvent
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import SubAccount
from services import crm
from services.errors import DomainError, Forbidden, NotFound

OPT_IN = re.compile(r"^\s*(start|unstop|yes)\s*$", re.I)
HELP = re.compile(r"^\s*(help|info)\s*$", re.I)


class NotConfigured(DomainError):
    status = 503
    title = "Not configured"


@dataclass(frozen=True)
class Inbound:
    """What the webhook stored."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    created: bool  # False: a retry of a message already stored
    keyword: str | None  # opt_out / opt_in / help, handled here instead of by the agent
    agency_id: uuid.UUID | None = None
    sub_account_id: uuid.UUID | None = None
    turn_event_id: uuid.UUID | None = None  # the agent turn to hand to a worker now (the outbox keeps it safe)


def _route(to_number: str) -> tuple[Channel, uuid.UUID]:
    """The SMS channel of a number and its agency (before any tenant is known: owner role, one lookup)."""
    with owner_session() as session:
        found = session.execute(select(Channel, SubAccount.agency_id).join(
            SubAccount, SubAccount.id == Channel.sub_account_id).where(
            Channel.channel_type == "sms", Channel.address == to_number, Channel.deleted_at.is_(None),
            Channel.is_active)).first()
    if found is None:
        raise NotFound(f"No SMS channel for {to_number}.")
    return found[0], found[1]


def verify(url: str, form: dict[str, str], signature: str | None, channel: Channel) -> None:
    """Twilio's signature over the public URL and the form, with the channel's auth token (or the global one)."""
    token = (channel.config or {}).get("auth_token") or get_settings().twilio_auth_token
    if not token:
        raise NotConfigured("Twilio webhooks are not configured (TWILIO_AUTH_TOKEN or the channel's auth_token).")
    if not signature or not RequestValidator(token).validate(url, form, signature):
        raise Forbidden("The Twilio signature does not match this request.")


def receive(url: str, form: dict[str, str], signature: str | None) -> Inbound:
    """Verify, then store the message and queue its agent turn, all or nothing."""
    to_number, from_number, sid = form.get("To", ""), form.get("From", ""), form.get("MessageSid", "")
    channel, agency_id = _route(to_number)
    verify(url, form, signature, channel)
    if not sid:
        raise Forbidden("A Twilio message always carries a MessageSid.")
    body = form.get("Body", "")
    media = [{"url": form[f"MediaUrl{i}"], "content_type": form.get(f"MediaContentType{i}")}
             for i in range(int(form.get("NumMedia", "0") or 0)) if f"MediaUrl{i}" in form]
    now = datetime.now(UTC)
    keyword = ("opt_out" if crm.OPT_OUT.match(body) else "opt_in" if OPT_IN.match(body) else
               "help" if HELP.match(body) else None)
    with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=channel.sub_account_id)) as session:
        key = f"twilio:{sid}"
        existing = session.scalar(select(Message).where(Message.idempotency_key == key))
        if existing is not None:
            return Inbound(existing.id, existing.conversation_id, False, keyword)
        contact, _ = crm.match_or_create_contact(session=session, sub_account_id=channel.sub_account_id,
                                                 phone=from_number, defaults={"source": "sms"})
        conversation = session.scalar(select(Conversation).where(
            Conversation.channel_id == channel.id, Conversation.contact_id == contact.id,
            Conversation.deleted_at.is_(None)).order_by(Conversation.created_at.desc()).limit(1))
        if conversation is None:
            conversation = Conversation(sub_account_id=channel.sub_account_id, channel_id=channel.id,
                                        contact_id=contact.id)
            session.add(conversation)
            session.flush()
            attach_agent(session, conversation, "sms")
        inserted = session.execute(pg_insert(Message).values(
            sub_account_id=channel.sub_account_id, conversation_id=conversation.id, channel_id=channel.id,
            contact_id=contact.id, direction="inbound", sender_type="contact", body=body, attachments=media,
            status="received", provider_message_id=sid, idempotency_key=key,
        ).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message.id)).scalar()
        if inserted is None:  # a concurrent retry stored it first
            stored = session.scalar(select(Message).where(Message.idempotency_key == key))
            assert stored is not None
            return Inbound(stored.id, stored.conversation_id, False, keyword)
        conversation.last_message_at = conversation.last_inbound_at = now
        conversation.unread_count += 1
        if conversation.status == "resolved":
            conversation.status = "open"
        event = None
        if keyword:
            _keyword_reply(session, conversation, contact, keyword, sid)
        else:
            # marked dispatched: the webhook hands it to a worker right after commit; should that hand-off be
            # lost, the dispatcher reclaims it (outbox.RECLAIM_AFTER)
            event = OutboxEvent(sub_account_id=channel.sub_account_id, topic="agent.turn", aggregate_type="message",
                                aggregate_id=inserted, available_at=now, status="dispatched", dispatched_at=now,
                                attempts=1, dedupe_key=f"agent.turn:{inserted}",
                                payload={"conversation_id": str(conversation.id), "message_id": str(inserted)})
            session.add(event)
        session.flush()
        return Inbound(inserted, conversation.id, True, keyword, agency_id, channel.sub_account_id,
                       event.id if event else None)


def attach_agent(session: Any, conversation: Conversation, channel_type: str) -> ConversationAIConfig | None:
    """A new conversation gets the sub-account's active AI agent that works this channel, in the agent's mode
    for the channel (none: the conversation is for humans only)."""
    agent = session.scalars(select(AIAgent).where(AIAgent.is_active, AIAgent.deleted_at.is_(None),
                                                  AIAgent.enabled_channels.contains([channel_type]))
                            .order_by(AIAgent.created_at).limit(1)).first()
    if agent is None:
        return None
    config = ConversationAIConfig(sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
                                  ai_agent_id=agent.id, mode=(agent.channel_modes or {}).get(channel_type, agent.mode))
    session.add(config)
    session.flush()
    return config


def _keyword_reply(session: Any, conversation: Conversation, contact: Any, keyword: str, sid: str) -> None:
    sub = session.get(SubAccount, conversation.sub_account_id)
    if keyword == "opt_out":
        crm.set_dnd(session=session, contact_id=contact.id, channel="sms", enabled=True, reason="STOP")
        text = f"You're unsubscribed from {sub.name} and won't get more messages. Reply START to resubscribe."
    elif keyword == "opt_in":
        crm.set_dnd(session=session, contact_id=contact.id, channel="sms", enabled=False)
        text = f"You're subscribed to {sub.name} again. Reply STOP to unsubscribe."
    else:
        text = (sub.settings or {}).get("help_text") or (f"{sub.name}: reply to this number to reach us, or call "
                                                        f"{sub.phone or 'us'}. Reply STOP to unsubscribe.")
    session.add(Message(sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
                        channel_id=conversation.channel_id, contact_id=contact.id, direction="outbound",
                        sender_type="system", body=text, status="queued", idempotency_key=f"twilio-keyword:{sid}"))


STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3, "read": 4}


def status_callback(url: str, form: dict[str, str], signature: str | None) -> str | None:
    """Twilio's delivery status for one of our messages: verified like inbound, applied only when it moves the
    message forward (callbacks arrive out of order; a late 'sent' never undoes 'delivered'). Returns the status
    now on the message, or None for a message we do not know (acknowledged, nothing stored)."""
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
    with owner_session() as session:  # before any tenant is known: find the message's channel by the sid
        found = session.execute(select(Message.id, Channel, SubAccount.agency_id)
                                .join(Channel, Channel.id == Message.channel_id)
                                .join(SubAccount, SubAccount.id == Message.sub_account_id)
                                .where(Message.provider_message_id == sid, Message.direction == "outbound")).first()
    if found is None:
        return None
    message_id, channel, agency_id = found
    verify(url, form, signature, channel)
    if status not in STATUS_RANK:
        raise Forbidden(f"Unknown Twilio status {status!r}.")
    now = datetime.now(UTC)
    with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=channel.sub_account_id)) as session:
        message = session.get(Message, message_id, with_for_update=True)
        assert message is not None
        if STATUS_RANK.get(message.status, -1) < STATUS_RANK[status]:
            message.status = status
            if status == "sent":
                message.sent_at = message.sent_at or now
            elif status == "delivered":
                message.delivered_at = now
            elif status in ("undelivered", "failed"):
                message.error_code, message.error_message = form.get("ErrorCode"), form.get("ErrorMessage")
        return message.status
