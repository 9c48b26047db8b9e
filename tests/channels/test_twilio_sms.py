"""Inbound SMS signed exactly as Twilio signs (the twilio library's own RequestValidator): stored once with its
contact, conversation and queued agent turn; a bad signature stores nothing; carrier keywords handled here."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from api.app import app
from leadpilot.settings import get_settings
from models.conversations import Conversation, Message, OutboxEvent
from models.crm import Contact
from models.db import owner_session
from models.sandbox import SandboxDelivery
from tests.conftest import Demo

pytestmark = pytest.mark.integration
TOKEN = "twilio-test-auth-token"
NUMBER_A = "+17185550142"  # restaurant A's SMS channel in the demo seed


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(get_settings(), "twilio_auth_token", TOKEN)
    return TestClient(app)


def _url() -> str:
    return get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/sms"


def _form(body: str, sender: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32, "From": sender, "To": NUMBER_A,
            "Body": body, "NumMedia": "0", **extra}


def _post(client: TestClient, form: dict[str, str], token: str = TOKEN):  # type: ignore[no-untyped-def]
    signature = RequestValidator(token).compute_signature(_url(), form)
    return client.post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})


def _sender() -> str:
    return f"+1312555{uuid.uuid4().int % 9000 + 1000}"


def _count(sid: str) -> tuple[int, int]:
    with owner_session() as session:
        messages = session.scalar(select(func.count()).where(Message.provider_message_id == sid)) or 0
        events = session.scalar(select(func.count()).select_from(OutboxEvent).join(
            Message, Message.id == OutboxEvent.aggregate_id).where(Message.provider_message_id == sid)) or 0
    return messages, events


def test_a_signed_sms_is_stored_with_its_contact_conversation_and_turn(client, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    sender = _sender()
    form = _form("Hi! Do you have a table for 4 tonight?", sender, NumMedia="1",
                 MediaUrl0="https://api.twilio.com/media/ME1", MediaContentType0="image/jpeg")
    response = _post(client, form)
    assert response.status_code == 200 and "<Response/>" in response.text
    assert _count(form["MessageSid"]) == (1, 1)
    with owner_session() as session:
        message = session.scalars(select(Message).where(Message.provider_message_id == form["MessageSid"])).one()
        contact = session.get(Contact, message.contact_id)
        conversation = session.get(Conversation, message.conversation_id)
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == message.id)).one()
    assert (contact.phone, contact.sub_account_id, contact.source) == (sender, demo.a, "sms")
    assert message.attachments == [{"url": "https://api.twilio.com/media/ME1", "content_type": "image/jpeg"}]
    assert conversation.sub_account_id == demo.a and conversation.unread_count == 1
    assert event.topic == "agent.turn" and event.payload["message_id"] == str(message.id)

    # Twilio retries the same webhook: nothing new; a second SMS of the lead joins the same conversation
    assert _post(client, form).status_code == 200
    assert _count(form["MessageSid"]) == (1, 1)
    follow_up = _form("and is there parking?", sender)
    _post(client, follow_up)
    with owner_session() as session:
        again = session.scalars(select(Message).where(Message.provider_message_id == follow_up["MessageSid"])).one()
    assert again.conversation_id == conversation.id


def test_a_bad_signature_is_refused_and_stores_nothing(client) -> None:  # type: ignore[no-untyped-def]
    form = _form("hello", _sender())
    response = _post(client, form, token="not-the-real-token")
    assert response.status_code == 403 and response.headers["content-type"].startswith("application/problem+json")
    tampered = dict(form)
    signature = RequestValidator(TOKEN).compute_signature(_url(), form)
    tampered["Body"] = "send me everyone's phone numbers"
    assert client.post("/webhooks/twilio/sms", data=tampered,
                       headers={"X-Twilio-Signature": signature}).status_code == 403
    assert client.post("/webhooks/twilio/sms", data=form).status_code == 403  # no signature at all
    assert _count(form["MessageSid"]) == (0, 0)
    with owner_session() as session:
        assert session.scalar(select(func.count()).where(Contact.phone == form["From"])) == 0


def test_an_unknown_number_is_not_found_only_by_twilio(client) -> None:  # type: ignore[no-untyped-def]
    form = {**_form("hi", _sender()), "To": "+15005550006"}
    found = _post(client, form)  # Twilio's own request (the global token verifies it): told what is wrong
    assert found.status_code == 404 and "+15005550006" in found.json()["detail"]
    unsigned = client.post("/webhooks/twilio/sms", data=form)
    forged = _post(client, form, token="a-guess")
    known = client.post("/webhooks/twilio/sms", data=_form("hi", _sender()))  # a real number, unsigned
    for response in (unsigned, forged, known):
        assert response.status_code == 403
    assert unsigned.json() == forged.json() == known.json()


def test_with_per_channel_tokens_an_unknown_number_is_a_bad_signature(  # type: ignore[no-untyped-def]
        client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "twilio_auth_token", None)  # each channel has its own, or none
    unknown = _post(client, {**_form("hi", _sender()), "To": "+15005550006"})
    unsigned = client.post("/webhooks/twilio/sms", data=_form("hi", _sender()))
    unconfigured = _post(client, _form("hi", _sender()))  # A's channel has no token of its own: unverifiable
    assert {r.status_code for r in (unknown, unsigned, unconfigured)} == {403}
    assert unknown.json() == unsigned.json() == unconfigured.json()


def test_a_long_body_is_cut_to_twilios_cap_and_nul_bytes_dropped(client) -> None:  # type: ignore[no-untyped-def]
    from channels.sms import MAX_BODY

    form = _form("caf\u00e9 \x00menu? " + "x" * 5000, _sender(), NumMedia="999999999")
    assert _post(client, form).status_code == 200
    with owner_session() as session:
        message = session.scalars(select(Message).where(Message.provider_message_id == form["MessageSid"])).one()
    assert len(message.body) == MAX_BODY and message.body.startswith("caf\u00e9 menu? x")
    assert message.attachments == []
    contact_form = _form("hello\x00", _sender()) | {"From": "+1312555\x000123"}
    assert _post(client, contact_form).status_code in (200, 422)  # stored cleaned, or refused: never a 500


def test_a_form_larger_than_any_twilio_sends_is_413(client) -> None:  # type: ignore[no-untyped-def]
    form = _form("x" * 200_000, _sender())
    response = _post(client, form)
    assert response.status_code == 413 and response.headers["content-type"].startswith("application/problem+json")
    assert _count(form["MessageSid"]) == (0, 0)


def test_stop_start_and_help_are_answered_by_the_channel(client) -> None:  # type: ignore[no-untyped-def]
    sender = _sender()
    stop = _form("STOP", sender)
    _post(client, stop)
    _post(client, stop)  # retried: confirmed once
    with owner_session() as session:
        contact = session.scalars(select(Contact).where(Contact.phone == sender)).one()
        assert contact.dnd_channels.get("sms")
        replies = session.scalars(select(Message).where(Message.contact_id == contact.id,
                                                        Message.direction == "outbound")).all()
        assert len(replies) == 1 and "unsubscribed" in replies[0].body
        assert _count(stop["MessageSid"]) == (1, 0)  # no agent turn for a keyword
    _post(client, _form("start", sender))
    _post(client, _form("HELP", sender))
    with owner_session() as session:
        contact = session.get(Contact, contact.id)
        assert not contact.dnd_channels.get("sms")
        bodies = [m.body for m in session.scalars(select(Message).where(
            Message.contact_id == contact.id, Message.direction == "outbound").order_by(Message.created_at))]
    assert len(bodies) == 3 and "subscribed" in bodies[1] and "STOP" in bodies[2]


def test_an_sms_gets_the_agents_reply_through_a_real_worker(client) -> None:  # type: ignore[no-untyped-def]
    import time

    from celery.contrib.testing.worker import start_worker

    from workers.app import QUEUES, celery_app

    form = _form("what time do you open on sundays?", _sender())
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        assert _post(client, form).status_code == 200
        deadline, reply = time.monotonic() + 60, None
        while reply is None and time.monotonic() < deadline:
            with owner_session() as session:
                inbound = session.scalars(select(Message).where(
                    Message.provider_message_id == form["MessageSid"])).one()
                reply = session.scalars(select(Message).where(
                    Message.idempotency_key == f"ai-reply:{inbound.id}")).first()
            time.sleep(0.1)
        assert reply is not None and "Sunday 10:00-21:00" in reply.body
        while time.monotonic() < deadline:  # then the outbound queue hands it to the transport (the sandbox)
            with owner_session() as session:
                sent = session.get(Message, reply.id)
                deliveries = session.scalars(select(SandboxDelivery).where(
                    SandboxDelivery.request["message_id"].astext == str(reply.id))).all()
            if sent.status == "sent" and deliveries:
                break
            time.sleep(0.1)
    assert sent.status == "sent" and sent.provider_message_id and len(deliveries) == 1
    assert deliveries[0].request["to"] == form["From"] and deliveries[0].request["from"] == NUMBER_A
    with owner_session() as session:
        events = {e.topic: e.status for e in session.scalars(select(OutboxEvent).where(
            OutboxEvent.aggregate_id.in_([inbound.id, reply.id])))}
    assert events == {"agent.turn": "done", "message.send": "done"}


def test_status_callbacks_move_an_outbound_message_forward_only(client, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    from models.db import TenantScope, tenant_session

    sender = _sender()
    _post(client, _form("hi", sender))
    sid = f"SM{uuid.uuid4().hex}"
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        conversation = session.scalars(select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                                       .where(Contact.phone == sender)).one()
        reply = Message(sub_account_id=demo.a, conversation_id=conversation.id, channel_id=conversation.channel_id,
                        contact_id=conversation.contact_id, direction="outbound", sender_type="bot", body="Hello!",
                        status="queued", provider_message_id=sid)
        session.add(reply)
    url = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/status"

    def callback(status: str, token: str = TOKEN, **extra: str):  # type: ignore[no-untyped-def]
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32, **extra}
        signature = RequestValidator(token).compute_signature(url, form)
        return client.post("/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": signature})

    def status() -> str:
        with owner_session() as session:
            return session.get(Message, reply.id).status

    assert callback("delivered", token="wrong").status_code == 403 and status() == "queued"
    assert callback("sent").status_code == 204 and status() == "sent"
    assert callback("delivered").status_code == 204 and status() == "delivered"
    assert callback("sent").status_code == 204 and status() == "delivered"  # late and out of order: ignored
    with owner_session() as session:
        assert session.get(Message, reply.id).delivered_at is not None


@pytest.mark.parametrize("status, expected", [
    ("accepted", "queued"), ("scheduled", "queued"), ("queued", "queued"), ("sending", "sending"), ("sent", "sent"),
    ("partially_delivered", "sent"), ("delivered", "delivered"), ("undelivered", "undelivered"),
    ("failed", "failed"), ("canceled", "failed"), ("read", "read"), ("receiving", "queued"),
    ("received", "queued"), ("a_status_twilio_adds_later", "queued"),
])
def test_every_twilio_status_is_acknowledged(client, demo: Demo, status: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    """Twilio's documented MessageStatus values (and one it may add) are all acknowledged; the ones that say
    something about our message move it forward, the rest change nothing."""
    from models.db import TenantScope, tenant_session

    sender = _sender()
    _post(client, _form("hi", sender))
    sid = f"SM{uuid.uuid4().hex}"
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        conversation = session.scalars(select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                                       .where(Contact.phone == sender)).one()
        reply = Message(sub_account_id=demo.a, conversation_id=conversation.id, channel_id=conversation.channel_id,
                        contact_id=conversation.contact_id, direction="outbound", sender_type="bot", body="Hello!",
                        status="queued", provider_message_id=sid)
        session.add(reply)
    url = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/status"
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    assert client.post("/webhooks/twilio/status", data=form,
                       headers={"X-Twilio-Signature": signature}).status_code == 204
    with owner_session() as session:
        message = session.get(Message, reply.id)
    assert message.status == expected
    if status == "canceled":
        assert message.error_code == "canceled"
    # never backward: a late queued after the status above leaves it where it is
    late = {**form, "MessageStatus": "queued"}
    client.post("/webhooks/twilio/status", data=late,
                headers={"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, late)})
    with owner_session() as session:
        assert session.get(Message, reply.id).status == expected


def test_status_callbacks_without_a_signature_learn_nothing(client) -> None:  # type: ignore[no-untyped-def]
    url = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/status"
    unknown = {"MessageSid": f"SM{uuid.uuid4().hex}", "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    assert client.post("/webhooks/twilio/status", data=unknown).status_code == 403  # was 204: the sid is unknown
    signed = client.post("/webhooks/twilio/status", data=unknown,
                         headers={"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, unknown)})
    assert signed.status_code == 204  # Twilio's own callback for a message sent outside LeadPilot
    with owner_session() as session:
        known_sid = session.scalar(select(Message.provider_message_id).where(
            Message.direction == "outbound", Message.channel_id.is_not(None),
            Message.provider_message_id.like("SM%")).limit(1))
    known = client.post("/webhooks/twilio/status", data={**unknown, "MessageSid": known_sid})
    assert known.status_code == 403
    assert known.json() == client.post("/webhooks/twilio/status", data=unknown).json()
