"""Writing inbound texts, a batch at a time (see `channels.group_commit`): for every text of the batch, in ONE
transaction, the contact is matched by phone or created, the conversation found or opened (with the channel's
AI agent), the message stored once per MessageSid, its analytics event, workflow triggers and outbound
webhooks written, and its agent turn put in the outbox (or the opt-out / opt-in / help keyword answered). The
realtime events and the hand-off of the turns to workers follow the commit.

Set-based: a handful of statements for the whole batch, whatever its size, sent straight through psycopg with
every column as one binary array (`INSERT ... SELECT FROM unnest(...)`): at hundreds of texts a second, the
per-row statements and the per-value text quoting of a row-at-a-time write are what the time goes on. The
transaction is scoped to each sub-account of the batch in turn (row-level security), and every statement
names the sub-account as well."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from channels import inbound, outbound, realtime
from models.conversations import Channel, Conversation, Message
from models.crm import Contact
from models.db import TenantScope, after_commit, app_url, apply_scope, tenant_session
from models.tenancy import SubAccount
from services import analytics, crm, outbox

log = logging.getLogger("leadpilot.sms")
CATEGORY = analytics.CATEGORIES["message_received"]


@dataclass(frozen=True)
class Inbound:
    """What the webhook stored."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    created: bool  # False: a retry of a message already stored
    keyword: str | None  # opt_out / opt_in / help, handled here instead of by the agent
    agency_id: uuid.UUID | None = None
    sub_account_id: uuid.UUID | None = None


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


def write(texts: list[Text]) -> list[Inbound | Exception]:
    """Store a batch of verified texts in one transaction; one result (or exception) per text, in order. Should
    the batch fail, each text is tried alone, so a bad one fails only itself."""
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


@dataclass
class _Written:
    """What a batch hands on after its commit."""

    events: list[tuple[list[str], dict[str, Any]]] = field(default_factory=list)
    turns: list[tuple[float, list[str]]] = field(default_factory=list)  # (delay, task args)

    def hand_over(self) -> None:
        try:
            realtime.publish_many(self.events)
        except Exception:  # the inbox catches up on its next read
            log.exception("inbound SMS batch: realtime events not published")
        try:
            outbox.handing_over([args[0] for _, args in self.turns], self._hand_over)()
        except Exception:  # committed all the same: pending again, the dispatcher hands them over in seconds
            log.exception("inbound SMS batch: agent turns not handed over")

    def _hand_over(self) -> None:
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
    with tenant_session(TenantScope(agency_id=first[0], sub_account_id=first[1]), bind=_engine()) as session:
        for (agency_id, sub_account_id), indices in groups.items():
            if (agency_id, sub_account_id) != first:  # the transaction now acts for this sub-account only
                apply_scope(session, TenantScope(agency_id=agency_id, sub_account_id=sub_account_id))
            _Batch(session, agency_id, sub_account_id).write([(i, texts[i]) for i in indices], results, written)
        after_commit(session, lambda: _hand_over_thread().submit(written.hand_over))
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


_hand_overs: tuple[int, ThreadPoolExecutor] | None = None


def _hand_over_thread() -> ThreadPoolExecutor:
    """Where committed batches are announced and handed to workers, in commit order, while the writer goes on
    with the next batch (its requests are answered without waiting for the broker)."""
    global _hand_overs
    if _hand_overs is None or _hand_overs[0] != os.getpid():
        _hand_overs = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="sms-hand-over"))
    return _hand_overs[1]


@lru_cache
def _engine() -> Engine:
    """The writers' own connections (application role: row-level security applies), without the ping before
    every checkout, a round trip per batch: a batch that meets a dead connection fails, and its texts are then
    written one by one on fresh ones."""
    return create_engine(app_url(), pool_size=2, max_overflow=2, pool_pre_ping=False)


def _uuids(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) uuids from one read of the system's random source."""
    pool = os.urandom(16 * count)
    return [uuid.UUID(bytes=pool[i:i + 16], version=4) for i in range(0, 16 * count, 16)]


def _pair_key(channel_id: uuid.UUID, contact_id: uuid.UUID) -> int:
    return int.from_bytes(hashlib.blake2b(channel_id.bytes + contact_id.bytes, digest_size=8).digest(), "big",
                          signed=True)


