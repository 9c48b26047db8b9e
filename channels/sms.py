"""Inbound SMS from Twilio: verified with Twilio's own RequestValidator, then in ONE transaction the contact is
matched or created, the conversation found or opened, the message stored (unique per MessageSid, so Twilio's
retries store nothing new) and the agent turn queued through the outbox. Opt-out keywords are the carrier
rules': STOP and friends set do-not-disturb (confirmed once), START/UNSTOP lift it, HELP answers."""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from channels import inbound, outbound, realtime
from channels.group_commit import GroupCommit
from leadpilot.settings import get_settings
from models.bulk import insert_rows
from models.conversations import Channel, Conversation, ConversationAIConfig, Message, OutboxEvent
from models.crm import Contact
from models.db import TenantScope, after_commit, apply_scope, owner_session, tenant_session
from models.tenancy import SubAccount
from services import crm
from services.campaigns import mirror_status
from services.errors import Forbidden, InvalidInput, NotConfigured, NotFound

log = logging.getLogger("leadpilot.sms")

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


@dataclass(frozen=True)
class Text:
    """One verified inbound text, waiting to be written."""

    channel: Channel
    agency_id: uuid.UUID
    sid: str
    phone: str  # the sender in E.164
    form: dict[str, str]
    keyword: str | None
    arrived: datetime

    @property
    def key(self) -> str:
        return f"twilio:{self.sid}"


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


def receive(url: str, form: dict[str, str], signature: str | None) -> Inbound:
    """Verify, then store the message and queue its agent turn, all or nothing (one text, on this thread)."""
    result = write([accept(url, form, signature, _route(form.get("To", "")))])[0]
    if isinstance(result, Exception):
        raise result
    return result


async def receive_async(url: str, form: dict[str, str], signature: str | None) -> Inbound:
    """`receive` for the webhook: verified on the event loop, then written by group commit with the texts that
    arrive meanwhile (each answered once its own rows are committed)."""
    to_number = form.get("To", "")
    route = _cached_route(to_number)
    if route is None:  # the first text to this number in a while: one lookup, off the event loop
        route = await run_in_threadpool(_route, to_number)
    return await _committer.submit(accept(url, form, signature, route))


def write(texts: list[Text]) -> list[Inbound | Exception]:
    """Store a batch of verified texts in one transaction: for each, the contact matched or created, the
    conversation found or opened, the message stored once per MessageSid, its analytics event, workflow
    triggers and outbound webhooks, and its agent turn in the outbox (or the keyword's answer); realtime events
    and the turns' hand-off to workers follow the commit. Set-based: a handful of statements for the whole
    batch, whatever its size. Should the batch fail, each text is tried alone, so a bad one fails only itself."""
    try:
        return _write(texts)
    except Exception as exc:
        if len(texts) == 1:
            return [exc]
        log.warning("inbound SMS batch of %d failed (%s); writing its texts one by one", len(texts), exc)
        out: list[Inbound | Exception] = []
        for text in texts:
            try:
                out.extend(_write([text]))
            except Exception as alone:
                out.append(alone)
        return out


_committer: GroupCommit[Text, Inbound] = GroupCommit("sms-ingest", write)


@dataclass
class _Written:
    """What a batch hands on after its commit."""

    events: list[tuple[list[str], dict[str, Any]]] = field(default_factory=list)
    turns: list[tuple[float, list[str]]] = field(default_factory=list)  # (delay, task args)

    def hand_over(self) -> None:
        realtime.publish_many(self.events)
        from workers.tasks import agent_turn_event, agent_turn_events

        for delay, group in itertools.groupby(sorted(self.turns, key=lambda t: t[0]), key=lambda t: t[0]):
            turns = [args for _, args in group]
            if len(turns) == 1:
                agent_turn_event.apply_async(args=turns[0], countdown=delay or None)
            else:  # one broker message for the batch; the worker hands each turn on by itself
                agent_turn_events.apply_async(args=[turns], countdown=delay or None)


