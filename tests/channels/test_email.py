"""Inbound email (SendGrid's Inbound Parse post and raw MIME), authenticated by the channel's shared secret: stored
once per Message-ID, threaded by In-Reply-To / References, quoted history and signature stripped. Outbound mail
over SMTP to a real local server (aiosmtpd) carries the threading headers and leaves exactly once."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import app
from channels.email import html_to_text, receive_mime, strip_reply
from channels.outbound import deliver
from leadpilot.settings import get_settings
from models.conversations import Channel, Conversation, Message, OutboxEvent
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.sandbox import SandboxDelivery
from tests.conftest import Demo

pytestmark = pytest.mark.integration
SECRET = "inbound-email-test-secret"


@dataclass(frozen=True)
class Inbox:
    channel_id: uuid.UUID
    address: str
    scope: TenantScope


def _channel(demo: Demo, config: dict[str, Any]) -> Inbox:
    address = f"leads-{uuid.uuid4().hex[:8]}@trattoria-a.example"
    with owner_session() as session:
        channel = Channel(sub_account_id=demo.a, channel_type="email", provider="smtp", name="Leads inbox",
                          address=address, config=config)
        session.add(channel)
        session.flush()
        channel_id = channel.id
    return Inbox(channel_id, address, TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))


@pytest.fixture(scope="module")
def inbox(demo: Demo) -> Inbox:
    """An email channel of restaurant A with an inbound secret (its own address: other tests never see it)."""
    return _channel(demo, {"from_name": "Trattoria A", "inbound_secret": SECRET})


@pytest.fixture
def client() -> TestClient:
    return TestClient(app)


def _lead() -> str:
    return f"jane.{uuid.uuid4().hex[:8]}@example.com"


def _mid() -> str:
    return f"<{uuid.uuid4().hex}@mail.example.com>"


def _mime(sender: str, to: str, body: str, *, subject: str = "Table for Friday", message_id: str | None = None,
          in_reply_to: str | None = None, references: list[str] | None = None, html: str | None = None,
          attachment: tuple[str, bytes, str] | None = None, headers: dict[str, str] | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, subject
    if message_id:
        mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    if html:
        mail.add_alternative(html, subtype="html")
    if attachment:
        filename, data, kind = attachment
        maintype, _, subtype = kind.partition("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()


def _post_mime(client: TestClient, raw: bytes, token: str | None = SECRET, **params: str):  # type: ignore[no-untyped-def]
    query = {**params, **({"token": token} if token else {})}
    return client.post("/webhooks/email/mime", content=raw, params=query,
                       headers={"content-type": "message/rfc822"})


def _stored(message_id: str) -> list[Message]:
    with owner_session() as session:
        return list(session.scalars(select(Message).where(Message.metadata_["message_id"].astext == message_id)))


def _turns(message_id: uuid.UUID) -> int:
    with owner_session() as session:
        return session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.aggregate_id == message_id, OutboxEvent.topic == "agent.turn")) or 0


GMAIL_REPLY = """Yes, Friday at 7 works for 4 people.

Thanks,
Jane

On Mon, Nov 24, 2026 at 10:15 AM Trattoria A <hello@trattoria-a.example>
wrote:

