"""The Stripe path through the real SDK, against a local server that speaks Stripe's HTTP protocol (form-encoded
requests, bearer key, Idempotency-Key replay, JSON objects and error bodies): what we send, and what we do with
the answers. The sandbox transport is covered in test_payments."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select

from leadpilot.settings import get_settings
from models.crm import Contact
from models.payments import Transaction
from services import payments
from services.errors import ProviderError
from services.payment_gateway import StripeGateway, gateway_for

pytestmark = pytest.mark.integration
KEY = "sk_test_leadpilot_local"


class StripeLike(ThreadingHTTPServer):
    calls: list[tuple[str, str | None, dict[str, str]]]
    replies: dict[str, tuple[int, dict[str, Any]]]


class Handler(BaseHTTPRequestHandler):
    server: StripeLike

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        key = self.headers.get("Idempotency-Key")
        self.server.calls.append((self.path, key, form))
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            status, body = 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        elif key and key in self.server.replies:
            status, body = self.server.replies[key]  # Stripe replays the first answer to a repeated key
        elif self.path == "/v1/checkout/sessions":
            sid = f"cs_test_{uuid.uuid4().hex}"
            status, body = 200, {"id": sid, "object": "checkout.session", "url": f"https://checkout.stripe.test/{sid}",
                                 "amount_total": int(form["line_items[0][price_data][unit_amount]"])}
        elif self.path == "/v1/refunds" and form.get("payment_intent", "").startswith("pi_unknown"):
            status, body = 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                           "message": "No such payment_intent"}}
        elif self.path == "/v1/refunds":
            status, body = 200, {"id": f"re_{uuid.uuid4().hex[:20]}", "object": "refund", "status": "succeeded",
                                 "amount": int(form["amount"]), "payment_intent": form["payment_intent"]}
        else:
            status, body = 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}
        if key:
            self.server.replies.setdefault(key, (status, body))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def stripe_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeLike]:
    server = StripeLike(("127.0.0.1", 0), Handler)
    server.calls, server.replies = [], {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(get_settings(), "stripe_api_key", KEY)
    monkeypatch.setattr(get_settings(), "stripe_api_base", f"http://127.0.0.1:{server.server_port}")
    yield server
    server.shutdown()


@pytest.fixture
def paid(a) -> tuple[Any, Transaction]:  # type: ignore[no-untyped-def]
    contact = a.scalars(select(Contact).order_by(Contact.id).limit(1)).one()
    invoice = payments.create_invoice(session=a, contact_id=contact.id,
                                      lines=[payments.Line("Private dining deposit", Decimal(1), Decimal("400.00"))])
    return invoice, payments.record_payment(session=a, invoice_id=invoice.id, amount=Decimal("400.00"),
                                            gateway="stripe", gateway_transaction_id=f"pi_{uuid.uuid4().hex}")


def test_a_configured_key_sends_a_checkout_session_once(a, stripe_server, demo) -> None:  # type: ignore[no-untyped-def]
    contact = a.scalars(select(Contact).order_by(Contact.id).limit(1)).one()
    invoice = payments.create_invoice(session=a, contact_id=contact.id,
                                      lines=[payments.Line("Tasting menu", Decimal(2), Decimal("95.50"))])
    gateway = gateway_for()
    assert isinstance(gateway, StripeGateway)
    sent = payments.send_payment_link(session=a, invoice_id=invoice.id, gateway=gateway)
    again = payments.send_payment_link(session=a, invoice_id=invoice.id, gateway=gateway)
    assert sent.payment_link_url == again.payment_link_url
    assert sent.payment_link_url.startswith("https://checkout.stripe.test/cs_test_")
    [(path, key, form)] = stripe_server.calls  # the stored link is reused: one request in all
    assert path == "/v1/checkout/sessions" and key == f"link:{invoice.id}:0.00"
    assert form["line_items[0][price_data][unit_amount]"] == "19100" and form["mode"] == "payment"
    assert form["metadata[invoice_id]"] == str(invoice.id) and form["metadata[sub_account_id]"] == str(demo.a)
    assert form["payment_intent_data[metadata][invoice_id]"] == str(invoice.id)


def test_a_refund_goes_to_stripe_then_is_recorded_with_its_id(a, stripe_server, paid) -> None:  # type: ignore[no-untyped-def]
    _, payment = paid
    refund = payments.refund_through_gateway(session=a, transaction_id=payment.id, amount=Decimal("150.00"),
                                             gateway=gateway_for())
    [(path, key, form)] = stripe_server.calls
    assert (path, form) == ("/v1/refunds", {"payment_intent": payment.gateway_transaction_id, "amount": "15000"})
    assert key == f"refund:{payment.id}:0:150.00"
    assert refund.gateway_transaction_id.startswith("re_") and refund.amount == Decimal("150.00")
    rest = payments.refund_through_gateway(session=a, transaction_id=payment.id, gateway=gateway_for())
    assert rest.amount == Decimal("250.00") and stripe_server.calls[-1][2]["amount"] == "25000"
    assert a.get(Transaction, payment.id).status == "refunded"


def test_a_retried_request_gets_stripes_first_answer(stripe_server, paid, a) -> None:  # type: ignore[no-untyped-def]
    _, payment = paid
    gateway = gateway_for()
    first = gateway.refund(session=a, sub_account_id=payment.sub_account_id, payment_ref=payment.gateway_transaction_id,
                           amount=Decimal("10.00"), idempotency_key="refund:retry")
    second = gateway.refund(session=a, sub_account_id=payment.sub_account_id,
                            payment_ref=payment.gateway_transaction_id, amount=Decimal("10.00"),
                            idempotency_key="refund:retry")
    assert first == second and len(stripe_server.calls) == 2


def test_a_stripe_refusal_is_a_provider_error_and_records_nothing(a, stripe_server, paid) -> None:  # type: ignore[no-untyped-def]
    _, payment = paid
    payment.gateway_transaction_id = "pi_unknown_123"
    a.flush()
    with pytest.raises(ProviderError, match="No such payment_intent") as caught:
        payments.refund_through_gateway(session=a, transaction_id=payment.id, gateway=gateway_for())
    assert caught.value.status == 502 and caught.value.extra["code"] == "resource_missing"
    assert a.scalars(select(Transaction).where(Transaction.transaction_type == "refund",
                                               Transaction.invoice_id == payment.invoice_id)).all() == []


def test_a_wrong_key_is_refused_by_the_protocol(a, stripe_server, paid, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(get_settings(), "stripe_api_key", "sk_test_wrong")
    _, payment = paid
    with pytest.raises(ProviderError, match="Invalid API Key"):
        payments.refund_through_gateway(session=a, transaction_id=payment.id, gateway=gateway_for())


def test_minor_units_follow_the_currency() -> None:
    from services.payment_gateway import cents, from_minor

    assert (cents(Decimal("12.34"), "usd"), cents(Decimal("5000"), "JPY"), cents(Decimal("1.234"), "kwd")) == (
        1234, 5000, 1234)
    assert (from_minor(1234, "usd"), from_minor(5000, "jpy"), from_minor(1234, "KWD")) == (
        Decimal("12.34"), Decimal("5000.00"), Decimal("1.23"))