# %(name)b: the value goes in binary (a list as one binary array), nothing to quote or parse
# for each (channel, phone) of the batch: the phone's live contact and its latest conversation on the channel,
# one index probe apiece; the conversations are locked (in the order of the pairs, so two batches never
# deadlock) for the counters this transaction moves
KNOWN = (
    "SELECT u.phone, u.channel_id, c.id, v.id FROM unnest(%(phones)b::varchar[], %(channels)b::uuid[]) "
    "AS u(phone, channel_id) LEFT JOIN LATERAL (SELECT id FROM contacts WHERE sub_account_id = %(sub)b "
    "AND phone = u.phone AND deleted_at IS NULL) AS c ON true LEFT JOIN LATERAL (SELECT id FROM conversations "
    "WHERE sub_account_id = %(sub)b AND contact_id = c.id AND channel_id = u.channel_id AND deleted_at IS NULL "
    "ORDER BY created_at DESC LIMIT 1 FOR NO KEY UPDATE) AS v ON true")
# one probe of the (sub-account, phone) unique index per phone
CONTACTS_BY_PHONE = (
    "SELECT u.phone, c.id FROM unnest(%(phones)b::varchar[]) AS u(phone) CROSS JOIN LATERAL "
    "(SELECT id FROM contacts WHERE sub_account_id = %(sub)b AND phone = u.phone AND deleted_at IS NULL) AS c")
NEW_CONTACTS = (
    "INSERT INTO contacts (id, sub_account_id, agency_id, phone, source, initial_contact_date) "
    "SELECT u.id, %(sub)b, %(agency)b, u.phone, 'sms', %(now)b "
    "FROM unnest(%(ids)b::uuid[], %(phones)b::varchar[]) AS u(id, phone) "
    "ON CONFLICT DO NOTHING RETURNING phone, id")
# each (channel, contact)'s latest conversation, locked, as in KNOWN
LATEST_CONVERSATIONS = (
    "SELECT u.channel_id, u.contact_id, c.id FROM unnest(%(channels)b::uuid[], %(contacts)b::uuid[]) "
    "AS u(channel_id, contact_id) CROSS JOIN LATERAL (SELECT id FROM conversations WHERE sub_account_id = %(sub)b "
    "AND contact_id = u.contact_id AND channel_id = u.channel_id AND deleted_at IS NULL "
    "ORDER BY created_at DESC LIMIT 1 FOR NO KEY UPDATE) AS c")
# one advisory lock per (channel, contact) about to get its first conversation, taken in key order (no
# deadlock): two batches in two processes never both open one
LOCK_PAIRS = "SELECT pg_advisory_xact_lock(k) FROM unnest(%(keys)b::bigint[]) AS k"
NEW_CONVERSATIONS = (
    "INSERT INTO conversations (id, sub_account_id, channel_id, contact_id) "
    "SELECT u.id, %(sub)b, u.channel_id, u.contact_id "
    "FROM unnest(%(ids)b::uuid[], %(channels)b::uuid[], %(contacts)b::uuid[]) AS u(id, channel_id, contact_id)")
# the new conversations get the sub-account's AI agent for SMS, as `inbound.agent_for` picks it (its oldest
# active agent working the channel, in its mode there), in the same statement
NEW_AI_CONFIGS = (
    "INSERT INTO conversation_ai_configs (sub_account_id, conversation_id, ai_agent_id, mode) "
    "SELECT %(sub)b, u.id, a.id, coalesce(a.channel_modes ->> 'sms', a.mode) FROM unnest(%(ids)b::uuid[]) AS u(id) "
    "CROSS JOIN (SELECT id, mode, channel_modes FROM ai_agents WHERE sub_account_id = %(sub)b AND is_active "
    "AND deleted_at IS NULL AND enabled_channels @> '[\"sms\"]'::jsonb ORDER BY created_at LIMIT 1) AS a")
