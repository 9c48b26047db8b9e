"""Inbound texts written by group commit: a batch of texts from several leads of two businesses is written in
one transaction, each text with everything it brings about when it comes alone; concurrent webhooks share
batches and each is answered with its own outcome."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, update
from twilio.request_validator import RequestValidator

from api.app import app
from channels import inbound, sms, sms_store
from channels.group_commit import GroupCommit
from leadpilot.settings import get_settings
from models.activity import AnalyticsEvent
from models.ai import AIAgent
from models.conversations import Channel, Conversation, ConversationAIConfig, Message, OutboxEvent
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from tests.conftest import Demo

TOKEN = "twilio-test-auth-token"
URL_PATH = "/webhooks/twilio/sms"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(get_settings(), "twilio_auth_token", TOKEN)
    return TOKEN


def _number(sub_account_id: uuid.UUID) -> str:
    with owner_session() as session:
        return session.scalars(select(Channel.address).where(Channel.sub_account_id == sub_account_id,
                                                             Channel.channel_type == "sms")).one()


def _sender() -> str:
    return f"+1312555{uuid.uuid4().int % 9000 + 1000}"


def _form(to: str, sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    return {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32, "From": sender, "To": to,
            "Body": body, "NumMedia": "0"}


def _text(form: dict[str, str]) -> sms_store.Text:
    url = get_settings().public_base_url.rstrip("/") + URL_PATH
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    return sms.accept(url, form, signature, sms._route(form["To"]))


@pytest.mark.integration
def test_a_new_lead_gets_the_agent_and_mode_agent_for_picks(token: str, demo: Demo) -> None:
    """The batch's own statement attaches what `inbound.agent_for` picks for a new conversation: the oldest
    active agent working SMS, in its mode for SMS (here a per-channel override of its own mode)."""
    with owner_session() as session:
        agent = session.scalars(select(AIAgent).where(
            AIAgent.sub_account_id == demo.a, AIAgent.is_active, AIAgent.deleted_at.is_(None),
            AIAgent.enabled_channels.contains(["sms"])).order_by(AIAgent.created_at).limit(1)).one()
        agent_id, modes = agent.id, dict(agent.channel_modes or {})
        override = next(mode for mode in ("suggestive", "autopilot") if mode != agent.mode)
        agent.channel_modes = {**modes, "sms": override}
    try:
        out = sms_store.write([_text(_form(_number(demo.a), _sender(), "Hi, is this the restaurant?"))])[0]
        assert isinstance(out, sms_store.Inbound) and out.created
        with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
            picked = inbound.agent_for(session, "sms")
            config = session.scalars(select(ConversationAIConfig).where(
                ConversationAIConfig.conversation_id == out.conversation_id)).one()
            assert picked is not None and picked[0].id == agent_id
            assert (config.ai_agent_id, config.mode) == (agent_id, override) == (picked[0].id, picked[1])
    finally:
        with owner_session() as session:
            session.get_one(AIAgent, agent_id).channel_modes = modes


@pytest.mark.integration
def test_a_batch_is_written_as_each_of_its_texts_would_be_alone(token: str, demo: Demo) -> None:
    number_a, number_b = _number(demo.a), _number(demo.b)
    known, fresh, other, stopper = _sender(), _sender(), _sender(), _sender()
    earlier = sms_store.write([_text(_form(number_a, known, "Hi, first time here"))])[0]
    assert isinstance(earlier, sms_store.Inbound) and earlier.created
    with owner_session() as session:  # a person resolved the known lead's conversation since
        session.execute(update(Conversation).where(Conversation.id == earlier.conversation_id)
                        .values(status="resolved", resolved_at=datetime.now(UTC)))
        retry_sid = session.scalars(select(Message.provider_message_id).where(
            Message.id == earlier.message_id)).one()

    first = _form(number_a, fresh, "Do you have a table for 4 tonight?")
    batch = [_text(first), _text(_form(number_a, fresh, "around 7 if possible")),
             _text(_form(number_a, known, "Back again: is the patio open?")),
             _text(dict(first)),  # Twilio's retry while the first is still waiting: the same batch
             _text(_form(number_a, known, "Hi, first time here", sid=retry_sid)),  # retry of a stored one
             _text(_form(number_b, other, "Do you cater?")),  # another business, in the same transaction
             _text(_form(number_a, stopper, "STOP"))]
    results = sms_store.write(batch)

    assert all(isinstance(r, sms_store.Inbound) for r in results), results
    out = [r for r in results if isinstance(r, sms_store.Inbound)]
    assert [r.created for r in out] == [True, True, True, False, False, True, True]
    assert out[3].message_id == out[0].message_id and out[4].message_id == earlier.message_id
    assert out[0].conversation_id == out[1].conversation_id and out[2].conversation_id == earlier.conversation_id
    assert out[6].keyword == "opt_out"
    new_ids = [out[i].message_id for i in (0, 1, 2, 5, 6)]
    with owner_session() as session:
        contacts = {c.phone: c for c in session.scalars(select(Contact).where(
            Contact.phone.in_([known, fresh, other, stopper]), Contact.deleted_at.is_(None)))}
        assert {p: (c.sub_account_id, c.source) for p, c in contacts.items()} == {
            known: (demo.a, "sms"), fresh: (demo.a, "sms"), other: (demo.b, "sms"), stopper: (demo.a, "sms")}
        messages = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(new_ids)))}
        assert len(messages) == 5
        assert messages[out[5].message_id].sub_account_id == demo.b
        assert messages[out[0].message_id].created_at < messages[out[1].message_id].created_at  # arrival order
        assert messages[out[0].message_id].metadata_ == {"from": fresh, "to": number_a}
        # one agent turn per new text, none for the keyword, which is answered and sets do-not-disturb
        turns = session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "agent.turn",
                                                          OutboxEvent.aggregate_id.in_(new_ids))).all()
        assert sorted(t.aggregate_id for t in turns) == sorted(new_ids[:4])
        assert all(t.payload["message_id"] == str(t.aggregate_id) for t in turns)
        reply = session.scalars(select(Message).where(Message.conversation_id == out[6].conversation_id,
                                                      Message.direction == "outbound")).one()
        assert "unsubscribed" in reply.body and contacts[stopper].dnd_channels.get("sms")
        events = session.scalar(select(func.count()).select_from(AnalyticsEvent).where(
            AnalyticsEvent.event_name == "message_received",
            AnalyticsEvent.properties["message_id"].astext.in_([str(i) for i in new_ids])))
        assert events == 5
        fresh_conversation = session.get_one(Conversation, out[0].conversation_id)
        assert fresh_conversation.unread_count == 2 and fresh_conversation.contact_id == contacts[fresh].id
        assert fresh_conversation.last_inbound_at == messages[out[1].message_id].created_at
        assert session.scalars(select(ConversationAIConfig.ai_agent_id).where(
            ConversationAIConfig.conversation_id == out[0].conversation_id)).one() is not None
        reopened = session.get_one(Conversation, earlier.conversation_id)
        assert (reopened.status, reopened.resolved_at, reopened.unread_count) == ("open", None, 2)
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.provider_message_id == first["MessageSid"])) == 1


@pytest.mark.integration
def test_a_text_that_cannot_be_stored_fails_alone(token: str, demo: Demo) -> None:
    good = _text(_form(_number(demo.a), _sender(), "hello"))
    bad = sms_store.Text(good.channel, good.agency_id, f"SM{uuid.uuid4().hex}", "12345", good.form, None,
                         datetime.now(UTC))  # not E.164: the contacts table refuses it
    results = sms_store.write([good, bad])
    assert isinstance(results[0], sms_store.Inbound) and results[0].created
    assert isinstance(results[1], Exception)
    with owner_session() as session:
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.provider_message_id.in_([good.sid, bad.sid]))) == 1


@pytest.mark.integration
def test_concurrent_webhooks_share_batches_and_are_each_stored_once(token: str, demo: Demo,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    number = _number(demo.a)
    url = get_settings().public_base_url.rstrip("/") + URL_PATH
    senders = [_sender() for _ in range(12)]
    forms = [_form(number, senders[i % len(senders)], f"text {i}") for i in range(48)]
    forms += forms[:8]  # Twilio's retries, posted alongside
    calls: list[int] = []
    write = sms._committer._write

    def counting(texts: list[sms_store.Text]) -> list[sms_store.Inbound | Exception]:
        calls.append(len(texts))
        return write(texts)

    async def post_all() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=get_settings().public_base_url) as client:
            responses = await asyncio.gather(*(client.post(URL_PATH, data=form, headers={
                "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form)}) for form in forms))
        return [r.status_code for r in responses]

    monkeypatch.setattr(sms._committer, "_write", counting)
    statuses = asyncio.run(post_all())
    assert statuses == [200] * len(forms)
    assert sum(calls) == len(forms) and len(calls) < len(forms) / 4  # shared transactions
    with owner_session() as session:
        stored = session.execute(select(Message.provider_message_id, func.count()).where(
            Message.provider_message_id.in_([f["MessageSid"] for f in forms])).group_by(
            Message.provider_message_id)).all()
        turns = session.scalar(select(func.count()).select_from(OutboxEvent).join(
            Message, Message.id == OutboxEvent.aggregate_id).where(
            Message.provider_message_id.in_([f["MessageSid"] for f in forms])))
        conversations = session.scalar(select(func.count(func.distinct(Message.conversation_id))).where(
            Message.provider_message_id.in_([f["MessageSid"] for f in forms])))
    assert len(stored) == 48 and all(count == 1 for _, count in stored) and turns == 48
    assert conversations == len(senders)  # a lead's texts in concurrent batches share one conversation


def test_group_commit_answers_each_waiter_with_its_own_result() -> None:
    batches: list[list[int]] = []
    first_written = threading.Event()
    go_on = threading.Event()

    def write(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        if items == [0]:  # the first request, written at once; the others arrive while it is written
            first_written.set()
            go_on.wait(5)
        return [ValueError(f"bad {i}") if i == 7 else i * 10 for i in items]

    committer: GroupCommit[int, int] = GroupCommit("test", write, max_batch=16, linger_s=0.001)

    async def main() -> list[int | BaseException]:
        first = asyncio.ensure_future(committer.submit(0))
        await asyncio.get_running_loop().run_in_executor(None, first_written.wait, 5)
        rest = [asyncio.ensure_future(committer.submit(i)) for i in range(1, 40)]
        go_on.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:7] == [i * 10 for i in range(7)] and results[8:] == [i * 10 for i in range(8, 40)]
    assert isinstance(results[7], ValueError) and str(results[7]) == "bad 7"  # only its own waiter fails
    # the first alone and at once; then everyone who came meanwhile, at most max_batch a time, in order
    assert batches == [[0], list(range(1, 17)), list(range(17, 33)), list(range(33, 40))]


def _queued_turns(event_ids: set[str]) -> list[tuple[str, list[list[str]] | list[str]]]:
    """(task name, args) of the agent-queue messages that carry any of these outbox events."""
    import base64
    import json

    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    found = []
    for raw in client.lrange("agent", 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        carried = {turn[0] for turn in args[0]} if message["headers"]["task"] == "workers.agent_turn_events" \
            else {args[0]}
        if carried & event_ids:
            found.append((message["headers"]["task"], args))
    client.close()
    return found


@pytest.mark.integration
def test_a_batch_hands_its_turns_to_workers_in_one_message_that_fans_out(token: str, demo: Demo) -> None:
    from workers.tasks import agent_turn_events

    number = _number(demo.a)
    results = sms_store.write([_text(_form(number, _sender(), f"hello {i}")) for i in range(3)])
    with owner_session() as session:
        event_ids = {str(e) for e in session.scalars(select(OutboxEvent.id).where(OutboxEvent.aggregate_id.in_(
            [r.message_id for r in results if isinstance(r, sms_store.Inbound)])))}
    assert len(event_ids) == 3
    sms_store._hand_over_thread().submit(lambda: None).result(10)  # the batch's hand-off has run
    queued = _queued_turns(event_ids)
    assert [task for task, _ in queued] == ["workers.agent_turn_events"]
    turns = queued[0][1][0]
    assert {turn[0] for turn in turns} == event_ids
    assert all(turn[1:] == [str(demo.agency_id), str(demo.a)] for turn in turns)

    agent_turn_events.apply(args=[turns])  # what the worker does with it: one agent_turn_event per turn
    singles = [args for task, args in _queued_turns(event_ids) if task == "workers.agent_turn_event"]
    assert sorted(args[0] for args in singles) == sorted(event_ids)
