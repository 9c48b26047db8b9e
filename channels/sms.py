"""Inbound SMS from Twilio: verified with Twilio's own RequestValidator, then written with the texts arriving
at the same moment (group commit, `channels.sms_store`): in ONE transaction the contact is matched or created,
the conversation found or opened, the message stored (unique per MessageSid, so Twilio's retries store nothing
new) and the agent turn queued through the outbox; the webhook is answered once that is committed. Opt-out
keywords are the carrier rules': STOP and friends set do-not-disturb (confirmed once), START/UNSTOP lift it,
HELP answers."""

from __future__ import annotations

import logging
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
from services.errors import Forbidden, InvalidInput, NotFound

__all__ = ["Inbound", "accept", "receive_async", "status_callback", "verify"]

log = logging.getLogger("leadpilot.sms")
MAX_BODY = 1600  # Twilio's own cap on a message body, in characters
MAX_MEDIA = 10  # Twilio's cap on media per message
MAX_FORM_BYTES = 64 * 1024  # a real Twilio form (1,600 characters of 4-byte UTF-8, escaped, 10 media) is far less
OPT_IN = re.compile(r"^\s*(start|unstop|yes)\s*$", re.I)
HELP = re.compile(r"^\s*(help|info)\s*$", re.I)


ROUTE_TTL_S = 30.0  # a number moved to another sub-account, or switched off, routes anew within this time
_routes: dict[str, tuple[float, Channel, uuid.UUID]] = {}


def _route(to_number: str) -> tuple[Channel, uuid.UUID] | None:
    """The SMS channel of a number and its agency, or None (before any tenant is known: owner role, one
    lookup), remembered for ROUTE_TTL_S: every inbound text needs it, and numbers rarely move."""
    cached = _cached_route(to_number)
    if cached is not None:
        return cached
    found = _lookup(to_number)
    if found is not None:
        _routes[to_number] = (time.monotonic() + ROUTE_TTL_S, *found)
    return found


def _lookup(to_number: str) -> tuple[Channel, uuid.UUID] | None:
    with owner_session() as session:
        found = session.execute(select(Channel, SubAccount.agency_id).join(
            SubAccount, SubAccount.id == Channel.sub_account_id).where(
            Channel.channel_type == "sms", Channel.address == to_number, Channel.deleted_at.is_(None),
            Channel.is_active)).first()
    return (found[0], found[1]) if found is not None else None


class TwilioParams(dict[str, str]):
    """A parsed Twilio form as the validator reads it: `RequestValidator.get_values` asks for `getall` first
    (MultiDict), then `getlist`, then plain indexing, so a plain dict costs it two exceptions per parameter."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


@lru_cache(maxsize=256)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


# one answer for every request that is not Twilio's (no signature, a wrong one, a number or message we cannot
# verify for, no token configured): a prober learns nothing about which numbers or messages exist
NOT_VERIFIED = "The Twilio signature does not match this request."


def verify(url: str, form: dict[str, str], signature: str | None, channel: Channel | None) -> None:
    """Twilio's signature over the public URL and the form, with the channel's auth token (or the global one;
    no channel: the global one only, as a per-channel token cannot be known)."""
    token = ((channel.config or {}).get("auth_token") if channel is not None else None) \
        or get_settings().twilio_webhook_token
    if not token:
        log.warning("Twilio webhook refused: no auth token (TWILIO_AUTH_TOKEN or the channel's auth_token)")
        raise Forbidden(NOT_VERIFIED)
    params = form if isinstance(form, TwilioParams) else TwilioParams(form)
    if not signature or not _validator(token).validate(url, params, signature):
        raise Forbidden(NOT_VERIFIED)


def _clean(form: dict[str, str]) -> TwilioParams:
    """The verified form as it is stored: NUL bytes dropped (Postgres text cannot hold them), the body cut to
    Twilio's own 1,600 characters and the media count to Twilio's 10. A signed longer body is cut rather than
    refused: the request is Twilio's, and a refusal would lose the lead's text (Twilio does not redeliver on a
    4xx), while no real text is longer than the cap."""
    clean = TwilioParams({k.replace("\x00", ""): v.replace("\x00", "") for k, v in form.items()})
    if len(clean.get("Body", "")) > MAX_BODY:
        clean["Body"] = clean["Body"][:MAX_BODY]
    media = clean.get("NumMedia", "0")
    clean["NumMedia"] = str(min(int(media), MAX_MEDIA)) if media.isascii() and media.isdigit() else "0"
    return clean


@lru_cache(maxsize=65_536)
def _e164(raw: str) -> str:
    phone = crm.normalize_phone(raw)
    if phone is None:
        raise InvalidInput("A Twilio message always carries a From number.", field="From")
    return phone


def _cached_route(to_number: str) -> tuple[Channel, uuid.UUID] | None:
    cached = _routes.get(to_number)
    return (cached[1], cached[2]) if cached is not None and cached[0] > time.monotonic() else None


def accept(url: str, form: dict[str, str], signature: str | None, route: tuple[Channel, uuid.UUID] | None) -> Text:
    """Verify the request against its number's channel and read what is to be stored (nothing stored yet)."""
    verify(url, form, signature, route[0] if route is not None else None)
    if route is None:  # Twilio's own request, to a number no sub-account has (a number moved, a typo)
        raise NotFound(f"No SMS channel for {form.get('To', '')}.")
    channel, agency_id = route
    form = _clean(form)
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
    if route is None:  # the first text to this number in a while: one lookup, off the event loop; the number
        # names the channel whose token verifies the request, so the lookup has to come first
        route = await run_in_threadpool(_route, to_number)
    return await _committer.submit(accept(url, form, signature, route))