# the messages (once per idempotency key), and for those stored now: their analytics events, their agent turns
# in the outbox (not for keywords) and their conversations' counters; returns the messages stored and the
# conversations that were resolved (to open again)
STORE = (
    "WITH u AS (SELECT * FROM unnest(%(ids)b::uuid[], %(conversations)b::uuid[], %(channels)b::uuid[], "
    "%(contacts)b::uuid[], %(bodies)b::text[], %(sids)b::varchar[], %(keys)b::varchar[], "
    "%(attachments)b::jsonb[], %(froms)b::text[], %(tos)b::text[], %(created)b::timestamptz[], "
    "%(turns)b::uuid[], %(delays)b::float8[]) AS u(id, conversation_id, channel_id, contact_id, body, sid, key, "
    "attachments, sender, receiver, created_at, turn_id, delay)), "
    "m AS (INSERT INTO messages (id, sub_account_id, conversation_id, channel_id, contact_id, direction, "
    "sender_type, sender_id, body, status, provider_message_id, idempotency_key, attachments, metadata, "
    "created_at) SELECT u.id, %(sub)b, u.conversation_id, u.channel_id, u.contact_id, 'inbound', 'contact', "
    "u.contact_id, u.body, 'received', u.sid, u.key, u.attachments, "
    "jsonb_build_object('from', u.sender, 'to', u.receiver), u.created_at FROM u "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, conversation_id, channel_id, contact_id, created_at), "
    "e AS (INSERT INTO analytics_events (sub_account_id, contact_id, event_name, event_category, properties) "
    "SELECT %(sub)b, m.contact_id, 'message_received', %(category)b, jsonb_build_object('conversation_id', "
    "m.conversation_id, 'message_id', m.id, 'channel_id', m.channel_id) FROM m), "
    "o AS (INSERT INTO outbox_events (id, sub_account_id, topic, aggregate_type, aggregate_id, payload, "
    "dedupe_key, status, attempts, available_at, dispatched_at) SELECT u.turn_id, %(sub)b, 'agent.turn', "
    "'message', m.id, jsonb_build_object('conversation_id', m.conversation_id, 'message_id', m.id), "
    "'agent.turn:' || m.id, 'dispatched', 1, m.created_at + make_interval(secs => u.delay), %(now)b "
    "FROM m JOIN u ON u.id = m.id WHERE u.turn_id IS NOT NULL), "
    "t AS (UPDATE conversations AS c SET last_message_at = v.at, last_inbound_at = v.at, "
    "unread_count = c.unread_count + v.n FROM (SELECT conversation_id, max(created_at) AS at, count(*)::int AS n "
    "FROM m GROUP BY conversation_id) AS v WHERE c.id = v.conversation_id AND c.sub_account_id = %(sub)b "
    "RETURNING c.id, c.status) "
    "SELECT 'stored', id FROM m UNION ALL SELECT 'resolved', id FROM t WHERE status = 'resolved'")
MESSAGES_BY_KEY = (
    "SELECT idempotency_key, id, conversation_id FROM messages WHERE sub_account_id = %(sub)b "
    "AND idempotency_key = ANY(%(keys)b::varchar[])")
REOPEN = ("UPDATE conversations SET status = 'open', resolved_at = NULL WHERE sub_account_id = %(sub)b "
          "AND id = ANY(%(ids)b::uuid[]) AND status = 'resolved'")


