"""Inbound SMS from Twilio: verified with Twilio's own RequestValidator, then in ONE transaction the contact is
matched or created, the conversation found or opened, the message stored (unique per MessageSid, so Twilio's
retries store nothing new) and the agent turn queued through the outbox. Opt-out keywords are the carrier
rules': STOP and friends set do-not-disturb (confirmed once), START/UNSTOP lift it, HELP answers."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from twilio.request_validator import RequestValidator

from channels import inbound, outbound
from leadpilot.settings import get_settings
from models.conversations import Channel, Conversation, Message
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import SubAccount
from services import crm
from services.campaigns import mirror_status
from services.errors import Forbidden, NotConfigured, NotFound

OPT_IN = re.compile(r"^\s*(start|unstop|yes)\s*$", re.I)
HELP = re.compile(r"^\s*(help|info)\s*$", re.I)


@dataclass(frozen=True)
class Inbound:
    """What the webhook stored."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    created: bool  # False: a retry of a message already stored
    keyword: str | None  # opt_out / opt_in / help, handled here instead of by the agent
    agency_id: uuid.UUID | None = None
    sub_account_id: uuid.UUID | None = None


ROUTE_TTL_S = 30.0  # a number moved to another sub-account, or switched off, routes anew within this time
_routes: dict[str, tuple[float, Channel, uuid.UUID]] = {}


def _route(to_number: str) -> tuple[Channel, uuid.UUID]:
    """The SMS channel of a number and its agency (before any tenant is known: owner role, one lookup),
    remembered for ROUTE_TTL_S: every inbound text needs it, and numbers rarely move."""
    cached = _routes.get(to_number)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1], cached[2]
    channel, agency_id = _lookup(to_number)
    _routes[to_number] = (time.monotonic() + ROUTE_TTL_S, channel, agency_id)
    return channel, agency_id


def _lookup(to_number: str) -> tuple[Channel, uuid.UUID]:
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
        # a provider retry is caught by the message insert itself (ON CONFLICT on the idempotency key), so a
        # first delivery pays no separate lookup
        contact, created = crm.match_or_create_contact(session=session, sub_account_id=channel.sub_account_id,
                                                       phone=from_number, defaults={"source": "sms"})
        # a contact created just now has no conversation to look for
        conversation = inbound.open_conversation(session, channel, contact.id, reuse_latest=not created)
        stored = inbound.store_message(session, conversation, idempotency_key=key, body=body,
                                       provider_message_id=sid, attachments=media, now=now,
                                       metadata={"from": from_number, "to": to_number})
        if not stored.created:
            return Inbound(stored.message_id, stored.conversation_id, False, keyword)
        if keyword:
            _keyword_reply(session, conversation, contact, keyword, sid)
        else:
            inbound.queue_turn(session, conversation, stored.message_id, agency_id=agency_id,
                               delay_seconds=inbound.reply_delay(channel), now=now)
        return Inbound(stored.message_id, conversation.id, True, keyword, agency_id, channel.sub_account_id)


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
    reply = Message(sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
                    channel_id=conversation.channel_id, contact_id=contact.id, direction="outbound",
                    sender_type="system", body=text, status="queued", idempotency_key=f"twilio-keyword:{sid}",
                    metadata_={"keyword": keyword, "urgent": True})
    session.add(reply)
    outbound.queue_send(session, reply)


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
            mirror_status(session, message)
        return message.status
