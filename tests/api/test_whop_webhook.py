"""The Whop webhook, signed the way Whop signs (Standard Webhooks, computed here with hmac from the spec): verified
against the integration's own secret, stored once per delivery, and visible in the sub-account's revenue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import app
from models.activity import Integration
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.payments import ProviderEvent
from models.performance import Campaign, FinancialRecord
from services import reporting
from services.secrets import encrypt
from tests.conftest import Demo

pytestmark = pytest.mark.integration
PLAIN_SECRET = "ws_" + "3f9c2a7b" * 8  # the form Whop's dashboard shows: its bytes are the HMAC key


@dataclass(frozen=True)
class Hook:
    """A Whop integration of sub-account A and the secret its deliveries are signed with."""

    id: uuid.UUID
    secret: str
    url: str


@dataclass(frozen=True)
class Buyer:
    """A contact of sub-account A attributed to one of its campaigns."""

    id: uuid.UUID
    email: str
    campaign_id: uuid.UUID


def _integration(demo: Demo, secret: str | None, *, active: bool = True) -> uuid.UUID:
    with owner_session() as session:
        row = Integration(
            agency_id=demo.agency_id,
            sub_account_id=demo.a,
            provider_name="whop",
            name="Whop (test)",
            is_active=active,
            authentication_status="connected",
            credentials_encrypted=encrypt({"webhook_secret": secret}) if secret else None,
        )
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def client() -> TestClient:
    return TestClient(app)


@pytest.fixture(params=["plain", "whsec"])
def hook(request: pytest.FixtureRequest, demo: Demo) -> Hook:
    """Both ways a secret is written: Whop's plain `ws_...` string and the spec's `whsec_<base64 key>`."""
    secret = PLAIN_SECRET if request.param == "plain" else "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    integration_id = _integration(demo, secret)
    return Hook(integration_id, secret, f"/webhooks/whop/{integration_id}")


@pytest.fixture
def buyer(demo: Demo) -> Buyer:
    with owner_session() as session:
        campaign_id = session.scalars(
            select(Campaign.id).where(Campaign.sub_account_id == demo.a).order_by(Campaign.id).limit(1)
        ).one()
        contact = Contact(
            agency_id=demo.agency_id,
            sub_account_id=demo.a,
            first_name="Whitney",
            email=f"buyer-{uuid.uuid4().hex[:10]}@example.com",
            campaign_id=campaign_id,
        )
        session.add(contact)
        session.flush()
        return Buyer(contact.id, contact.email or "", campaign_id)


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()


def _headers(body: str, secret: str, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
    """What Whop sends: webhook-id, webhook-timestamp and `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    ts = str(timestamp or int(time.time()))
    digest = hmac.new(_key(secret), f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "content-type": "application/json",
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }


def _post(
    client: TestClient,
    hook: Hook,
    event: dict,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    msg_id: str | None = None,
):  # type: ignore[no-untyped-def]
    body = json.dumps(event)
    headers = _headers(body, secret or hook.secret, msg_id or event["id"], timestamp)
    return client.post(hook.url, content=body, headers=headers)


def _envelope(kind: str, data: dict) -> dict:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "api_version": "v1",
        "type": kind,
        "timestamp": datetime.now(UTC).isoformat(),
        "company_id": "biz_test",
        "data": data,
    }


def _payment(email: str | None, total: float = 149.99, *, name: str = "Whitney Houston") -> dict:
    pay_id = f"pay_{uuid.uuid4().hex[:14]}"
    now = datetime.now(UTC).isoformat()
    return _envelope(
        "payment.succeeded",
        {
            "id": pay_id,
            "status": "paid",
            "substatus": "succeeded",
            "total": total,
            "subtotal": total,
            "usd_total": total,
            "currency": "usd",
            "paid_at": now,
            "created_at": now,
            "user": {"id": "user_x", "username": "whit", "name": name, "email": email},
            "product": {"id": "prod_x", "title": "Mastermind", "route": "mastermind"},
            "membership": {"id": "mem_x"},
        },
    )


def _refund(
    payment: dict, amount: float, status: str = "succeeded", refund_id: str | None = None, kind: str = "refund.created"
) -> dict:
    return _envelope(
        kind,
        {
            "id": refund_id or f"rf_{uuid.uuid4().hex[:14]}",
            "amount": amount,
            "currency": "usd",
            "status": status,
            "provider": "stripe",
            "created_at": datetime.now(UTC).isoformat(),
            "payment": {
                "id": payment["data"]["id"],
                "currency": "usd",
                "total": payment["data"]["total"],
                "user": payment["data"]["user"],
            },
        },
    )


def _records(reference: str) -> list[FinancialRecord]:
    with owner_session() as session:
        return list(session.scalars(select(FinancialRecord).where(FinancialRecord.reference_number == reference)))


def _deliveries(msg_id: str) -> int:
    with owner_session() as session:
        return (
            session.scalar(
                select(func.count()).where(ProviderEvent.provider == "whop", ProviderEvent.event_id.like(f"%:{msg_id}"))
            )
            or 0
        )


def _money(demo: Demo) -> tuple[Decimal, Decimal]:
    """Sub-account A's revenue and refunds for the period around now, as its report shows them."""
    now = datetime.now(UTC)
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        tz = reporting.sub_account_timezone(session=session, sub_account_id=demo.a)
        report = reporting.build_report(
            session=session,
            group_by="sub_account",
            tz=tz,
            start=now - timedelta(days=2),
            end=now + timedelta(days=1),
            metrics=("revenue", "refunds"),
        )
    group = next((g for g in report.groups if g.key == demo.a), None)
    if group is None:
        return Decimal(0), Decimal(0)
    return group.figures["revenue"].value or Decimal(0), group.figures["refunds"].value or Decimal(0)


def test_a_signed_payment_is_stored_once_for_the_buyers_campaign(client: TestClient, hook: Hook, buyer: Buyer) -> None:
    event = _payment(buyer.email.upper())  # Whop's casing is not ours: matched after normalizing
    reference = f"whop:{event['data']['id']}"
    first = _post(client, hook, event)
    assert (first.status_code, first.json()) == (200, {"event": event["id"], "status": "processed"})
    again = _post(client, hook, event)  # Whop's retry: same webhook-id, signed anew
    assert again.json() == {"event": event["id"], "status": "processed", "duplicate": True}
    [record] = _records(reference)
    assert (record.transaction_type, record.payment_status, record.amount, record.currency) == (
        "payment",
        "paid",
        Decimal("149.99"),
        "USD",
    )
    assert (record.contact_id, record.campaign_id, record.integration_source_id) == (
        buyer.id,
        buyer.campaign_id,
        hook.id,
    )
    assert _deliveries(event["id"]) == 1


def test_an_unknown_buyer_becomes_a_whop_contact(client: TestClient, hook: Hook, demo: Demo) -> None:
    email = f"new-{uuid.uuid4().hex[:10]}@example.com"
    event = _payment(email, 20)
    assert _post(client, hook, event).status_code == 200
    [record] = _records(f"whop:{event['data']['id']}")
    with owner_session() as session:
        contact = session.get(Contact, record.contact_id)
        assert contact is not None
        assert (contact.sub_account_id, contact.email, contact.source, contact.first_name, contact.last_name) == (
            demo.a,
            email,
            "whop",
            "Whitney",
            "Houston",
        )
    assert record.campaign_id is None and record.amount == Decimal("20.00")


@pytest.mark.parametrize("tamper", ["body", "secret", "stale", "future", "unsigned"])
def test_a_bad_delivery_is_refused_and_stores_nothing(
    client: TestClient, hook: Hook, buyer: Buyer, tamper: str
) -> None:
    event = _payment(buyer.email)
    body = json.dumps(event)
    if tamper == "body":
        headers = _headers(body, hook.secret, event["id"])
        response = client.post(hook.url, content=body.replace("149.99", "1.99"), headers=headers)
    elif tamper == "secret":
        response = _post(client, hook, event, secret="ws_not_the_secret")
    elif tamper in ("stale", "future"):
        response = _post(client, hook, event, timestamp=int(time.time()) + (-400 if tamper == "stale" else 400))
    else:
        response = client.post(hook.url, content=body, headers={"webhook-id": event["id"]})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert _records(f"whop:{event['data']['id']}") == [] and _deliveries(event["id"]) == 0


def test_an_unknown_or_inactive_integration_is_refused(client: TestClient, demo: Demo, buyer: Buyer) -> None:
    inactive = _integration(demo, PLAIN_SECRET, active=False)
    event = _payment(buyer.email)
    body = json.dumps(event)
    headers = _headers(body, PLAIN_SECRET, event["id"])
    for target in (inactive, uuid.uuid4(), "not-a-uuid"):
        response = client.post(f"/webhooks/whop/{target}", content=body, headers=headers)
        assert (response.status_code, response.headers["content-type"]) == (404, "application/problem+json")
    no_secret = _integration(demo, None)
    assert client.post(f"/webhooks/whop/{no_secret}", content=body, headers=headers).status_code == 503
    assert _records(f"whop:{event['data']['id']}") == [] and _deliveries(event["id"]) == 0


def test_refunds_are_their_own_rows_on_the_payments_campaign(client: TestClient, hook: Hook, buyer: Buyer) -> None:
    payment = _payment(buyer.email, 300)
    _post(client, hook, payment)
    partial, rest = _refund(payment, 100), _refund(payment, 200, status="pending")
    for event in (partial, partial, rest):  # the first one delivered twice
        assert _post(client, hook, event).status_code == 200
    first, second = (_records(f"whop:{e['data']['id']}") for e in (partial, rest))
    assert [(r.amount, r.payment_status) for r in first + second] == [
        (Decimal("100.00"), "paid"),
        (Decimal("200.00"), "pending"),
    ]
    assert {(r.transaction_type, r.contact_id, r.campaign_id) for r in first + second} == {
        ("refund", buyer.id, buyer.campaign_id)
    }
    settled = _refund(payment, 200, status="succeeded", refund_id=rest["data"]["id"], kind="refund.updated")
    assert _post(client, hook, settled).json()["status"] == "processed"
    late = _refund(payment, 200, status="pending", refund_id=rest["data"]["id"], kind="refund.updated")
    assert _post(client, hook, late).status_code == 200  # out of order: a settled refund never goes back
    assert [r.payment_status for r in _records(f"whop:{rest['data']['id']}")] == ["paid"]


def test_the_sub_accounts_revenue_moves_by_exactly_the_amounts(
    client: TestClient, hook: Hook, buyer: Buyer, demo: Demo
) -> None:
    revenue, refunds = _money(demo)
    payment = _payment(buyer.email, 249.5)
    _post(client, hook, payment)
    _post(client, hook, payment)
    _post(client, hook, _refund(payment, 49.5))
    _post(client, hook, _refund(payment, 10, status="failed"))  # a failed refund returns nothing
    assert _money(demo) == (revenue + Decimal("249.50"), refunds + Decimal("49.50"))


def test_other_events_are_acknowledged_and_ignored(client: TestClient, hook: Hook) -> None:
    event = _envelope("membership.activated", {"id": "mem_x", "status": "active"})
    assert _post(client, hook, event).json() == {"event": event["id"], "status": "ignored"}
    assert _deliveries(event["id"]) == 1
