"""Outbound: every message to a lead leaves through `queue_send` (an outbox row in the message's own
transaction, handed to the `outbound` queue after the commit) and `deliver` (one worker attempt).

Exactly once: the message row is locked and moved to `sending` (committed) before the provider is called,
and to `sent` with the provider's id after. A redelivered task finds it sent and does nothing. A task that
died during the provider call leaves `sending`: a transport that dedupes by our idempotency key (the sandbox,
the webchat push) is simply called again; Twilio, which cannot dedupe, is asked whether it took the message
(recorded sent if so, sent now if not); for SMTP, which can say neither, the message is marked failed as
"outcome unknown" for a person to check, never sent a second time. Provider hiccups are retried with
exponential backoff; after the last retry the message carries a dead-letter record."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from channels import realtime
from leadpilot.settings import get_settings
from models.bulk import insert_rows
from models.conversations import Channel, Conversation, Message, OutboxEvent
from models.crm import Contact
from models.db import TenantScope, after_commit, tenant_session
from models.sandbox import SandboxDelivery
from models.tenancy import SubAccount
from services import outbox
from services.campaigns import mirror_status
from services.crm import is_dnd

MAX_ATTEMPTS = 6  # the first try and five retries: 5 s, 10 s, 20 s, 40 s, 80 s apart
DONE = ("sent", "delivered", "read", "undelivered", "failed", "discarded")


class TransientError(Exception):
    """The provider could not take the message now (network, 429, 5xx): try again later."""


class PermanentError(Exception):
    """The provider refused the message (bad number, blocked recipient): retrying cannot help."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Outgoing:
    """What a transport needs to send one message."""

    key: str  # idempotency key: the same for every attempt at this message
    message: Message
    channel: Channel
    conversation: Conversation
    contact: Contact
    sub_account: SubAccount
    thread: list[dict[str, Any]] = field(default_factory=list)  # earlier messages' email headers, oldest first


@dataclass(frozen=True)
class Sent:
    """The provider's answer."""

    provider_message_id: str | None
    status: str = "sent"
    metadata: dict[str, Any] = field(default_factory=dict)


class Transport(Protocol):
    """One way out: Twilio, SMTP, the webchat push, or the sandbox that records instead of sending."""

    name: str
    # whether calling again with the same key is harmless (so a task that died mid-call may simply retry)
    dedupes: bool

    def send(self, out: Outgoing) -> Sent: ...


@runtime_checkable
class Reconciling(Protocol):
    """A transport that cannot dedupe but can say whether a message reached it (Twilio lists what it took)."""

    def find(self, out: Outgoing, *, since: datetime) -> Sent | None: ...


PROVIDER_TIMEOUT_S = 15.0  # no provider call outlives this
# a `sending` younger than this may belong to an attempt still inside its provider call
SENDING_STALE = timedelta(seconds=2 * PROVIDER_TIMEOUT_S)
SEND_CHUNK = 25  # sends per broker hand-off for a campaign batch


def queue_send(session: Session, message: Message, *, not_before: datetime | None = None) -> uuid.UUID | None:
    """Queue a stored outbound message for sending: an outbox row in the same transaction (once per message),
    handed to a worker after the commit. Returns the outbox event id (None: it was queued already)."""
    queued = queue_sends(session, [message], not_before=not_before)
    return queued[0] if queued else None


@dataclass(frozen=True)
class Queued:
    """A stored message by its ids alone: what `queue_sends` needs of it when nobody is to be told."""

    id: uuid.UUID
    sub_account_id: uuid.UUID