> Hi Jane, we have a table Friday at 7. Shall I book it?
>
"""


def test_a_sendgrid_post_is_stored_once_with_its_contact_conversation_and_turn(client, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    lead, mid = _lead(), _mid()
    fields = {
        "headers": f"Received: by mx.sendgrid.net\nMessage-ID: {mid}\nFrom: Jane Doe <{lead}>\nTo: {inbox.address}\n"
                   "Subject: Table for Friday\nMIME-Version: 1.0\n",
        "from": f"Jane Doe <{lead}>", "to": f"Trattoria A <{inbox.address}>", "subject": "Table for Friday",
        "text": GMAIL_REPLY + "\n-- \nJane Doe\nAcme Corp\n", "html": "<p>Yes, Friday at 7 works for 4 people.</p>",
        "envelope": f'{{"to": ["{inbox.address}"], "from": "{lead}"}}', "attachments": "1",
        "attachment-info": '{"attachment1": {"filename": "allergies.pdf", "type": "application/pdf"}}',
        "charsets": '{"to": "UTF-8", "text": "UTF-8"}', "SPF": "pass",
    }
    files = {"attachment1": ("allergies.pdf", b"%PDF-1.4 " + b"x" * 1000, "application/pdf")}
    response = client.post("/webhooks/email/inbound", params={"token": SECRET}, data=fields, files=files)
    assert response.status_code == 200, response.text
    assert response.json()["created"] is True

    [message] = _stored(mid)
    assert str(message.id) == response.json()["message_id"]
    assert message.body == "Yes, Friday at 7 works for 4 people.\n\nThanks,\nJane"
    assert "Shall I book it?" in message.metadata_["full_text"] and "Acme Corp" in message.metadata_["full_text"]
    assert (message.subject, message.content_type, message.provider_message_id) == ("Table for Friday", "email", mid)
    assert message.html_body == "<p>Yes, Friday at 7 works for 4 people.</p>"
    assert message.attachments == [{"filename": "allergies.pdf", "content_type": "application/pdf", "size": 1009}]
    with owner_session() as session:
        contact = session.get(Contact, message.contact_id)
        conversation = session.get(Conversation, message.conversation_id)
    assert (contact.email, contact.first_name, contact.last_name, contact.source) == (lead, "Jane", "Doe", "email")
    assert (conversation.channel_id, conversation.external_thread_id, conversation.subject) == (
        inbox.channel_id, mid, "Table for Friday")
    assert _turns(message.id) == 1

    # SendGrid retries the post: nothing new
    again = client.post("/webhooks/email/inbound", params={"token": SECRET}, data=fields, files=files)
    assert again.status_code == 200 and again.json() == {**response.json(), "created": False}
    assert len(_stored(mid)) == 1 and _turns(message.id) == 1


def test_replies_join_the_thread_and_a_new_mail_opens_a_new_conversation(client, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    lead, first, second, third, fresh = _lead(), _mid(), _mid(), _mid(), _mid()
    assert _post_mime(client, _mime(lead, inbox.address, "Do you have a table for 4 on Friday?",
                                    message_id=first)).status_code == 200
    # a reply naming the first mail in In-Reply-To, then one naming the chain only in References
    assert _post_mime(client, _mime(lead, inbox.address, "Also: is there parking?", subject="Re: Table for Friday",
                                    message_id=second, in_reply_to=first, references=[first])).status_code == 200
    assert _post_mime(client, _mime(lead, inbox.address, "And a high chair please.", subject="RE: Table for Friday",
                                    message_id=third, references=[first, second])).status_code == 200
    assert _post_mime(client, _mime(lead, inbox.address, "Do you do birthday cakes?", subject="Birthday",
                                    message_id=fresh)).status_code == 200
    [one], [two], [three], [other] = _stored(first), _stored(second), _stored(third), _stored(fresh)
    assert one.conversation_id == two.conversation_id == three.conversation_id != other.conversation_id
    assert two.metadata_["in_reply_to"] == first and three.metadata_["references"] == [first, second]
    with owner_session() as session:
        birthday = session.get(Conversation, other.conversation_id)
        assert (birthday.subject, birthday.external_thread_id) == ("Birthday", fresh)
    assert all(_turns(m.id) == 1 for m in (one, two, three, other))


def test_a_stranger_quoting_the_thread_is_not_filed_as_the_lead(client, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    lead, colleague, first, reply = _lead(), _lead(), _mid(), _mid()
    _post_mime(client, _mime(lead, inbox.address, "Table for 6 on Saturday?", message_id=first))
    _post_mime(client, _mime(colleague, inbox.address, "Make it 7 please", message_id=reply, in_reply_to=first))
    [one], [two] = _stored(first), _stored(reply)
    assert one.conversation_id != two.conversation_id and one.contact_id != two.contact_id


def test_the_raw_mime_endpoint_routes_by_envelope_recipient_tag_and_case(client, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    lead, mid = _lead(), _mid()
    local, _, domain = inbox.address.partition("@")
    raw = _mime(f'"Doe, Jane" <{lead}>', "Undisclosed recipients:;", "Hello there", message_id=mid,
                attachment=("menu.png", b"\x89PNG" + b"0" * 60, "image/png"))
    response = _post_mime(client, raw, to=f"{local.upper()}+website@{domain}")
    assert response.status_code == 200, response.text
    [message] = _stored(mid)
    assert message.body == "Hello there"
    assert message.attachments == [{"filename": "menu.png", "content_type": "image/png", "size": 64}]
    with owner_session() as session:
        contact = session.get(Contact, message.contact_id)
    assert (contact.first_name, contact.last_name) == ("Jane", "Doe")


def test_the_sendgrid_raw_variant_carries_the_whole_mime(client, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    lead, mid = _lead(), _mid()
    raw = _mime(lead, f"Trattoria <{inbox.address}>", "Is the terrace open?", message_id=mid)
    fields = {"email": raw.decode(), "to": inbox.address, "from": lead, "subject": "Table for Friday",
              "envelope": f'{{"to": ["{inbox.address}"], "from": "{lead}"}}'}
    response = client.post("/webhooks/email/inbound", data=fields, headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200, response.text
    [message] = _stored(mid)
    assert message.body == "Is the terrace open?"


def test_a_missing_or_wrong_token_is_refused_and_stores_nothing(client, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    lead, mid = _lead(), _mid()
    raw = _mime(lead, inbox.address, "hello", message_id=mid)
    for response in (_post_mime(client, raw, token=None), _post_mime(client, raw, token="not-the-secret"),
                     client.post("/webhooks/email/mime", content=raw, headers={"Authorization": "Bearer nope"}),
                     client.post("/webhooks/email/inbound", data={"from": lead, "to": inbox.address, "text": "hi"})):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert _stored(mid) == []
    with owner_session() as session:
        assert session.scalar(select(func.count()).where(Contact.email == lead)) == 0


def test_unknown_recipient_unconfigured_secret_and_garbage(client, inbox: Inbox, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """A post that no channel's secret authenticates gets one answer, whether the address exists or not, so
    addresses cannot be probed; a garbage body with a token is still a 422."""
    lead = _lead()
    unknown = _post_mime(client, _mime(lead, "nobody@nowhere.example", "hi"))
    unconfigured = _post_mime(client, _mime(lead, _channel(demo, {"from_name": "Trattoria A"}).address, "hi"))
    wrong = _post_mime(client, _mime(lead, inbox.address, "hi"), token="a-guess")
    parse_post = client.post("/webhooks/email/inbound", params={"token": "a-guess"},
                             data={"from": lead, "to": "nobody@nowhere.example", "text": "hi"})
    for response in (unknown, unconfigured, wrong, parse_post):
        assert response.status_code == 403, response.text
    assert unknown.json()["detail"] == unconfigured.json()["detail"] == wrong.json()["detail"] \
        == parse_post.json()["detail"]
    assert _post_mime(client, b"this is not an email at all").status_code == 422
    assert _post_mime(client, _mime("not an address", inbox.address, "hi")).status_code == 422
    with owner_session() as session:
        assert session.scalar(select(func.count()).where(Contact.email == lead)) == 0


def test_nul_bytes_are_dropped_and_a_long_mail_is_cut(client, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    from channels.email import MAX_BODY

    mid = _mid()
    raw = _mime(_lead(), inbox.address, "Table\x00 for 4?\n" + "word " * 40_000, subject="Hi\x00 there",
                message_id=mid)
    assert b"=00" in raw or b"\x00" in raw  # encoded or not, the NUL reaches the parser
    response = _post_mime(client, raw)
    assert response.status_code == 200, response.text
    [message] = _stored(mid)
    assert message.body.startswith("Table for 4?") and len(message.body) <= MAX_BODY
    assert message.subject == "Hi there" and "\x00" not in message.metadata_["full_text"]
    fields = {"from": _lead(), "to": inbox.address, "subject": "form\x00", "text": "hello\x00 there",
              "headers": f"Message-ID: {_mid()}\n"}
    posted = client.post("/webhooks/email/inbound", params={"token": SECRET}, data=fields)
    assert posted.status_code == 200, posted.text
    with owner_session() as session:
        assert session.get(Message, uuid.UUID(posted.json()["message_id"])).body == "hello there"


def test_an_email_larger_than_the_cap_is_413(client, monkeypatch: pytest.MonkeyPatch, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    from channels import email

    monkeypatch.setattr(email, "MAX_RAW_BYTES", 10_000)
    assert _post_mime(client, _mime(_lead(), inbox.address, "x" * 20_000)).status_code == 413


def test_a_mail_without_message_id_is_stored_once(inbox: Inbox) -> None:
    raw = _mime(_lead(), inbox.address, "No Message-ID here")
    first, retry = receive_mime(raw, token=SECRET), receive_mime(raw, token=SECRET)
    assert first.created and not retry.created and first.message_id == retry.message_id


def test_an_auto_reply_is_stored_but_not_answered(inbox: Inbox) -> None:
    raw = _mime(_lead(), inbox.address, "I am out of office until Monday.", message_id=_mid(),
                headers={"Auto-Submitted": "auto-replied"})
    stored = receive_mime(raw, token=SECRET)
    assert stored.created and _turns(stored.message_id) == 0


OUTLOOK_REPLY = """Can we move it to 8pm?