# Twilio's documented MessageStatus values, each onto the message status it means here (None: acknowledged,
# nothing to record: inbound states never describe our outbound message). accepted / scheduled are a Messaging
# Service's queue; partially_delivered (some parts or media arrived) stays `sent`, its detail in the metadata;
# canceled (a scheduled message withdrawn) never reached the lead: `failed`, so campaigns count it as such.
TWILIO_STATUSES: dict[str, str | None] = {
    "accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "sending", "sent": "sent",
    "partially_delivered": "sent", "delivered": "delivered", "undelivered": "undelivered", "failed": "failed",
    "canceled": "failed", "read": "read", "receiving": None, "received": None,
}
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3, "read": 4}


def status_callback(url: str, form: dict[str, str], signature: str | None) -> str | None:
    """Twilio's delivery status for one of our messages: verified like inbound, applied only when it moves the
    message forward (callbacks arrive out of order; a late 'sent' never undoes 'delivered'). Returns the status
    now on the message, or None when there is nothing to apply (a message we do not know, a status that says
    nothing about it or one Twilio added since): acknowledged, nothing stored."""
    sid, reported = form.get("MessageSid", ""), form.get("MessageStatus", "")
    with owner_session() as session:  # before any tenant is known: find the message's channel by the sid
        found = session.execute(select(Message.id, Channel, SubAccount.agency_id)
                                .join(Channel, Channel.id == Message.channel_id)
                                .join(SubAccount, SubAccount.id == Message.sub_account_id)
                                .where(Message.provider_message_id == sid, Message.direction == "outbound")).first()
    verify(url, form, signature, found[1] if found is not None else None)
    status = TWILIO_STATUSES.get(reported)
    if found is None or status is None:
        if reported not in TWILIO_STATUSES:
            log.info("Twilio status %r for %s is not one we know; ignored", reported[:40], sid[:64])
        return None
    message_id, channel, agency_id = found
    now = datetime.now(UTC)
    with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=channel.sub_account_id)) as session:
        message = session.get(Message, message_id, with_for_update=True)
        assert message is not None
        if reported != status:
            message.metadata_ = {**(message.metadata_ or {}), "twilio_status": reported}
        if STATUS_RANK.get(message.status, -1) < STATUS_RANK[status]:
            message.status = status
            if status == "sent":
                message.sent_at = message.sent_at or now
            elif status == "delivered":
                message.delivered_at = now
            elif status in ("undelivered", "failed"):
                message.error_code = (form.get("ErrorCode") or ("canceled" if reported == "canceled" else None))
                message.error_message = form.get("ErrorMessage") or (
                    "Canceled before it was sent." if reported == "canceled" else None)
            mirror_status(session, message)
        return message.status