def queue_sends(session: Session, messages: Sequence[Message | Queued], *, not_before: datetime | None = None,
                announce: bool = True) -> list[uuid.UUID]:
    """`queue_send` for many messages at once (a campaign batch): one multi-row outbox insert, one hand-off
    after the commit through one broker connection. `announce=False` leaves the per-message realtime events
    out (the caller announces the batch; `Queued` ids are enough then). Returns the new outbox event ids."""
    if not messages:
        return []
    session.flush()
    now = datetime.now(UTC)
    rows = [{"sub_account_id": m.sub_account_id, "topic": "message.send", "aggregate_type": "message",
             "aggregate_id": m.id, "available_at": not_before or now, "status": "dispatched", "dispatched_at": now,
             "attempts": 1, "dedupe_key": f"message.send:{m.id}",
             # a lead waiting on this reply: a hand-over lost with a worker or a broker restart comes back in
             # seconds (services/outbox.py), not after the reclaim meant for long tasks
             "payload": {"message_id": str(m.id), **({"urgent": True} if isinstance(m, Message) and is_urgent(m)
                                                     else {})}}
            for m in messages]
    # one short statement over column arrays, not a 500-row VALUES compiled and parsed for every batch
    queued = insert_rows(session, OutboxEvent, rows, on_conflict_do_nothing=["dedupe_key"],
                         returning=["id", "sub_account_id"])
    if announce:
        for message in messages:
            assert isinstance(message, Message)
            realtime.message_event(session, message)
    if not queued:
        return []
    subs = {sub for _, sub in queued}
    agencies = dict(session.execute(select(SubAccount.id, SubAccount.agency_id).where(SubAccount.id.in_(subs))).all())
    work = [(str(event_id), str(agencies[sub]), str(sub)) for event_id, sub in queued]

    def hand_over() -> None:
        from workers.app import celery_app
        from workers.tasks import send_message, send_messages

        with celery_app.producer_or_acquire() as producer:
            if len(work) < SEND_CHUNK:
                for args in work:
                    send_message.apply_async(args=list(args), eta=not_before, producer=producer)
                return
            # a campaign batch: a task per chunk of sends (workers still share the batch chunk by chunk)
            by_tenant: dict[tuple[str, str], list[str]] = {}
            for event_id, agency_id, sub_account_id in work:
                by_tenant.setdefault((agency_id, sub_account_id), []).append(event_id)
            for (agency_id, sub_account_id), ids in by_tenant.items():
                for start in range(0, len(ids), SEND_CHUNK):
                    send_messages.apply_async(args=[ids[start:start + SEND_CHUNK], agency_id, sub_account_id],
                                              eta=not_before, producer=producer)

    after_commit(session, outbox.handing_over([event_id for event_id, _, _ in work], hand_over))
    return [event_id for event_id, _ in queued]