Best regards,
John Smith

________________________________
From: Trattoria A <hello@trattoria-a.example>
Sent: Monday, November 24, 2026 10:15 AM
To: John Smith <john@acme.example>
Subject: Re: Table for Friday

Hi John, we have a table Friday at 7.
"""
OUTLOOK_CLASSIC = """Please cancel my booking.
Regards, Bob
-----Original Message-----
From: Trattoria A [mailto:hello@trattoria-a.example]
Sent: Monday, November 24, 2026 10:15 AM
To: Bob
Subject: Booking confirmed

Your booking is confirmed.
"""
APPLE_MAIL = """Perfect, see you then!

Sent from my iPhone

> On Nov 24, 2026, at 10:15 AM, Trattoria A <hello@trattoria-a.example> wrote:
>
> Hi Jane, your table is booked.
"""
PLAIN_SIGNATURE = """Hello, do you cater for weddings of 120 guests?

-- 
Maria Lopez
Events Planner
"""
FORWARD = """FYI, see below.

---------- Forwarded message ---------
From: Bob <bob@x.example>
Date: Mon, Nov 24, 2026
Subject: Party
To: Jane <jane@y.example>

Can you book us a party room?
"""


@pytest.mark.parametrize(("text", "reply"), [
    (GMAIL_REPLY, "Yes, Friday at 7 works for 4 people.\n\nThanks,\nJane"),
    (OUTLOOK_REPLY, "Can we move it to 8pm?\n\nBest regards,\nJohn Smith"),
    (OUTLOOK_CLASSIC, "Please cancel my booking.\nRegards, Bob"),
    (APPLE_MAIL, "Perfect, see you then!"),
    (PLAIN_SIGNATURE, "Hello, do you cater for weddings of 120 guests?"),
    ("Just a plain question: are you open on Mondays?\n", "Just a plain question: are you open on Mondays?"),
    ("> Do you have vegan options?\nYes, two vegan menus.\n", "Yes, two vegan menus."),
    (FORWARD, FORWARD.strip()),  # a forward is kept whole: what was forwarded is the point
], ids=["gmail", "outlook", "outlook-classic", "apple-mail", "signature", "plain", "interleaved", "forward"])
def test_quoted_history_and_signatures_are_stripped(text: str, reply: str) -> None:
    assert strip_reply(text) == reply


def test_html_only_mail_is_read_without_its_quoted_history() -> None:
    gmail = ('<div dir="ltr">Sounds great, book it!<br><br>Jane</div><br><div class="gmail_quote">'
             '<div class="gmail_attr">On Mon, Nov 24, 2026 at 10:15 AM Trattoria &lt;hello@trattoria-a.example&gt;'
             ' wrote:<br></div><blockquote class="gmail_quote">Hi Jane,<br>we have a table.</blockquote></div>')
    outlook = ('<html><head><style>p{color:red}</style></head><body><div>Could we bring\n  a dog?</div><hr>'
               '<div id="divRplyFwdMsg"><b>From:</b> Trattoria A<br><b>Sent:</b> Monday<br><b>To:</b> Ann<br>'
               '<b>Subject:</b> Booking</div><div>Your booking is confirmed.</div></body></html>')
    assert strip_reply(html_to_text(gmail, drop_quotes=True)) == "Sounds great, book it!\n\nJane"
    assert "we have a table." in html_to_text(gmail)
    assert strip_reply(html_to_text(outlook, drop_quotes=True)) == "Could we bring a dog?"


def test_an_html_only_mail_is_stored_with_its_text(inbox: Inbox) -> None:
    mid = _mid()
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"], mail["Message-ID"] = _lead(), inbox.address, "Dogs", mid
    mail.set_content('<div>Could we bring a dog?</div><blockquote type="cite">Booked!</blockquote>', subtype="html")
    receive_mime(mail.as_bytes(), token=SECRET)
    [message] = _stored(mid)
    assert message.body == "Could we bring a dog?" and "Booked!" in message.metadata_["full_text"]
    assert message.html_body is not None and "<blockquote" in message.html_body


# ---- outbound ------------------------------------------------------------------------------------------------


class Collector:
    """An aiosmtpd handler keeping every mail it accepts; recipients starting with "bounce" are refused, those
    starting with "greylist" deferred."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.startswith("bounce"):
            return "550 5.1.1 No such user here"
        if address.startswith("greylist"):
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """A real SMTP server on localhost, and the settings pointing at it (restored after)."""
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=_free_port())
    controller.start()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(controller.port))
    get_settings.cache_clear()
    try:
        yield collector
    finally:
        controller.stop()
        monkeypatch.undo()
        get_settings.cache_clear()