class _Batch:
    """The texts of one sub-account within a batch's transaction."""

    def __init__(self, session: Session, agency_id: uuid.UUID, sub_account_id: uuid.UUID) -> None:
        self.session, self.agency_id, self.sub_account_id = session, agency_id, sub_account_id
        self.now = datetime.now(UTC)
        self.connection = session.connection().connection.driver_connection  # psycopg's, in the transaction

    def run(self, sql: str, **params: Any) -> list[Any]:
        """One statement on the session's connection, in its transaction (prepared after a few runs)."""
        with self.connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(sql, {"sub": self.sub_account_id, **params})
            return cursor.fetchall() if cursor.description is not None else []

    def write(self, entries: list[tuple[int, Text]], results: list[Inbound | Exception | None],
              written: _Written) -> None:
        wanted = sorted({(text.channel.id, text.phone) for _, text in entries})
        contacts: dict[str, uuid.UUID] = {}
        conversations: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = {}
        for phone, channel_id, contact_id, conversation_id in self.run(
                KNOWN, phones=[phone for _, phone in wanted], channels=[channel_id for channel_id, _ in wanted]):
            if contact_id is not None:
                contacts[phone] = contact_id
                if conversation_id is not None:
                    conversations[(channel_id, contact_id)] = conversation_id
        created = self.create_contacts(sorted({phone for _, phone in wanted} - set(contacts)), contacts)
        pairs = sorted({(channel_id, contacts[phone]) for channel_id, phone in wanted})
        self.open_conversations([pair for pair in pairs if pair not in conversations], created, conversations)

        firsts: dict[str, tuple[int, Text]] = {}  # a text posted twice in one batch is stored once
        for i, text in entries:
            firsts.setdefault(text.key, (i, text))
        keys = sorted(firsts)  # key order: two batches racing on a retried MessageSid never deadlock
        rows: list[dict[str, Any]] = []
        for message_id, key in zip(_uuids(len(keys)), keys, strict=True):
            text = firsts[key][1]
            contact_id = contacts[text.phone]
            form = text.form
            media = [{"url": form[f"MediaUrl{n}"], "content_type": form.get(f"MediaContentType{n}")}
                     for n in range(int(form.get("NumMedia", "0") or 0)) if f"MediaUrl{n}" in form]
            rows.append({"id": message_id, "conversation_id": conversations[(text.channel.id, contact_id)],
                         "channel_id": text.channel.id, "contact_id": contact_id, "body": form.get("Body", ""),
                         "sid": text.sid, "key": key, "attachments": media,
                         "metadata": {"from": form.get("From", ""), "to": form.get("To", "")},
                         "created_at": text.arrived, "text": text})
        turns = _uuids(len(rows))
        delays = [0.0 if row["text"].keyword else inbound.reply_delay(row["text"].channel) for row in rows]
        returned = self.run(
            STORE, now=self.now, category=CATEGORY, ids=[r["id"] for r in rows],
            conversations=[r["conversation_id"] for r in rows], channels=[r["channel_id"] for r in rows],
            contacts=[r["contact_id"] for r in rows], bodies=[r["body"] for r in rows],
            sids=[r["sid"] for r in rows], keys=keys, attachments=[Jsonb(r["attachments"]) for r in rows],
            froms=[r["text"].form.get("From", "") for r in rows], tos=[r["text"].form.get("To", "") for r in rows],
            created=[r["created_at"] for r in rows],
            turns=[None if row["text"].keyword else turn for row, turn in zip(rows, turns, strict=True)],
            delays=delays)
        stored_ids = {row_id for kind, row_id in returned if kind == "stored"}
        resolved = [row_id for kind, row_id in returned if kind == "resolved"]
        if resolved:  # a conversation a person had resolved opens again (an audited change of state)
            self.run(REOPEN, ids=resolved)
        for row, turn, delay in zip(rows, turns, delays, strict=True):
            row["turn"] = None if row["text"].keyword else (turn, delay)
        stored = {row["key"] for row in rows if row["id"] in stored_ids}
        retried = [key for key in keys if key not in stored]
        earlier: dict[str, tuple[uuid.UUID, uuid.UUID]] = {
            key: (message_id, conversation_id) for key, message_id, conversation_id
            in self.run(MESSAGES_BY_KEY, keys=retried)} if retried else {}
        new = [row for row in rows if row["key"] in stored]
        by_key = {row["key"]: row for row in new}
        for i, text in entries:
            mine = by_key.get(text.key)
            if mine is None or firsts[text.key][0] != i:  # a retry: of a stored message, or of one in this batch
                message_id, conversation_id = (mine["id"], mine["conversation_id"]) if mine else earlier[text.key]
                results[i] = Inbound(message_id, conversation_id, False, text.keyword)
            else:
                results[i] = Inbound(mine["id"], mine["conversation_id"], True, text.keyword, self.agency_id,
                                     self.sub_account_id)
        if new:
            self.after_store(new, written)

    def create_contacts(self, missing: list[str], found: dict[str, uuid.UUID]) -> set[uuid.UUID]:
        """Contacts (source "sms") for the phones no live contact has, added to `found`; returns those created
        here (a concurrent batch may have created some first)."""
        created: set[uuid.UUID] = set()
        if not missing:
            return created
        for phone, contact_id in self.run(NEW_CONTACTS, agency=self.agency_id, now=self.now,
                                          ids=_uuids(len(missing)), phones=missing):
            found[phone] = contact_id
            created.add(contact_id)
        raced = [phone for phone in missing if phone not in found]
        if raced:  # another batch created them meanwhile (its commit is what let our insert go on)
            found.update(dict(self.run(CONTACTS_BY_PHONE, phones=raced)))
        if created:
            from services import webhooks, workflows

            new = [(contact_id, phone) for phone, contact_id in found.items() if contact_id in created]
            webhooks.emit_many(self.session, self.sub_account_id, "contact.created", [
                {"contact_id": str(contact_id), "first_name": None, "last_name": None, "email": None,
                 "phone": phone, "source": "sms"} for contact_id, phone in new])
            workflows.fire_many(self.session, self.sub_account_id, "contact_created",
                                [(contact_id, {"source": "sms"}) for contact_id, _ in new])
        return created

    def open_conversations(self, missing: list[tuple[uuid.UUID, uuid.UUID]], created: set[uuid.UUID],
                           found: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]) -> None:
        """A conversation, with the channel's AI agent, for each (channel, contact) that has none, added to
        `found`. A contact created in this transaction has none anywhere; for the others, a concurrent batch may
        be opening it: the pair's advisory lock settles who does."""
        known = [pair for pair in missing if pair[1] not in created]
        if known:
            self.run(LOCK_PAIRS, keys=sorted({_pair_key(*pair) for pair in known}))
            found.update({(channel_id, contact_id): conversation_id for channel_id, contact_id, conversation_id
                          in self.run(LATEST_CONVERSATIONS, channels=[p[0] for p in known],
                                      contacts=[p[1] for p in known])})
        to_open = [pair for pair in missing if pair not in found]
        if not to_open:
            return
        ids = _uuids(len(to_open))
        self.run(NEW_CONVERSATIONS, ids=ids, channels=[p[0] for p in to_open], contacts=[p[1] for p in to_open])
        found.update(zip(to_open, ids, strict=True))
        self.run(NEW_AI_CONFIGS, ids=ids)

    def after_store(self, new: list[dict[str, Any]], written: _Written) -> None:
        """What else newly stored messages bring about: workflows, outbound webhooks, keyword answers; the
        realtime events and the turns' hand-off after the commit."""
        from services import webhooks, workflows

        session, sub_account_id = self.session, self.sub_account_id
        workflows.fire_many(session, sub_account_id, "inbound_message",
                            [(row["contact_id"], {"channel_id": str(row["channel_id"])}) for row in new])
        webhooks.emit_many(session, sub_account_id, "message.received", [
            {"message_id": str(row["id"]), "conversation_id": str(row["conversation_id"]),
             "contact_id": str(row["contact_id"]), "body": row["body"], "channel_id": str(row["channel_id"])}
            for row in new])
        for row in new:
            written.events.append(([realtime.sub_channel(sub_account_id), realtime.conversation_channel(
                row["conversation_id"])], {"type": "message.created", "message": realtime.payload(
                    id=row["id"], conversation_id=row["conversation_id"], direction="inbound",
                    sender_type="contact", content_type="text", body=row["body"], subject=None, status="received",
                    attachments=row["attachments"], created_at=row["created_at"])}))
            if row["turn"] is not None:
                turn, delay = row["turn"]
                written.turns.append((delay, [str(turn), str(self.agency_id), str(sub_account_id)]))
            else:
                keyword_reply(session, session.get_one(Conversation, row["conversation_id"]),
                              session.get_one(Contact, row["contact_id"]), row["text"].keyword, row["text"].sid)


def keyword_reply(session: Session, conversation: Conversation, contact: Contact, keyword: str, sid: str) -> None:
    """The carrier keywords' answer, sent as the business (urgent: quiet hours do not hold it)."""
    sub = session.get_one(SubAccount, conversation.sub_account_id)
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
