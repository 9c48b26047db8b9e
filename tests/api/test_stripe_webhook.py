"""The Stripe webhook, signed exactly as Stripe signs (the SDK's own code): verified, applied once."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import app
from leadpilot.settings import get_settings
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.payments import Invoice, ProviderEvent, Transaction
from models.performance import FinancialRecord
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