def _reply(inbox: Inbox, inbound_id: uuid.UUID, body: str) -> uuid.UUID:
    """A person's reply in the conversation of an inbound message, queued for sending."""
    with tenant_session(inbox.scope) as session:
        inbound = session.get(Message, inbound_id)
        reply = Message(sub_account_id=inbound.sub_account_id, conversation_id=inbound.conversation_id,
                        channel_id=inbound.channel_id, contact_id=inbound.contact_id, direction="outbound",
                        sender_type="user", body=body, status="queued", subject=None)
        session.add(reply)
        session.flush()
        return reply.id


def _headers(envelope: Any) -> EmailMessage:
    return message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[return-value]


def test_a_reply_goes_out_over_smtp_in_the_leads_thread_exactly_once(smtp_server: Collector, inbox: Inbox) -> None:
    lead, first = _lead(), _mid()
    stored = receive_mime(_mime(f"Jane Doe <{lead}>", inbox.address, "Table for 4 on Friday?", message_id=first,
                                subject="Table for Friday"), token=SECRET)
    reply_id = _reply(inbox, stored.message_id, "Booked! See you Friday at 7.")

    attempt = deliver(inbox.scope, reply_id)
    assert attempt.outcome == "sent", attempt
    [envelope] = smtp_server.envelopes
    mail = _headers(envelope)
    assert envelope.rcpt_tos == [lead] and envelope.mail_from == inbox.address
    assert mail["To"].addresses[0].addr_spec == lead and mail["From"].addresses[0].addr_spec == inbox.address
    assert mail["From"].addresses[0].display_name == "Trattoria A"
    assert mail["In-Reply-To"] == first and first in mail["References"].split()
    assert mail["Subject"] == "Re: Table for Friday"
    assert mail["Message-ID"].endswith("@trattoria-a.example>")
    assert mail.get_content().strip() == "Booked! See you Friday at 7."
    with owner_session() as session:
        sent = session.get(Message, reply_id)
    assert (sent.status, sent.provider_message_id) == ("sent", mail["Message-ID"])
    assert sent.metadata_["message_id"] == mail["Message-ID"] and sent.metadata_["in_reply_to"] == first

    # the task is redelivered: nothing more leaves
    assert deliver(inbox.scope, reply_id).outcome == "done"
    assert len(smtp_server.envelopes) == 1

    # the lead answers our reply: it joins the same conversation
    answer = receive_mime(_mime(lead, inbox.address, "Great, thanks!\n\nOn Mon, Jane wrote:\n> Booked!",
                                message_id=_mid(), in_reply_to=mail["Message-ID"],
                                references=[first, mail["Message-ID"]]), token=SECRET)
    assert answer.conversation_id == stored.conversation_id

    # our own mail comes back with its Message-ID (the lead's client redirected it): stored, nothing collides
    echo = receive_mime(_mime(lead, inbox.address, "Booked! See you Friday at 7.", message_id=mail["Message-ID"],
                              subject="Re: Table for Friday"), token=SECRET)
    assert echo.created
    with owner_session() as session:
        assert session.get(Message, echo.message_id).provider_message_id is None


