"""Inbound SMS from Twilio: verified with Twilio's own RequestValidator, then written with the texts arriving
at the same moment (group commit, `channels.sms_store`): in ONE transaction the contact is matched or created,
the conversation found or opened, the message stored (unique per MessageSid, so Twilio's retries store nothing
new) and the agent turn queued through the outbox; the webhook is answered once that is committed. Opt-out
keywords are the carrier rules': STOP and friends set do-not-disturb (confirmed once), START/UNSTOP lift it,
HELP answers."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from channels.group_commit import GroupCommit
from channels.sms_store import Inbound, Text, write
from leadpilot.settings import get_settings
from models.conversations import Channel, Message
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import SubAccount
from services import crm
from services.campaigns import mirror_status
from services.errors import Forbidden, InvalidInput, NotConfigured, NotFound

__all__ = ["Inbound", "accept", "receive_async", "status_callback", "verify"]

OPT_IN = re.compile(r"^\s*(start|unstop|yes)\s*$", re.I)
HELP = re.compile(r"^\s*(help|info)\s*$", re.I)


ROUTE_TTL_S = 30.0  # a number moved to another sub-account, or switched off, routes anew within this time
_routes: dict[str, tuple[float, Channel, uuid.UUID]] = {}


def _route(to_number: str) -> tuple[Channel, uuid.UUID]:
    """The SMS channel of a number and its agency (before any tenant is known: owner role, one lookup),
    remembered for ROUTE_TTL_S: every inbound text needs it, and numbers rarely move."""
    cached = _cached_route(to_number)
    if cached is not None:
        return cached
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


class TwilioParams(dict[str, str]):
    """A parsed Twilio form as the validator reads it: `RequestValidator.get_values` asks for `getall` first
    (MultiDict), then `getlist`, then plain indexing, so a plain dict costs it two exceptions per parameter."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


@lru_cache(maxsize=256)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def verify(url: str, form: dict[str, str], signature: str | None, channel: Channel) -> None:
    """Twilio's signature over the public URL and the form, with the channel's auth token (or the global one)."""
    token = (channel.config or {}).get("auth_token") or get_settings().twilio_auth_token
    if not token:
        raise NotConfigured("Twilio webhooks are not configured (TWILIO_AUTH_TOKEN or the channel's auth_token).")
    params = form if isinstance(form, TwilioParams) else TwilioParams(form)
    if not signature or not _validator(token).validate(url, params, signature):
        raise Forbidden("The Twilio signature does not match this request.")


@lru_cache(maxsize=65_536)
def _e164(raw: str) -> str:
    phone = crm.normalize_phone(raw)
    if phone is None:
        raise InvalidInput("A Twilio message always carries a From number.", field="From")
    return phone


def _cached_route(to_number: str) -> tuple[Channel, uuid.UUID] | None:
    cached = _routes.get(to_number)
    return (cached[1], cached[2]) if cached is not None and cached[0] > time.monotonic() else None


def accept(url: str, form: dict[str, str], signature: str | None, route: tuple[Channel, uuid.UUID]) -> Text:
    """Verify the request against its number's channel and read what is to be stored (nothing stored yet)."""
    channel, agency_id = route
    verify(url, form, signature, channel)
    sid = form.get("MessageSid", "")
    if not sid:
        raise Forbidden("A Twilio message always carries a MessageSid.")
    body = form.get("Body", "")
    keyword = ("opt_out" if crm.OPT_OUT.match(body) else "opt_in" if OPT_IN.match(body) else
               "help" if HELP.match(body) else None)
    return Text(channel, agency_id, sid, _e164(form.get("From", "")), form, keyword, datetime.now(UTC))


_committer: GroupCommit[Text, Inbound] = GroupCommit("sms-ingest", write, linger_s=0.004)


async def receive_async(url: str, form: dict[str, str], signature: str | None) -> Inbound:
    """Verified on the event loop, then stored (with its contact, conversation and queued agent turn, all or
    nothing) by group commit with the texts that arrive meanwhile; returns once its own rows are committed."""
    to_number = form.get("To", "")
    route = _cached_route(to_number)
    if route is None:  # the first text to this number in a while: one lookup, off the event loop
        route = await run_in_threadpool(_route, to_number)
    return await _committer.submit(accept(url, form, signature, route))


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
