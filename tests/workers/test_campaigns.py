"""A campaign to 10,000 contacts: every eligible contact gets exactly one message (a second launch and a
redelivered batch add none), opted-out ones none; templates never crash on a missing variable; opens, clicks
and one-click unsubscribes are tracked and show in the analytics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, func, insert, select

from api.app import app
from channels import outbound
from models.conversations import Message
from models.crm import Contact, ContactTag
from models.db import TenantScope, owner_session, tenant_session
from models.marketing import EmailTemplate, MessageCampaign, MessageCampaignRecipient
from models.sandbox import SandboxDelivery
from services import campaigns, crm
from tests.conftest import Demo

pytestmark = pytest.mark.integration
N = 10_000


def test_render_uses_defaults_and_never_crashes() -> None:
    template = campaigns.compile_template("Hi {{ first_name }}, {{ offer | upper }} at {{ business.name }}!")
    contact = Contact(first_name=None, email="x@example.com", custom_fields={})
    text = template.render(campaigns.variables_of(contact, {"first_name": "there", "offer": "10% off"}))
    assert text == "Hi there, 10% OFF at !"
    with pytest.raises(Exception, match="Template error"):
        campaigns.compile_template("Hi {{ first_name ")


def test_a_campaign_to_ten_thousand_contacts(demo: Demo) -> None:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    tag_name = f"promo-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    with tenant_session(scope) as session:
        first = crm.create_contact(session=session, sub_account_id=demo.a,
                                   fields={"email": f"c0-{tag_name}@example.com", "first_name": "Zero"})
        tag_id = crm.add_tag(session=session, contact_id=first.id, name=tag_name).id
        rows = [{"id": uuid.uuid4(), "sub_account_id": demo.a, "agency_id": demo.agency_id,
                 "first_name": None if i % 7 == 0 else f"Guest{i}", "initial_contact_date": now,
                 "email": None if i % 200 == 0 else f"c{i}-{tag_name}@example.com",
                 "dnd_channels": {"email": {"reason": "test"}} if i % 100 == 1 else {}} for i in range(1, N)]
        session.execute(insert(Contact), rows)
        session.execute(insert(ContactTag), [{"sub_account_id": demo.a, "contact_id": r["id"], "tag_id": tag_id}
                                             for r in rows])
        template = EmailTemplate(sub_account_id=demo.a, name="Spring", subject="{{ first_name }}, spring menu",
                                 text_content="Hi {{ first_name }}, our spring menu is here.",
                                 html_content=('<html><body><p>Hi {{ first_name }}!</p><a href='
                                               '"https://restaurant.example/menu">See the menu</a></body></html>'),
                                 variables=[{"name": "first_name", "default": "friend"}])
        session.add(template)
        session.flush()
        campaign = MessageCampaign(sub_account_id=demo.a, name="Spring", channel_type="email",
                                   email_template_id=template.id, audience={"tags": [tag_name]})
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    eligible = sum(1 for i in range(N) if i == 0 or (i % 200 != 0 and i % 100 != 1))
    with tenant_session(scope) as session:
        assert campaigns.launch(session=session, campaign_id=campaign_id) == eligible
    with tenant_session(scope) as session:  # launched twice (a double click): nobody is added twice
        assert campaigns.launch(session=session, campaign_id=campaign_id) == eligible
    batches = 0
    while True:
        with tenant_session(scope) as session:
            if not campaigns.send_batch(session=session, campaign_id=campaign_id):
                break
        batches += 1
    with owner_session() as session:
        per_contact = session.execute(select(Message.contact_id, func.count()).where(
            Message.metadata_["campaign_id"].astext == str(campaign_id)).group_by(Message.contact_id)).all()
        dnd_sent = session.scalar(select(func.count()).select_from(Message).join(Contact).where(
            Message.metadata_["campaign_id"].astext == str(campaign_id), Contact.dnd_channels.has_key("email")))
        status = session.get(MessageCampaign, campaign_id).status
        sample = session.scalars(select(Message).where(Message.metadata_["campaign_id"].astext == str(campaign_id))
                                 .order_by(Message.created_at).limit(3)).all()
    assert len(per_contact) == eligible and {n for _, n in per_contact} == {1} and dnd_sent == 0
    assert batches == -(-eligible // campaigns.BATCH) and status == "sent"
    assert {m.subject for m in sample} <= {"Zero, spring menu", "friend, spring menu"} | {
        f"Guest{i}, spring menu" for i in range(N)}

    message = sample[0]
    with owner_session() as session:  # a lead answering the campaign is answered by the AI agent
        from models.conversations import ConversationAIConfig

        assert session.scalars(select(ConversationAIConfig).where(
            ConversationAIConfig.conversation_id == message.conversation_id)).one().is_active
    assert outbound.deliver(scope, message.id).outcome == "sent"
    with owner_session() as session:
        mail = session.scalars(select(SandboxDelivery).where(
            SandboxDelivery.request["message_id"].astext != "", SandboxDelivery.idempotency_key == f"send:{message.id}"
        )).one().request
        token = session.scalars(select(MessageCampaignRecipient.tracking_token).where(
            MessageCampaignRecipient.message_id == message.id)).one()
    assert mail["list_unsubscribe"].endswith(f"/u/{token}>") and f"/t/o/{token}.gif" in mail["html_body"]
    click = next(p for p in mail["html_body"].split('"') if "/t/c/" in p).replace("&amp;", "&")
    client = TestClient(app)
    assert client.get(f"/t/o/{token}.gif").headers["content-type"] == "image/gif"
    followed = client.get(urlsplit(click).path + "?" + urlsplit(click).query, follow_redirects=False)
    assert followed.status_code == 302 and followed.headers["location"] == "https://restaurant.example/menu"
    forged = parse_qs(urlsplit(click).query)
    assert client.get(f"/t/c/{token}", params={"u": "https://evil.example", "s": forged["s"][0]},
                      follow_redirects=False).status_code == 404  # no open redirect
    assert client.post(f"/u/{token}").status_code == 200
    with tenant_session(scope) as session:
        figures = campaigns.stats(session=session, campaign_id=campaign_id)
        contact = session.get(Contact, message.contact_id)
        assert "email" in contact.dnd_channels  # unsubscribed: no more email campaigns
    assert (figures["recipients"], figures["sent"], figures["opened"], figures["clicked"],
            figures["unsubscribed"]) == (eligible, eligible, 1, 1, 1)
    assert figures["open_rate"] == round(1 / eligible, 4)


def test_a_scheduled_campaign_is_launched_when_its_time_comes(demo: Demo) -> None:
    from datetime import timedelta

    from workers.tasks import start_scheduled_campaigns

    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    tag = f"sched-{uuid.uuid4().hex[:6]}"
    with tenant_session(scope) as session:
        for i in range(3):
            person = crm.create_contact(session=session, sub_account_id=demo.a,
                                        fields={"email": f"s{i}-{tag}@example.com"})
            crm.add_tag(session=session, contact_id=person.id, name=tag)
        template = EmailTemplate(sub_account_id=demo.a, name="Later", subject="Soon", html_content="<p>Hi</p>",
                                 text_content="Hi")
        session.add(template)
        session.flush()
        campaign = MessageCampaign(sub_account_id=demo.a, name="Later", channel_type="email",
                                   email_template_id=template.id, audience={"tags": [tag]})
        session.add(campaign)
        session.flush()
        campaigns.schedule(session=session, campaign_id=campaign.id, at=datetime.now(UTC) + timedelta(hours=1))
        campaign_id = campaign.id
    start_scheduled_campaigns()  # not yet
    with owner_session() as session:
        assert session.get(MessageCampaign, campaign_id).status == "scheduled"
    with tenant_session(scope) as session:
        session.get(MessageCampaign, campaign_id).scheduled_at = datetime.now(UTC) - timedelta(seconds=1)
    assert start_scheduled_campaigns() >= 1
    with owner_session() as session:
        launched = session.get(MessageCampaign, campaign_id)
        assert (launched.status, launched.total_recipients) == ("sending", 3)


def test_a_batch_is_handed_over_in_chunks_and_each_message_sent_once(demo: Demo) -> None:
    """queue_batch hands its sends over 25 to a task; the task sends each exactly once (run twice: nothing new)."""
    from models.conversations import OutboxEvent
    from workers.tasks import send_messages

    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    tag_name = f"chunk-{uuid.uuid4().hex[:6]}"
    with tenant_session(scope) as session:
        for i in range(outbound.SEND_CHUNK + 5):
            contact = crm.create_contact(session=session, sub_account_id=demo.a,
                                         fields={"email": f"k{i}-{tag_name}@example.com", "first_name": f"K{i}"})
            crm.add_tag(session=session, contact_id=contact.id, name=tag_name)
        template = EmailTemplate(sub_account_id=demo.a, name="Chunk", subject="Hi {{ first_name }}",
                                 text_content="Hello {{ first_name }}", html_content="<p>Hello</p>", variables=[])
        session.add(template)
        session.flush()
        campaign = MessageCampaign(sub_account_id=demo.a, name="Chunk", channel_type="email",
                                   email_template_id=template.id, audience={"tags": [tag_name]})
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
        campaigns.launch(session=session, campaign_id=campaign_id)
    with tenant_session(scope) as session:
        assert campaigns.queue_batch(session=session, campaign_id=campaign_id) == outbound.SEND_CHUNK + 5
    with owner_session() as session:
        events = [str(e) for e in session.scalars(select(OutboxEvent.id).join(
            Message, Message.id == OutboxEvent.aggregate_id).where(
            Message.metadata_["campaign_id"].astext == str(campaign_id)))]
    assert len(events) == outbound.SEND_CHUNK + 5
    for _ in range(2):  # a redelivered task sends nothing again
        send_messages(events, str(demo.agency_id), str(demo.a))
    with owner_session() as session:
        sent = session.scalar(select(func.count()).select_from(SandboxDelivery).join(
            Message, SandboxDelivery.idempotency_key == func.concat("send:", func.cast(Message.id, String))).where(
            Message.metadata_["campaign_id"].astext == str(campaign_id)))
        statuses = set(session.scalars(select(OutboxEvent.status).where(OutboxEvent.id.in_(
            [uuid.UUID(e) for e in events]))))
        recipients = set(session.scalars(select(MessageCampaignRecipient.status).where(
            MessageCampaignRecipient.message_campaign_id == campaign_id)))
    assert sent == outbound.SEND_CHUNK + 5 and statuses == {"done"} and recipients == {"sent"}