def test_a_second_reply_threads_onto_the_first(smtp_server: Collector, inbox: Inbox) -> None:
    lead, first = _lead(), _mid()
    stored = receive_mime(_mime(lead, inbox.address, "Do you deliver?", message_id=first, subject="Delivery"),
                          token=SECRET)
    deliver(inbox.scope, _reply(inbox, stored.message_id, "Yes, within 3 miles."))
    deliver(inbox.scope, _reply(inbox, stored.message_id, "And it is free over $30."))
    one, two = (_headers(e) for e in smtp_server.envelopes)
    assert two["In-Reply-To"] == one["Message-ID"] and one["Message-ID"] != two["Message-ID"]
    assert two["References"].split() == [first, one["Message-ID"]]
    assert two["Subject"] == one["Subject"] == "Re: Delivery"


def test_a_refused_recipient_fails_the_message_without_retrying(smtp_server: Collector, inbox: Inbox) -> None:
    stored = receive_mime(_mime(f"bounce-{uuid.uuid4().hex[:6]}@example.com", inbox.address, "hi",
                                message_id=_mid()), token=SECRET)
    reply_id = _reply(inbox, stored.message_id, "Hello!")
    attempt = deliver(inbox.scope, reply_id)
    assert (attempt.outcome, attempt.status) == ("failed", "failed")
    with owner_session() as session:
        assert session.get(Message, reply_id).error_code == "smtp_550"
    assert smtp_server.envelopes == []