def quiet_until(sub: SubAccount, contact: Contact, now: datetime) -> datetime | None:
    """The end of the sub-account's quiet hours if `now` falls inside them, in the lead's timezone when known
    (else the business's); None outside them or when none are set."""
    quiet = (sub.settings or {}).get("quiet_hours") or {}
    if not quiet.get("start") or not quiet.get("end"):
        return None
    zone = ZoneInfo(contact.timezone or sub.timezone or "UTC")
    local = now.astimezone(zone)
    start, end = time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"])
    clock = local.time()
    inside = (start <= clock < end) if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def is_urgent(message: Message) -> bool:
    """Conversation replies (the agent's, a person's) and carrier keyword confirmations go out at once;
    automated outreach (reminders, campaigns, workflows) waits out quiet hours."""
    return message.sender_type in ("bot", "user") or bool((message.metadata_ or {}).get("urgent"))


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt decided."""

    outcome: str  # sent | done | deferred | failed | retry | not_approved | missing
    status: str | None = None
    retry_in: float | None = None
    not_before: datetime | None = None
    error: str | None = None


def deliver(scope: TenantScope, message_id: uuid.UUID, *, now: datetime | None = None,
            transport: Transport | None = None) -> Attempt:
    """One attempt at sending a queued message (see the module docstring for the guarantees)."""
    now = now or datetime.now(UTC)
    with tenant_session(scope) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.direction != "outbound":
            return Attempt("missing")
        if message.status in DONE:
            return Attempt("done", message.status)
        if message.status in ("draft", "pending_approval"):
            return Attempt("not_approved", message.status)
        channel = session.get(Channel, message.channel_id)
        conversation = session.get(Conversation, message.conversation_id)
        contact = session.get(Contact, message.contact_id) if message.contact_id else None
        sub = session.get(SubAccount, message.sub_account_id)
        assert channel is not None and conversation is not None and sub is not None
        chosen = transport or transport_for(channel)
        # an earlier attempt committed `sending` and never recorded the provider's answer: it died in the call,
        # or (young) may still be inside it
        cut_off = message.status == "sending" and not chosen.dedupes
        began = _sending_since(message) if cut_off else None
        if cut_off and began is not None and now - began < SENDING_STALE:
            wait = (SENDING_STALE - (now - began)).total_seconds() + 1.0
            return Attempt("retry", message.status, retry_in=wait, error="An earlier attempt may still be sending.")
        if cut_off and not isinstance(chosen, Reconciling):
            return _finish(session, message, "failed", code="outcome_unknown",
                           error="The worker stopped while the provider was being called; not sent again so the "
                                 "lead never gets it twice. Check the provider's log before resending.")
        if contact is None:
            return _finish(session, message, "failed", code="no_recipient", error="The message has no contact.")
        keyword = (message.metadata_ or {}).get("keyword")
        if is_dnd(contact, channel.channel_type) and not keyword:
            return _finish(session, message, "failed", code="dnd",
                           error=f"The contact has opted out of {channel.channel_type}.")
        if channel.channel_type == "sms" and not is_urgent(message):
            until = quiet_until(sub, contact, now)
            if until is not None:
                message.metadata_ = {**(message.metadata_ or {}), "deferred_until": until.isoformat()}
                return Attempt("deferred", message.status, not_before=until)
        out = Outgoing(key=f"send:{message.id}", message=message, channel=channel, conversation=conversation,
                       contact=contact, sub_account=sub, thread=_thread(session, conversation, message))
        if cut_off:  # ask the provider whether the attempt that died got the message to it (row still locked)
            assert isinstance(chosen, Reconciling)
            try:
                earlier = chosen.find(out, since=began or message.updated_at or now)
            except Exception as exc:  # the provider cannot say now: ask again later, never guess
                return Attempt("retry", message.status, retry_in=5.0, error=f"{type(exc).__name__}: {exc}"[:2000])
            if earlier is not None:
                return _record_sent(session, message, earlier, now)
        message.status, message.attempts = "sending", message.attempts + 1
        message.metadata_ = {**(message.metadata_ or {}), "sending_at": now.isoformat()}
    try:
        sent = chosen.send(out)
    except PermanentError as exc:
        with tenant_session(scope) as session:
            message = session.get(Message, message_id, with_for_update=True)
            assert message is not None
            return _finish(session, message, "failed", code=exc.code or "rejected", error=str(exc))
    except Exception as exc:  # transient by default: the provider may well take it on the next try
        error = f"{type(exc).__name__}: {exc}"[:2000]
        with tenant_session(scope) as session:
            message = session.get(Message, message_id, with_for_update=True)
            assert message is not None
            if message.attempts >= MAX_ATTEMPTS:
                message.metadata_ = {**(message.metadata_ or {}), "dead_letter": {
                    "attempts": message.attempts, "last_error": error, "at": datetime.now(UTC).isoformat(),
                    "transport": chosen.name}}
                return _finish(session, message, "failed", code="dead_letter", error=error)
            message.status, message.error_message = "queued", error
            return Attempt("retry", "queued", retry_in=5.0 * 2 ** (message.attempts - 1), error=error)
    with tenant_session(scope) as session:
        message = session.get(Message, message_id, with_for_update=True)
        assert message is not None
        return _record_sent(session, message, sent, now)


def _record_sent(session: Session, message: Message, sent: Sent, now: datetime) -> Attempt:
    message.status, message.sent_at = sent.status, now
    message.provider_message_id = sent.provider_message_id
    message.error_code = message.error_message = None
    if sent.metadata:
        message.metadata_ = {**(message.metadata_ or {}), **sent.metadata}
    if sent.status == "delivered":
        message.delivered_at = now
    mirror_status(session, message)
    realtime.message_event(session, message, "message.updated")
    return Attempt("sent", sent.status)


def _sending_since(message: Message) -> datetime | None:
    """When the attempt that left the message `sending` began (None: before attempts recorded it)."""
    began = (message.metadata_ or {}).get("sending_at")
    return datetime.fromisoformat(began) if isinstance(began, str) else None


def _finish(session: Session, message: Message, status: str, *, code: str, error: str) -> Attempt:
    message.status, message.error_code, message.error_message = status, code, error
    mirror_status(session, message)
    realtime.message_event(session, message, "message.updated")
    return Attempt("failed", status, error=error)


def _thread(session: Session, conversation: Conversation, message: Message) -> list[dict[str, Any]]:
    """Email threading material: the headers of the conversation's earlier messages, oldest first."""
    if conversation.external_thread_id is None and message.subject is None:
        return []
    rows = session.execute(select(Message.metadata_, Message.subject).where(
        Message.conversation_id == conversation.id, Message.id != message.id,
        Message.created_at <= message.created_at).order_by(Message.created_at)).all()
    return [{**(meta or {}), "subject": subject} for meta, subject in rows]


def sandbox_id(key: str) -> str:
    """A stable provider id for a sandboxed send (the same key always gets the same id)."""
    return "SB" + hashlib.sha256(key.encode()).hexdigest()[:32]


