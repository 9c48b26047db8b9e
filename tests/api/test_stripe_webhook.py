"""The Stripe webhook, signed exactly as Stripe signs (the SDK's own code): verified, applied once."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import app
from leadpilot.settings import get_settings
from models.activity import Integration
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.payments import Invoice, ProviderEvent, Transaction
from models.performance import Campaign, FinancialRecord
from services import payments
from tests.conftest import Demo

pytestmark = pytest.mark.integration
SECRET = "whsec_test_leadpilot"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(get_settings(), "stripe_webhook_secret", SECRET)
    return TestClient(app)


@pytest.fixture
def invoice(demo: Demo) -> Invoice:
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        contact = session.scalars(select(Contact).where(Contact.campaign_id.is_not(None)).limit(1)).one()
        return payments.create_invoice(
            session=session,
            contact_id=contact.id,
            lines=[payments.Line("Catering deposit", Decimal(1), Decimal("250.00"))],
        )


def _post(client: TestClient, event: dict, *, secret: str = SECRET, timestamp: int | None = None):  # type: ignore[no-untyped-def]
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp or int(time.time()))
    return client.post(
        "/webhooks/stripe", content=payload, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def _checkout(invoice: Invoice, payment_intent: str) -> dict:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "checkout.session.completed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"cs_{uuid.uuid4().hex}",
                "payment_intent": payment_intent,
                "amount_total": 25000,
                "metadata": {"sub_account_id": str(invoice.sub_account_id), "invoice_id": str(invoice.id)},
            }
        },
    }


def _counts(reference: str) -> tuple[int, int, int]:
    with owner_session() as session:
        return (
            session.scalar(select(func.count()).where(Transaction.gateway_transaction_id == reference)) or 0,
            session.scalar(select(func.count()).where(FinancialRecord.reference_number == f"stripe:{reference}")) or 0,
            session.scalar(
                select(func.count()).where(
                    ProviderEvent.provider == "stripe",
                    ProviderEvent.payload["data"]["object"]["payment_intent"].astext == reference,
                )
            )
            or 0,
        )


def test_a_paid_checkout_pays_the_invoice_once_even_when_replayed(client: TestClient, invoice: Invoice) -> None:
    pi = f"pi_{uuid.uuid4().hex}"
    event = _checkout(invoice, pi)
    first, replay = _post(client, event), _post(client, event)
    assert (first.status_code, first.json()["status"]) == (200, "processed")
    assert replay.json() == {"event": event["id"], "status": "processed", "duplicate": True}
    assert _counts(pi) == (1, 1, 1)
    with owner_session() as session:
        paid = session.get(Invoice, invoice.id)
        record = session.scalars(
            select(FinancialRecord).where(FinancialRecord.reference_number == f"stripe:{pi}")
        ).one()
        assert (paid.status, paid.amount_paid) == ("paid", Decimal("250.00"))
        assert record.campaign_id is not None and record.amount == Decimal("250.00")


def test_a_new_event_for_the_same_payment_does_not_pay_twice(client: TestClient, invoice: Invoice) -> None:
    pi = f"pi_{uuid.uuid4().hex}"
    _post(client, _checkout(invoice, pi))
    assert _post(client, _checkout(invoice, pi)).status_code == 200
    assert _counts(pi)[:2] == (1, 1)


@pytest.mark.parametrize("tamper", ["secret", "body", "stale"])
def test_a_bad_signature_is_refused_and_stores_nothing(client: TestClient, invoice: Invoice, tamper: str) -> None:
    pi = f"pi_{uuid.uuid4().hex}"
    event = _checkout(invoice, pi)
    if tamper == "secret":
        response = _post(client, event, secret="whsec_wrong")
    elif tamper == "stale":
        response = _post(client, event, timestamp=int(time.time()) - 600)
    else:
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, int(time.time()))
        response = client.post(
            "/webhooks/stripe", content=payload.replace("25000", "1"), headers={"Stripe-Signature": header}
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert _counts(pi) == (0, 0, 0)


def test_refunds_follow_the_running_total(client: TestClient, invoice: Invoice) -> None:
    pi = f"pi_{uuid.uuid4().hex}"
    _post(client, _checkout(invoice, pi))
    charge = {
        "id": f"ch_{uuid.uuid4().hex}",
        "payment_intent": pi,
        "metadata": {"sub_account_id": str(invoice.sub_account_id)},
    }
    for refunded in (5000, 5000, 25000):  # 50.00, the same again (redelivered), then the rest
        event = {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "charge.refunded",
            "created": int(time.time()),
            "data": {"object": {**charge, "amount_refunded": refunded}},
        }
        assert _post(client, event).json()["status"] == "processed"
    with owner_session() as session:
        refunds = session.scalars(
            select(Transaction.amount).where(
                Transaction.transaction_type == "refund", Transaction.invoice_id == invoice.id
            )
        ).all()
        refunded_money = session.scalars(
            select(FinancialRecord.amount).where(
                FinancialRecord.transaction_type == "refund",
                FinancialRecord.reference_number.like(f"stripe:{charge['id']}%"),
            )
        ).all()
    assert sorted(refunds) == [Decimal("50.00"), Decimal("200.00")]
    assert sorted(refunded_money) == [Decimal("50.00"), Decimal("200.00")]


def test_unknown_events_are_acknowledged_and_ignored(client: TestClient) -> None:
    event = {"id": f"evt_{uuid.uuid4().hex}", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    assert _post(client, event).json()["status"] == "ignored"


def test_without_a_secret_the_endpoint_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "stripe_webhook_secret", None)
    assert TestClient(app).post("/webhooks/stripe", content="{}").status_code == 503


# payments taken outside our invoices (a payment link, a dashboard charge) on a connected account


@pytest.fixture
def connected(demo: Demo) -> tuple[str, uuid.UUID]:
    """Sub-account A's Stripe integration: its Connect account id and its row."""
    with owner_session() as session:
        row = session.scalars(
            select(Integration).where(Integration.sub_account_id == demo.a, Integration.provider_name == "stripe")
        ).one()
        return str(row.connection_id), row.id