def test_a_deferred_recipient_is_retried_later(smtp_server: Collector, inbox: Inbox) -> None:
    stored = receive_mime(_mime(f"greylist-{uuid.uuid4().hex[:6]}@example.com", inbox.address, "hi",
                                message_id=_mid()), token=SECRET)
    reply_id = _reply(inbox, stored.message_id, "Hello!")
    attempt = deliver(inbox.scope, reply_id)
    assert (attempt.outcome, attempt.status) == ("retry", "queued") and "451" in (attempt.error or "")
    assert smtp_server.envelopes == []


def test_without_smtp_the_sandbox_records_the_mail_and_its_headers(monkeypatch: pytest.MonkeyPatch,
                                                                  inbox: Inbox) -> None:
    monkeypatch.setattr(get_settings(), "smtp_host", None)
    lead, first = _lead(), _mid()
    stored = receive_mime(_mime(lead, inbox.address, "Any gluten-free pasta?", message_id=first,
                                subject="Re: Menu"), token=SECRET)
    reply_id = _reply(inbox, stored.message_id, "Yes, all our pasta comes gluten-free too.")
    assert deliver(inbox.scope, reply_id).outcome == "sent"
    with owner_session() as session:
        [record] = session.scalars(select(SandboxDelivery).where(SandboxDelivery.idempotency_key == f"send:{reply_id}"))
        sent = session.get(Message, reply_id)
    assert (record.provider, record.operation) == ("smtp", "smtp.send")
    assert record.request["to"] == lead and record.request["in_reply_to"] == first
    assert record.request["references"] == [first] and record.request["subject"] == "Re: Menu"
    assert record.request["message_id"] == sent.provider_message_id and "Trattoria A" in record.request["from"]
    assert record.request["body"] == "Yes, all our pasta comes gluten-free too."