class SandboxTransport:
    """Records what would have been sent (visible in the app, asserted on by tests) instead of sending it;
    a retried send with the same key is recorded once."""

    dedupes = True

    def __init__(self, provider: str, operation: str) -> None:
        self.name, self.provider, self.operation = f"sandbox:{provider}", provider, operation

    def request(self, out: Outgoing) -> dict[str, Any]:
        """The call a real transport would have made."""
        return {"message_id": str(out.message.id), "to": _recipient(out), "from": out.channel.address,
                "body": out.message.body, "media": [a.get("url") for a in out.message.attachments or []
                                                    if isinstance(a, dict) and a.get("url")]}

    def send(self, out: Outgoing) -> Sent:
        provider_id = sandbox_id(out.key)
        scope = TenantScope(agency_id=out.sub_account.agency_id, sub_account_id=out.sub_account.id)
        with tenant_session(scope) as session:
            session.execute(pg_insert(SandboxDelivery).values(
                sub_account_id=out.sub_account.id, provider=self.provider, operation=self.operation,
                idempotency_key=out.key, request=self.request(out), response={"sid": provider_id, "status": "sent"},
            ).on_conflict_do_nothing(index_elements=["idempotency_key"]))
        return Sent(provider_id, "sent", {"transport": self.name})


def _recipient(out: Outgoing) -> str | None:
    kind = out.channel.channel_type
    return out.contact.phone if kind == "sms" else out.contact.email if kind == "email" else str(out.contact.id)


class TwilioTransport:
    """Twilio's REST API through the `twilio` Client, with a status callback to our webhook."""

    name, dedupes = "twilio", False

    def __init__(self, account_sid: str, auth_token: str, api_base: str | None = None) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=PROVIDER_TIMEOUT_S))
        if api_base:  # a local server speaking Twilio's protocol (tests), or a regional edge
            self.client.api.base_url = api_base.rstrip("/")

    def send(self, out: Outgoing) -> Sent:
        from twilio.base.exceptions import TwilioRestException

        if not out.contact.phone:
            raise PermanentError("The contact has no phone number.", "no_recipient")
        media = [a["url"] for a in out.message.attachments or [] if isinstance(a, dict) and a.get("url")]
        callback = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/status"
        try:
            created = self.client.messages.create(to=out.contact.phone, from_=out.channel.address,
                                                  body=out.message.body, status_callback=callback,
                                                  **({"media_url": media} if media else {}))
        except TwilioRestException as exc:
            if exc.status == 429 or exc.status >= 500:
                raise TransientError(f"Twilio {exc.status}: {exc.msg}") from exc
            raise PermanentError(f"Twilio refused the message: {exc.msg}", str(exc.code or exc.status)) from exc
        return _twilio_sent(created)

    def find(self, out: Outgoing, *, since: datetime) -> Sent | None:
        """The message an attempt cut off in its call may have created: among Twilio's newest from the channel's
        number to the lead's, one with this body created since that attempt began."""
        if not out.contact.phone:
            return None
        for found in self.client.messages.list(to=out.contact.phone, from_=out.channel.address, limit=20):
            created = found.date_created
            if found.body == out.message.body and (created is None or created >= since - timedelta(minutes=2)):
                return _twilio_sent(found)
        return None


def _twilio_sent(message: Any) -> Sent:
    status = message.status if message.status in ("queued", "sending", "sent", "delivered") else "sent"
    return Sent(message.sid, "sent" if status in ("queued", "sending") else status)


class WebchatTransport:
    """A webchat reply needs no provider: the lead's widget receives it through the realtime fan-out (and
    the transcript on reconnect), so handing it over is marking it delivered."""

    name, dedupes = "webchat", True

    def send(self, out: Outgoing) -> Sent:
        return Sent(None, "delivered")


def transport_for(channel: Channel) -> Transport:
    """The real transport when the channel (or the environment) has credentials, else the sandbox."""
    settings = get_settings()
    config = channel.config or {}
    if channel.channel_type == "sms":
        sid = config.get("account_sid") or settings.twilio_account_sid
        token = config.get("auth_token") or settings.twilio_auth_token
        if sid and token:
            return TwilioTransport(sid, token, settings.twilio_api_base)
        return SandboxTransport("twilio", "messages.create")
    if channel.channel_type == "email":
        from channels.email import EmailTransport

        return EmailTransport()
    if channel.channel_type == "webchat":
        return WebchatTransport()
    return SandboxTransport(channel.provider, "send")