def _write(texts: list[Text]) -> list[Inbound | Exception]:
    results: list[Inbound | Exception | None] = [None] * len(texts)
    groups: dict[tuple[uuid.UUID, uuid.UUID], list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault((text.agency_id, text.channel.sub_account_id), []).append(i)
    written = _Written()
    first = next(iter(groups))
    with tenant_session(TenantScope(agency_id=first[0], sub_account_id=first[1])) as session:
        for (agency_id, sub_account_id), indices in groups.items():
            if (agency_id, sub_account_id) != first:  # the transaction now acts for this sub-account only
                apply_scope(session, TenantScope(agency_id=agency_id, sub_account_id=sub_account_id))
            _write_sub_account(session, agency_id, sub_account_id, [(i, texts[i]) for i in indices], results,
                               written)
        after_commit(session, written.hand_over)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


CONTACTS_BY_PHONE = sql_text(
    "SELECT phone, id FROM contacts WHERE sub_account_id = :sub AND deleted_at IS NULL "
    "AND phone = ANY(CAST(:phones AS varchar[]))")
LATEST_CONVERSATIONS = sql_text(
    "SELECT DISTINCT ON (channel_id, contact_id) channel_id, contact_id, id FROM conversations "
    "WHERE sub_account_id = :sub AND deleted_at IS NULL AND (channel_id, contact_id) IN "
    "(SELECT * FROM unnest(CAST(:channels AS uuid[]), CAST(:contacts AS uuid[]))) "
    "ORDER BY channel_id, contact_id, created_at DESC")
# one advisory lock per (channel, contact) about to get its first conversation, taken in key order (no
# deadlock): two batches in two processes never both open one
LOCK_PAIRS = sql_text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
MESSAGES_BY_KEY = sql_text(
    "SELECT idempotency_key, id, conversation_id FROM messages WHERE idempotency_key = ANY(CAST(:keys AS varchar[]))")
# rows locked in id order first, so two batches updating the same conversations never deadlock
TOUCH_CONVERSATIONS = sql_text(
    "WITH locked AS (SELECT id FROM conversations WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id "
    "FOR NO KEY UPDATE) "
    "UPDATE conversations AS c SET last_message_at = v.at, last_inbound_at = v.at, "
    "unread_count = c.unread_count + v.n, "
    "status = CASE WHEN c.status = 'resolved' THEN 'open' ELSE c.status END, "
    "resolved_at = CASE WHEN c.status = 'resolved' THEN NULL ELSE c.resolved_at END "
    "FROM locked JOIN unnest(CAST(:ids AS uuid[]), CAST(:ats AS timestamptz[]), CAST(:ns AS int[])) AS v(id, at, n) "
    "ON v.id = locked.id WHERE c.id = v.id AND c.sub_account_id = :sub")


def _pair_key(channel_id: uuid.UUID, contact_id: uuid.UUID) -> int:
    return int.from_bytes(hashlib.blake2b(channel_id.bytes + contact_id.bytes, digest_size=8).digest(), "big",
                          signed=True)


def _contacts(session: Session, agency_id: uuid.UUID, sub_account_id: uuid.UUID, phones: list[str],
              now: datetime) -> tuple[dict[str, uuid.UUID], set[uuid.UUID]]:
    """Each phone's live contact, created (source "sms") when new; and which were created here."""
    found: dict[str, uuid.UUID] = {phone: contact_id for phone, contact_id in session.execute(
        CONTACTS_BY_PHONE, {"sub": sub_account_id, "phones": phones})}
    missing = [phone for phone in phones if phone not in found]
    created: set[uuid.UUID] = set()
    if not missing:
        return found, created
    rows = [{"id": uuid.uuid4(), "sub_account_id": sub_account_id, "agency_id": agency_id, "phone": phone,
             "source": "sms", "initial_contact_date": now} for phone in missing]
    for phone, contact_id in insert_rows(session, Contact, rows, skip_conflicts=True, returning=("phone", "id")):
        found[phone] = contact_id
        created.add(contact_id)
    raced = [phone for phone in missing if phone not in found]
    if raced:  # another batch created them meanwhile (its commit is what let our insert go on)
        found.update({phone: contact_id for phone, contact_id in session.execute(
            CONTACTS_BY_PHONE, {"sub": sub_account_id, "phones": raced})})
    if created:
        from services import webhooks, workflows

        new = [(contact_id, phone) for phone, contact_id in found.items() if contact_id in created]
        webhooks.emit_many(session, sub_account_id, "contact.created", [
            {"contact_id": str(contact_id), "first_name": None, "last_name": None, "email": None, "phone": phone,
             "source": "sms"} for contact_id, phone in new])
        workflows.fire_many(session, sub_account_id, "contact_created",
                            [(contact_id, {"source": "sms"}) for contact_id, _ in new])
    return found, created


def _conversations(session: Session, sub_account_id: uuid.UUID, pairs: list[tuple[uuid.UUID, uuid.UUID]],
                   created: set[uuid.UUID]) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """The latest conversation of each (channel, contact), opened with the channel's AI agent when there is
    none (a contact created in this transaction has none to look for)."""

    def latest(among: list[tuple[uuid.UUID, uuid.UUID]]) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
        if not among:
            return {}
        rows = session.execute(LATEST_CONVERSATIONS, {"sub": sub_account_id, "channels": [p[0] for p in among],
                                                      "contacts": [p[1] for p in among]})
        return {(channel_id, contact_id): conversation_id for channel_id, contact_id, conversation_id in rows}

    known = [pair for pair in pairs if pair[1] not in created]
    found = latest(known)
    unopened = [pair for pair in known if pair not in found]
    if unopened:
        session.execute(LOCK_PAIRS, {"keys": sorted({_pair_key(*pair) for pair in unopened})})
        found.update(latest(unopened))
    to_open = [pair for pair in pairs if pair not in found]
    if not to_open:
        return found
    rows = [{"id": uuid.uuid4(), "sub_account_id": sub_account_id, "channel_id": channel_id,
             "contact_id": contact_id} for channel_id, contact_id in to_open]
    insert_rows(session, Conversation, rows)
    found.update({(row["channel_id"], row["contact_id"]): row["id"] for row in rows})
    agent = inbound.agent_for(session, "sms")
    if agent is not None:
        insert_rows(session, ConversationAIConfig, [
            {"sub_account_id": sub_account_id, "conversation_id": row["id"], "ai_agent_id": agent[0].id,
             "mode": agent[1]} for row in rows])
    return found


def _write_sub_account(session: Session, agency_id: uuid.UUID, sub_account_id: uuid.UUID,
                       entries: list[tuple[int, Text]], results: list[Inbound | Exception | None],
                       written: _Written) -> None:
    now = datetime.now(UTC)
    contacts, created = _contacts(session, agency_id, sub_account_id, sorted({t.phone for _, t in entries}), now)
    pairs = sorted({(t.channel.id, contacts[t.phone]) for _, t in entries})
    conversations = _conversations(session, sub_account_id, pairs, created)

    firsts: dict[str, tuple[int, Text]] = {}  # a text posted twice in one batch is stored once
    for i, text in entries:
        firsts.setdefault(text.key, (i, text))
    rows: list[dict[str, Any]] = []
    for key in sorted(firsts):  # key order: two batches racing on a retried MessageSid never deadlock
        _, text = firsts[key]
        contact_id = contacts[text.phone]
        media = [{"url": text.form[f"MediaUrl{n}"], "content_type": text.form.get(f"MediaContentType{n}")}
                 for n in range(int(text.form.get("NumMedia", "0") or 0)) if f"MediaUrl{n}" in text.form]
        rows.append({"id": uuid.uuid4(), "sub_account_id": sub_account_id,
                     "conversation_id": conversations[(text.channel.id, contact_id)], "channel_id": text.channel.id,
                     "contact_id": contact_id, "direction": "inbound", "sender_type": "contact",
                     "sender_id": contact_id, "body": text.form.get("Body", ""), "status": "received",
                     "provider_message_id": text.sid, "idempotency_key": key, "attachments": media,
                     "metadata_": {"from": text.form.get("From", ""), "to": text.form.get("To", "")},
                     "created_at": text.arrived})
    stored = {key for (key,) in insert_rows(session, Message, rows, on_conflict_do_nothing=("idempotency_key",),
                                            returning=("idempotency_key",))}
    retried = [row["idempotency_key"] for row in rows if row["idempotency_key"] not in stored]
    earlier: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    if retried:
        earlier = {key: (message_id, conversation_id) for key, message_id, conversation_id
                   in session.execute(MESSAGES_BY_KEY, {"keys": retried})}
    new: list[dict[str, Any]] = [row for row in rows if row["idempotency_key"] in stored]
    by_key = {row["idempotency_key"]: row for row in new}
    for i, text in entries:
        row = by_key.get(text.key)
        if row is None or firsts[text.key][0] != i:  # a retry: of a stored message, or of one in this batch
            message_id, conversation_id = (row["id"], row["conversation_id"]) if row else earlier[text.key]
            results[i] = Inbound(message_id, conversation_id, False, text.keyword)
        else:
            results[i] = Inbound(row["id"], row["conversation_id"], True, text.keyword, agency_id, sub_account_id)
    if not new:
        return
    _after_store(session, agency_id, sub_account_id, new, firsts, now, written)


def _after_store(session: Session, agency_id: uuid.UUID, sub_account_id: uuid.UUID, new: list[dict[str, Any]],
                 firsts: dict[str, tuple[int, Text]], now: datetime, written: _Written) -> None:
    """Everything a newly stored message brings about, for the whole batch at once."""
    from services import analytics, webhooks, workflows

    touched: dict[uuid.UUID, tuple[datetime, int]] = {}
    for row in new:
        at, count = touched.get(row["conversation_id"], (row["created_at"], 0))
        touched[row["conversation_id"]] = (max(at, row["created_at"]), count + 1)
    ids = sorted(touched)
    session.execute(TOUCH_CONVERSATIONS, {"ids": ids, "ats": [touched[i][0] for i in ids],
                                          "ns": [touched[i][1] for i in ids], "sub": sub_account_id})
    analytics.record_many(session, sub_account_id, "message_received", [
        (row["contact_id"], {"conversation_id": str(row["conversation_id"]), "message_id": str(row["id"]),
                             "channel_id": str(row["channel_id"])}) for row in new])
    workflows.fire_many(session, sub_account_id, "inbound_message",
                        [(row["contact_id"], {"channel_id": str(row["channel_id"])}) for row in new])
    webhooks.emit_many(session, sub_account_id, "message.received", [
        {"message_id": str(row["id"]), "conversation_id": str(row["conversation_id"]),
         "contact_id": str(row["contact_id"]), "body": row["body"], "channel_id": str(row["channel_id"])}
        for row in new])
    outbox = []
    for row in new:
        text = firsts[row["idempotency_key"]][1]
        written.events.append(([realtime.sub_channel(sub_account_id), realtime.conversation_channel(
            row["conversation_id"])], {"type": "message.created", "message": realtime.payload(
                id=row["id"], conversation_id=row["conversation_id"], direction="inbound", sender_type="contact",
                content_type="text", body=row["body"], subject=None, status="received",
                attachments=row["attachments"], created_at=row["created_at"])}))
        if text.keyword:
            conversation = session.get_one(Conversation, row["conversation_id"])
            contact = session.get_one(Contact, row["contact_id"])
            _keyword_reply(session, conversation, contact, text.keyword, text.sid)
            continue
        delay = inbound.reply_delay(text.channel)
        event_id = uuid.uuid4()
        outbox.append({"id": event_id, "sub_account_id": sub_account_id, "topic": "agent.turn",
                       "aggregate_type": "message", "aggregate_id": row["id"],
                       "available_at": row["created_at"] + timedelta(seconds=delay), "status": "dispatched",
                       "dispatched_at": now, "attempts": 1, "dedupe_key": f"agent.turn:{row['id']}",
                       "payload": {"conversation_id": str(row["conversation_id"]), "message_id": str(row["id"])}})
        written.turns.append((delay, [str(event_id), str(agency_id), str(sub_account_id)]))
    insert_rows(session, OutboxEvent, outbox)


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