@pytest.fixture
def buyer(demo: Demo) -> Contact:
    with owner_session() as session:
        campaign_id = session.scalars(
            select(Campaign.id).where(Campaign.sub_account_id == demo.a).order_by(Campaign.id.desc()).limit(1)
        ).one()
        contact = Contact(
            agency_id=demo.agency_id,
            sub_account_id=demo.a,
            first_name="Stripe",
            email=f"payer-{uuid.uuid4().hex[:10]}@example.com",
            campaign_id=campaign_id,
        )
        session.add(contact)
        session.flush()
        return contact


def _event(kind: str, obj: dict, account: str | None = None) -> dict:
    event = {"id": f"evt_{uuid.uuid4().hex}", "type": kind, "created": int(time.time()), "data": {"object": obj}}
    return {**event, "account": account} if account else event


def _records(reference: str) -> list[FinancialRecord]:
    with owner_session() as session:
        return list(session.scalars(select(FinancialRecord).where(FinancialRecord.reference_number == reference)))


def test_an_outside_payment_is_one_record_for_the_buyers_campaign(
    client: TestClient, connected: tuple[str, uuid.UUID], buyer: Contact
) -> None:
    account, integration_id = connected
    pi, charge = f"pi_{uuid.uuid4().hex}", f"ch_{uuid.uuid4().hex}"
    intent = _event(
        "payment_intent.succeeded",
        {
            "id": pi,
            "amount": 12345,
            "amount_received": 12345,
            "currency": "usd",
            "receipt_email": buyer.email,
            "metadata": {},
        },
        account,
    )
    charged = _event(
        "charge.succeeded",
        {
            "id": charge,
            "payment_intent": pi,
            "amount": 12345,
            "amount_captured": 12345,
            "captured": True,
            "currency": "usd",
            "billing_details": {"email": buyer.email, "name": "Stripe Payer"},
            "metadata": {},
        },
        account,
    )
    for event in (intent, charged, intent):  # the PaymentIntent's event, its charge's, then a redelivery
        assert _post(client, event).status_code == 200
    [record] = _records(f"stripe:{pi}")
    assert (record.transaction_type, record.amount, record.currency, record.payment_status) == (
        "payment",
        Decimal("123.45"),
        "USD",
        "paid",
    )
    assert (record.contact_id, record.campaign_id, record.integration_source_id) == (
        buyer.id,
        buyer.campaign_id,
        integration_id,
    )


