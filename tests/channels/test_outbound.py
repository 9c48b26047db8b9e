"""The outbound path: Twilio's REST API through the real `twilio` Client against a local server speaking its
protocol, exactly-once sends, backoff and the dead letter, quiet hours, opt-outs, realtime events after commit,
and a burst of texts answered once."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from channels import inbound, outbound, realtime
from leadpilot.settings import get_settings
from models.conversations import Channel, Message
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.sandbox import SandboxDelivery
from services import crm
from tests.conftest import Demo

pytestmark = pytest.mark.integration
ACCOUNT = "AC" + "7" * 32
TOKEN = "twilio-rest-test-token"


class TwilioServer:
    """Twilio's Messages resource as the REST API serves it: basic auth, form bodies, JSON answers, error
    objects. `script` holds the HTTP statuses to answer with, in order (then 201s)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[int] = []
        self.created: list[dict[str, Any]] = []  # the messages it took, as its Messages list returns them
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                query = {k: v[0] for k, v in parse_qs(self.path.partition("?")[2]).items()}
                found = [m for m in reversed(outer.created)  # newest first, as Twilio lists them
                         if m["to"] == query.get("To", m["to"]) and m["from"] == query.get("From", m["from"])]
                data = json.dumps({"messages": found, "page": 0, "page_size": 50, "start": 0, "end": len(found),
                                   "uri": self.path, "first_page_uri": self.path, "next_page_uri": None,
                                   "previous_page_uri": None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                outer.requests.append({"path": self.path, "form": form})
                status = outer.script.pop(0) if outer.script else 201
                if self.headers.get("Authorization") != expected:
                    status = 401
                if status == 201:
                    body = {"sid": f"SM{uuid.uuid4().hex}", "status": "queued", "to": form["To"],
                            "from": form["From"], "body": form["Body"], "account_sid": ACCOUNT,
                            "date_created": formatdate(usegmt=True)}
                    outer.created.append(body)
                else:
                    body = {"code": 21211 if status == 400 else 20500, "status": status,
                            "message": "The 'To' number is not a valid phone number." if status == 400
                            else "Service unavailable", "more_info": "https://www.twilio.com/docs/errors"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwilioServer]:
    server = TwilioServer()
    settings = get_settings()
    for name, value in (("twilio_account_sid", ACCOUNT), ("twilio_auth_token", TOKEN),
                        ("twilio_api_base", server.url)):
        monkeypatch.setattr(settings, name, value)
    yield server
    server.server.shutdown()


def _scope(demo: Demo) -> TenantScope:
    return TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)


def _outgoing(demo: Demo, *, sender_type: str = "bot", body: str = "See you at 7!", queue: bool = False,
              dnd: bool = False, **fields: Any) -> uuid.UUID:
    """A lead with an SMS conversation and one queued outbound message to them."""
    phone = f"+1312555{uuid.uuid4().int % 9000 + 1000}"
    with tenant_session(_scope(demo)) as session:
        channel = session.scalars(select(Channel).where(Channel.channel_type == "sms")
                                  .order_by(Channel.created_at, Channel.id).limit(1)).one()  # the seeded one
        contact, _ = crm.match_or_create_contact(session=session, sub_account_id=demo.a, phone=phone)
        if dnd:
            crm.set_dnd(session=session, contact_id=contact.id, channel="sms", enabled=True, reason="STOP")
        conversation = inbound.open_conversation(session, channel, contact.id)
        message = Message(sub_account_id=demo.a, conversation_id=conversation.id, channel_id=channel.id,
                          contact_id=contact.id, direction="outbound", sender_type=sender_type, body=body,
                          status="queued", **fields)
        session.add(message)
        session.flush()
        if queue:
            outbound.queue_send(session, message)
        return message.id


def _sub(demo: Demo) -> Any:
    from models.tenancy import SubAccount

    with owner_session() as session:
        return session.get(SubAccount, demo.a)


def _message(message_id: uuid.UUID) -> Message:
    with owner_session() as session:
        message = session.get(Message, message_id)
        assert message is not None
        return message


def test_a_reply_goes_out_through_twilios_rest_api_exactly_once(twilio: TwilioServer, demo: Demo) -> None:
    message_id = _outgoing(demo)
    first = outbound.deliver(_scope(demo), message_id)
    again = outbound.deliver(_scope(demo), message_id)  # a redelivered task
    assert (first.outcome, again.outcome) == ("sent", "done")
    assert len(twilio.requests) == 1
    request = twilio.requests[0]
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    message = _message(message_id)
    with owner_session() as session:
        phone = session.get(Contact, message.contact_id).phone
    assert request["form"]["To"] == phone and request["form"]["From"] == "+17185550142"
    assert request["form"]["Body"] == "See you at 7!"
    assert request["form"]["StatusCallback"].endswith("/webhooks/twilio/status")
    assert message.status == "sent" and message.provider_message_id.startswith("SM") and message.attempts == 1


def test_provider_hiccups_back_off_then_dead_letter(twilio: TwilioServer, demo: Demo) -> None:
    message_id = _outgoing(demo)
    twilio.script = [503] * outbound.MAX_ATTEMPTS
    waits = []
    for _ in range(outbound.MAX_ATTEMPTS - 1):
        attempt = outbound.deliver(_scope(demo), message_id)
        assert attempt.outcome == "retry" and _message(message_id).status == "queued"
        waits.append(attempt.retry_in)
    assert waits == [5.0, 10.0, 20.0, 40.0, 80.0]  # exponential backoff
    assert outbound.deliver(_scope(demo), message_id).outcome == "failed"
    message = _message(message_id)
    assert message.status == "failed" and message.error_code == "dead_letter"
    assert message.metadata_["dead_letter"]["attempts"] == outbound.MAX_ATTEMPTS
    assert "503" in message.metadata_["dead_letter"]["last_error"]
    assert len(twilio.requests) == outbound.MAX_ATTEMPTS


def test_a_refused_number_fails_at_once_with_twilios_code(twilio: TwilioServer, demo: Demo) -> None:
    message_id = _outgoing(demo)
    twilio.script = [400]
    assert outbound.deliver(_scope(demo), message_id).outcome == "failed"
    message = _message(message_id)
    assert (message.status, message.error_code, len(twilio.requests)) == ("failed", "21211", 1)


def _cut_off(demo: Demo, message_id: uuid.UUID, ago: float) -> None:
    """As a worker leaves a message it committed `sending` `ago` seconds ago, then died in the provider call."""
    with tenant_session(_scope(demo)) as session:
        message = session.get(Message, message_id)
        message.status = "sending"
        message.metadata_ = {**(message.metadata_ or {}),
                             "sending_at": (datetime.now(UTC) - timedelta(seconds=ago)).isoformat()}


def test_a_send_cut_off_mid_call_is_never_repeated_to_a_provider_that_cannot_dedupe(twilio: TwilioServer,
                                                                                     demo: Demo) -> None:
    # the worker died after Twilio took the message: Twilio's list says so, and it is recorded, not re-sent
    message_id = _outgoing(demo, attempts=1)
    assert outbound.deliver(_scope(demo), message_id).outcome == "sent"
    _cut_off(demo, message_id, ago=60)
    again = outbound.deliver(_scope(demo), message_id)
    message = _message(message_id)
    assert again.outcome == "sent" and len(twilio.created) == 1
    assert message.status == "sent" and message.provider_message_id == twilio.created[0]["sid"]


def test_a_send_cut_off_before_it_reached_the_provider_goes_out_once(twilio: TwilioServer, demo: Demo) -> None:
    message_id = _outgoing(demo, attempts=1)
    _cut_off(demo, message_id, ago=2)  # an attempt this young may still be in its call: not now
    young = outbound.deliver(_scope(demo), message_id)
    assert young.outcome == "retry" and young.retry_in > 20 and twilio.requests == []
    _cut_off(demo, message_id, ago=60)  # it died before Twilio took anything: the lead still gets the reply, once
    assert outbound.deliver(_scope(demo), message_id).outcome == "sent"
    assert outbound.deliver(_scope(demo), message_id).outcome == "done"
    assert len(twilio.created) == 1 and _message(message_id).status == "sent"


def test_a_send_cut_off_mid_call_to_smtp_is_never_repeated(demo: Demo) -> None:
    class Smtp:  # a transport that can neither dedupe nor say what it took
        name, dedupes = "smtp", False

        def send(self, out: outbound.Outgoing) -> outbound.Sent:
            raise AssertionError("never called again")

    message_id = _outgoing(demo, attempts=1)
    _cut_off(demo, message_id, ago=60)
    assert outbound.deliver(_scope(demo), message_id, transport=Smtp()).outcome == "failed"
    assert _message(message_id).error_code == "outcome_unknown"


def test_the_sandbox_records_a_send_once_even_when_retried_after_a_crash(demo: Demo) -> None:
    message_id = _outgoing(demo)
    sandbox = outbound.SandboxTransport("twilio", "messages.create")
    assert outbound.deliver(_scope(demo), message_id, transport=sandbox).outcome == "sent"
    with tenant_session(_scope(demo)) as session:  # as if the worker died before it could record `sent`
        session.get(Message, message_id).status = "sending"
    assert outbound.deliver(_scope(demo), message_id, transport=sandbox).outcome == "sent"
    with owner_session() as session:
        recorded = session.scalars(select(SandboxDelivery).where(
            SandboxDelivery.idempotency_key == f"send:{message_id}")).all()
    assert len(recorded) == 1 and _message(message_id).status == "sent"


def test_a_reply_is_queued_as_urgent_and_automated_outreach_is_not(demo: Demo) -> None:
    from models.conversations import OutboxEvent

    reply = _outgoing(demo, sender_type="bot", queue=True)
    reminder = _outgoing(demo, sender_type="system", body="Reminder: tomorrow at 7", queue=True)
    with owner_session() as session:
        payloads = dict(session.execute(select(OutboxEvent.aggregate_id, OutboxEvent.payload).where(
            OutboxEvent.aggregate_id.in_([reply, reminder]))).all())
    # a lead waits on the reply: were its hand-over lost, the dispatcher brings it back in seconds
    assert payloads[reply].get("urgent") is True and "urgent" not in payloads[reminder]


def test_quiet_hours_hold_automated_texts_but_not_conversation_replies(demo: Demo) -> None:
    zone = ZoneInfo(_sub(demo).timezone)
    late = datetime(2026, 11, 24, 23, 30, tzinfo=zone).astimezone(UTC)  # quiet hours are 21:00-08:00
    reminder = _outgoing(demo, sender_type="system", body="Reminder: tomorrow at 7")
    reply = _outgoing(demo, sender_type="bot")
    held = outbound.deliver(_scope(demo), reminder, now=late)
    assert held.outcome == "deferred" and held.not_before == datetime(2026, 11, 25, 8, 0, tzinfo=zone)
    assert _message(reminder).status == "queued"
    assert outbound.deliver(_scope(demo), reply, now=late).outcome == "sent"
    morning = datetime(2026, 11, 25, 8, 1, tzinfo=zone).astimezone(UTC)
    assert outbound.deliver(_scope(demo), reminder, now=morning).outcome == "sent"


def test_opted_out_leads_get_nothing_but_the_opt_out_confirmation(demo: Demo) -> None:
    blocked = _outgoing(demo, dnd=True)
    assert outbound.deliver(_scope(demo), blocked).outcome == "failed"
    assert _message(blocked).error_code == "dnd"
    confirmation = _outgoing(demo, dnd=True, sender_type="system", body="You're unsubscribed.",
                             metadata_={"keyword": "opt_out", "urgent": True})
    assert outbound.deliver(_scope(demo), confirmation).outcome == "sent"


def test_realtime_events_go_out_after_commit_and_never_for_a_rollback(demo: Demo) -> None:
    import redis

    from leadpilot.infra import ensure_infra

    pubsub = redis.Redis.from_url(ensure_infra().redis_url).pubsub()
    pubsub.subscribe(realtime.sub_channel(demo.a))
    pubsub.get_message(timeout=1)  # the subscribe confirmation

    def events() -> list[dict[str, Any]]:
        found = []
        while (item := pubsub.get_message(timeout=0.3)) is not None:
            found.append(json.loads(item["data"]))
        return found

    with pytest.raises(RuntimeError), tenant_session(_scope(demo)) as session:
        contact, _ = crm.match_or_create_contact(session=session, sub_account_id=demo.a, phone="+13125559990")
        channel = session.scalars(select(Channel).where(Channel.channel_type == "sms")
                                  .order_by(Channel.created_at, Channel.id).limit(1)).one()  # the seeded one
        conversation = inbound.open_conversation(session, channel, contact.id)
        inbound.store_message(session, conversation, idempotency_key=f"t:{uuid.uuid4()}", body="never")
        raise RuntimeError("rolled back")
    assert events() == []
    message_id = _outgoing(demo, queue=True, body="Hello from the inbox")
    published = [e for e in events() if e["message"]["id"] == str(message_id)]
    assert published[0]["type"] == "message.created"  # (a worker may already have sent it: then an update)
    assert published[0]["message"]["body"] == "Hello from the inbox"
    pubsub.close()


def test_a_burst_of_texts_gets_one_coherent_reply(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.contrib.testing.worker import start_worker
    from fastapi.testclient import TestClient
    from twilio.request_validator import RequestValidator

    from api.app import app
    from models.ai import AIConversationLog
    from workers.app import QUEUES, celery_app

    monkeypatch.setattr(get_settings(), "twilio_auth_token", TOKEN)
    client = TestClient(app)
    url = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/sms"
    sender = f"+1773555{uuid.uuid4().int % 9000 + 1000}"
    texts = ["hi", "do you", "have vegan", "options", "on the menu?"]
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        for text in texts:  # five texts in two seconds
            form = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": ACCOUNT, "From": sender,
                    "To": "+17185550142", "Body": text, "NumMedia": "0"}
            signature = RequestValidator(TOKEN).compute_signature(url, form)
            assert client.post("/webhooks/twilio/sms", data=form,
                               headers={"X-Twilio-Signature": signature}).status_code == 200
            time.sleep(0.4)
        deadline, replies = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            with owner_session() as session:
                contact = session.scalars(select(Contact).where(Contact.phone == sender)).one()
                replies = session.scalars(select(Message).where(
                    Message.contact_id == contact.id, Message.direction == "outbound")).all()
            if replies and replies[0].status == "sent":
                break
            time.sleep(0.2)
        time.sleep(2.0)  # every other turn has run by now (each had a 1 s wait)
        with owner_session() as session:
            replies = session.scalars(select(Message).where(
                Message.contact_id == contact.id, Message.direction == "outbound")).all()
            inputs = session.scalars(select(AIConversationLog.user_input).join(
                Message, Message.id == AIConversationLog.message_id).where(Message.contact_id == contact.id)).all()
    assert len(replies) == 1 and replies[0].status == "sent"
    assert "vegan" in replies[0].body.lower() or "menu" in replies[0].body.lower()
    assert inputs and all(text in inputs[0] for text in ("do you", "have vegan", "on the menu?"))


def _campaign_message(demo: Demo, *, dnd: bool = False) -> tuple[uuid.UUID, uuid.UUID]:
    """A queued SMS of a campaign, with its recipient row (as a campaign batch writes them)."""
    from models.marketing import MessageCampaign, MessageCampaignRecipient

    message_id = _outgoing(demo, dnd=dnd, sender_type="system")
    with tenant_session(_scope(demo)) as session:
        message = session.get(Message, message_id)
        campaign = MessageCampaign(sub_account_id=demo.a, name="Statuses", channel_type="sms", status="sending")
        session.add(campaign)
        session.flush()
        recipient = MessageCampaignRecipient(sub_account_id=demo.a, message_campaign_id=campaign.id,
                                             contact_id=message.contact_id, message_id=message.id,
                                             sent_at=datetime.now(UTC))
        session.add(recipient)
        session.flush()
        message.metadata_ = {"campaign_id": str(campaign.id), "recipient_id": str(recipient.id)}
        return message_id, recipient.id


def _recipient(recipient_id: uuid.UUID) -> Any:
    from models.marketing import MessageCampaignRecipient

    with owner_session() as session:
        return session.get(MessageCampaignRecipient, recipient_id)


@pytest.mark.usefixtures("daytime")
def test_campaign_recipients_follow_their_messages_delivery(twilio: TwilioServer, demo: Demo) -> None:
    from services.campaigns import mirror_status

    sent_id, sent_recipient = _campaign_message(demo)
    assert outbound.deliver(_scope(demo), sent_id).outcome == "sent"
    assert _recipient(sent_recipient).status == "sent"
    with tenant_session(_scope(demo)) as session:  # Twilio's status callback: delivered, then a late "sent"
        message = session.get(Message, sent_id)
        message.status, message.delivered_at = "delivered", datetime.now(UTC)
        mirror_status(session, message)
        message.status = "sent"
        mirror_status(session, message)
    recipient = _recipient(sent_recipient)
    assert recipient.status == "delivered" and recipient.delivered_at is not None

    refused_id, refused_recipient = _campaign_message(demo)
    twilio.script = [400]  # 21211: not a valid phone number
    assert outbound.deliver(_scope(demo), refused_id).outcome == "failed"
    recipient = _recipient(refused_recipient)
    assert recipient.status == "bounced" and recipient.bounced_at is not None
    assert recipient.error and "refused" in recipient.error

    opted_out_id, opted_out_recipient = _campaign_message(demo, dnd=True)
    assert outbound.deliver(_scope(demo), opted_out_id).outcome == "failed"
    assert _recipient(opted_out_recipient).status == "skipped"