def test_an_outside_payment_from_a_new_buyer_creates_the_contact(
    client: TestClient, connected: tuple[str, uuid.UUID], demo: Demo
) -> None:
    email, pi = f"walkin-{uuid.uuid4().hex[:10]}@example.com", f"pi_{uuid.uuid4().hex}"
    session_obj = {
        "id": f"cs_{uuid.uuid4().hex}",
        "payment_intent": pi,
        "payment_status": "paid",
        "mode": "payment",
        "amount_total": 5000,
        "currency": "jpy",
        "customer_details": {"email": email, "name": "Kenji Sato"},
        "metadata": {},
    }
    assert _post(client, _event("checkout.session.completed", session_obj, connected[0])).status_code == 200
    [record] = _records(f"stripe:{pi}")
    assert (record.amount, record.currency) == (Decimal("5000.00"), "JPY")  # yen have no minor unit
    with owner_session() as session:
        contact = session.get(Contact, record.contact_id)
        assert contact is not None
        assert (contact.sub_account_id, contact.email, contact.source) == (demo.a, email, "stripe")


def test_outside_refunds_follow_the_running_total_on_the_payments_campaign(
    client: TestClient, connected: tuple[str, uuid.UUID], buyer: Contact
) -> None:
    account = connected[0]
    pi, charge = f"pi_{uuid.uuid4().hex}", f"ch_{uuid.uuid4().hex}"
    paid = {"id": pi, "amount_received": 12345, "currency": "usd", "receipt_email": buyer.email, "metadata": {}}
    _post(client, _event("payment_intent.succeeded", paid, account))
    base = {
        "id": charge,
        "payment_intent": pi,
        "amount": 12345,
        "currency": "usd",
        "metadata": {},
        "billing_details": {"email": None},
    }
    for refunded in (2000, 2000, 12345):  # 20.00, the same total again, then the rest
        event = _event("charge.refunded", {**base, "amount_refunded": refunded}, account)
        assert _post(client, event).json()["status"] == "processed"
    with owner_session() as session:
        refunds = session.scalars(
            select(FinancialRecord).where(
                FinancialRecord.transaction_type == "refund",
                FinancialRecord.reference_number.like(f"stripe:{charge}:%"),
            )
        ).all()
    assert sorted(r.amount for r in refunds) == [Decimal("20.00"), Decimal("103.45")]
    assert {(r.contact_id, r.campaign_id) for r in refunds} == {(buyer.id, buyer.campaign_id)}


@pytest.mark.parametrize("order", ["checkout_first", "intent_first"])
def test_an_invoice_paid_through_checkout_counts_once(client: TestClient, invoice: Invoice, order: str) -> None:
    pi = f"pi_{uuid.uuid4().hex}"
    checkout = _checkout(invoice, pi)
    # what Stripe sends for the same payment: the PaymentIntent carries the metadata of payment_intent_data
    intent = _event(
        "payment_intent.succeeded",
        {
            "id": pi,
            "amount": 25000,
            "amount_received": 25000,
            "currency": "usd",
            "metadata": checkout["data"]["object"]["metadata"],
        },
    )
    for event in (checkout, intent) if order == "checkout_first" else (intent, checkout):
        assert _post(client, event).json()["status"] == "processed"
    assert _counts(pi)[:2] == (1, 1)
    with owner_session() as session:
        paid = session.get(Invoice, invoice.id)
        [record] = _records(f"stripe:{pi}")
        assert (paid.status, paid.amount_paid, record.amount) == ("paid", Decimal("250.00"), Decimal("250.00"))
        assert record.transaction_id is not None and record.campaign_id is not None


def _stored(event_id: str) -> ProviderEvent | None:
    with owner_session() as session:
        return session.scalars(select(ProviderEvent).where(ProviderEvent.provider == "stripe",
                                                           ProviderEvent.event_id == event_id)).first()


def test_payments_no_integration_vouches_for_store_no_money(
    client: TestClient, connected: tuple[str, uuid.UUID], buyer: Contact, demo: Demo
) -> None:
    obj = {"amount_received": 900, "currency": "usd", "receipt_email": buyer.email}
    unknown = _event("payment_intent.succeeded", {**obj, "id": f"pi_{uuid.uuid4().hex}", "metadata": {}}, "acct_nobody")
    # a platform event without our metadata: several sub-accounts use Stripe here, so whose it is cannot be told
    platform = _event("payment_intent.succeeded", {**obj, "id": f"pi_{uuid.uuid4().hex}", "metadata": {}})
    # a connected account naming another sub-account in its own metadata is not believed
    forged = _event(
        "payment_intent.succeeded",
        {**obj, "id": f"pi_{uuid.uuid4().hex}", "metadata": {"sub_account_id": str(demo.b)}},
        connected[0],
    )
    for event in (unknown, platform):  # not yet anyone's: refused, so Stripe retries; kept retryable here
        response = _post(client, event)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        record = _stored(event["id"])
        assert record is not None and record.status == "failed" and record.error.startswith("unrouted")
        assert _records(f"stripe:{event['data']['object']['id']}") == []
    assert _post(client, forged).json()["status"] == "ignored"
    assert _records(f"stripe:{forged['data']['object']['id']}") == []


def test_an_event_of_an_account_connected_later_is_applied_when_redelivered(
    client: TestClient, demo: Demo
) -> None:
    from tests.api.test_rest import key_for

    account, pi = f"acct_{uuid.uuid4().hex[:16]}", f"pi_{uuid.uuid4().hex}"
    event = _event("payment_intent.succeeded", {"id": pi, "amount_received": 4200, "currency": "usd",
                                                "receipt_email": f"late-{uuid.uuid4().hex[:8]}@example.com",
                                                "metadata": {}}, account)
    assert _post(client, event).status_code == 503  # before B connects the account: Stripe will retry
    made = client.post(f"/v1/sub-accounts/{demo.b}/integrations", headers=key_for(demo, "bob@restaurant.com"),
                       json={"provider": "stripe", "name": "B's Stripe", "connection_id": account})
    assert made.status_code == 201, made.text
    try:
        assert _post(client, event).json() == {"event": event["id"], "status": "processed"}  # Stripe's retry
        [record] = _records(f"stripe:{pi}")
        assert (record.sub_account_id, record.amount) == (demo.b, Decimal("42.00"))
        assert _stored(event["id"]).status == "processed"
    finally:
        with owner_session() as session:
            session.get(Integration, uuid.UUID(made.json()["id"])).deleted_at = datetime.now(UTC)


@pytest.mark.parametrize("provider", ["stripe", "meta", "whop"])
def test_an_outside_account_is_claimed_by_one_sub_account_only(client: TestClient, demo: Demo, provider: str) -> None:
    """B's client manager cannot take A's Stripe account, Meta ad account or Whop company (nor can A claim its
    own twice): a 409 that names neither the holder nor its integration; A's events still reach A."""
    from tests.api.test_rest import key_for

    connection_id = {"stripe": f"acct_{uuid.uuid4().hex[:16]}", "meta": str(uuid.uuid4().int % 10**15),
                     "whop": f"biz_{uuid.uuid4().hex[:14]}"}[provider]
    with owner_session() as session:
        held = Integration(agency_id=demo.agency_id, sub_account_id=demo.a, provider_name=provider,
                           name=f"Held {uuid.uuid4().hex[:6]}", connection_id=connection_id,
                           authentication_status="connected", data_sync_status="never_synced")
        session.add(held)
        session.flush()
        held_id, held_name = held.id, held.name
    try:
        answers = []
        for who, sub in (("bob@restaurant.com", demo.b), ("john@restaurant.com", demo.a)):
            claimed = f" act_{connection_id}" if provider == "meta" else f" {connection_id}"  # the same account
            response = client.post(f"/v1/sub-accounts/{sub}/integrations", headers=key_for(demo, who),
                                   json={"provider": provider, "name": "mine now", "connection_id": claimed})
            assert response.status_code == 409, response.text
            assert response.headers["content-type"] == "application/problem+json"
            answers.append(response.json()["detail"])
            assert str(held_id) not in response.text and held_name not in response.text
            assert sub == demo.a or str(demo.a) not in response.text
        assert answers[0] == answers[1]
        with owner_session() as session:
            assert session.scalar(select(func.count()).where(
                Integration.connection_id == connection_id, Integration.provider_name == provider,
                Integration.deleted_at.is_(None))) == 1
        if provider == "stripe":
            pi = f"pi_{uuid.uuid4().hex}"
            event = _event("payment_intent.succeeded", {"id": pi, "amount_received": 700, "currency": "usd",
                                                        "metadata": {}}, connection_id)
            assert _post(client, event).json()["status"] == "processed"
            assert [r.sub_account_id for r in _records(f"stripe:{pi}")] == [demo.a]
    finally:
        with owner_session() as session:
            session.get(Integration, held_id).deleted_at = datetime.now(UTC)


@pytest.mark.parametrize("payload", [
    "[]", "1", '"evt"', "null", "{}", "{", '{"id": "evt_x", "type": "charge.succeeded"}',
    '{"id": "evt_x", "type": "charge.succeeded", "data": []}',
    '{"id": "evt_x", "type": "charge.succeeded", "data": {"object": null}}',
    '{"id": "evt_x", "data": {"object": {"id": "ch_1"}}}',
    '{"id": 7, "type": "charge.succeeded", "data": {"object": {"id": "ch_1"}}}',
    '{"id": "evt_x", "type": "charge.succeeded", "data": {"object": {"id": "ch_1", "metadata": []}}}',
    '{"id": "evt_x", "type": "charge.succeeded", "data": {"object": {"id": "ch_1", "amount": "12"}}}',
    '{"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": {"amount": 5}}}',
])
def test_a_signed_event_in_an_unexpected_shape_is_a_400_and_stores_nothing(client: TestClient, payload: str) -> None:
    payload = payload.replace("evt_x", f"evt_{uuid.uuid4().hex}")
    with owner_session() as session:
        before = session.scalar(select(func.count()).select_from(ProviderEvent)) or 0
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, int(time.time()))
    response = client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": header})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    with owner_session() as session:
        assert session.scalar(select(func.count()).select_from(ProviderEvent)) == before


def test_nul_characters_in_a_signed_event_are_dropped_and_it_is_stored(client: TestClient) -> None:
    event = {"id": f"evt_{uuid.uuid4().hex}", "type": "customer.created",
             "data": {"object": {"id": "cus_1", "name": "Ada\u0000 Lovelace", "metadata": {"k\u0000": "v"}}}}
    assert _post(client, event).json()["status"] == "ignored"
    assert _stored(event["id"]).payload["data"]["object"]["name"] == "Ada Lovelace"


def test_a_stripe_body_larger_than_any_event_is_413(client: TestClient) -> None:
    payload = json.dumps({"id": "evt_big", "type": "customer.created", "data": {"object": {"x": "a" * 2_000_000}}})
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, int(time.time()))
    assert client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": header}).status_code == 413
