"""Where money calls go: Stripe through its SDK when a key is configured, otherwise a sandbox transport that
records each call (once per idempotency key) in sandbox_deliveries for the app to show."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from leadpilot.settings import Settings, get_settings
from models.payments import Invoice
from models.sandbox import SandboxDelivery
from services.errors import ProviderError

# Stripe amounts are integers of the currency's minor unit: these currencies have none, or three decimals
ZERO_DECIMAL = frozenset(("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"))
THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))


def _places(currency: str | None) -> int:
    code = (currency or "usd").lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def cents(amount: Decimal, currency: str | None = "usd") -> int:
    """`amount` in Stripe's integer minor units of `currency` (cents for USD, yen for JPY)."""
    return int((amount * 10 ** _places(currency)).to_integral_value())


def from_minor(amount: int | str, currency: str | None) -> Decimal:
    """Stripe's integer minor units as a Decimal amount of the currency."""
    return (Decimal(int(amount)) / (10 ** _places(currency))).quantize(Decimal("0.01"))


class PaymentGateway(Protocol):
    """The provider operations payments need."""

    name: str

    def create_payment_link(self, *, session: Session, invoice: Invoice, idempotency_key: str) -> str:
        """A hosted page where the contact pays the invoice's balance."""

    def refund(self, *, session: Session, sub_account_id: uuid.UUID, payment_ref: str, amount: Decimal,
               idempotency_key: str, currency: str = "USD") -> str:
        """Refund part or all of a payment; returns the provider's refund id."""


class SandboxGateway:
    """Records what would be sent; links point back at this API's sandbox pay page."""

    name = "sandbox"

    def __init__(self, public_base_url: str) -> None:
        self.base = public_base_url.rstrip("/")

    def _record(self, session: Session, sub_account_id: uuid.UUID, operation: str, key: str,
                request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        session.execute(pg_insert(SandboxDelivery).values(
            sub_account_id=sub_account_id, provider="stripe", operation=operation, idempotency_key=key,
            request=request, response=response).on_conflict_do_nothing(index_elements=["idempotency_key"]))
        recorded = session.scalar(select(SandboxDelivery.response).where(SandboxDelivery.idempotency_key == key))
        assert recorded is not None
        return recorded

    def create_payment_link(self, *, session: Session, invoice: Invoice, idempotency_key: str) -> str:
        """Record a checkout session and return the sandbox pay URL."""
        due = invoice.total_amount - invoice.amount_paid
        url = f"{self.base}/sandbox/pay/{invoice.id}"
        response = self._record(session, invoice.sub_account_id, "checkout.sessions.create", idempotency_key,
                                {"invoice_number": invoice.invoice_number, "amount": cents(due, invoice.currency),
                                 "currency": invoice.currency.lower(), "metadata": {
                                     "sub_account_id": str(invoice.sub_account_id), "invoice_id": str(invoice.id)}},
                                {"url": url})
        return str(response["url"])

    def refund(self, *, session: Session, sub_account_id: uuid.UUID, payment_ref: str, amount: Decimal,
               idempotency_key: str, currency: str = "USD") -> str:
        """Record a refund and return a stable sandbox refund id."""
        refund_id = "re_sandbox_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
        response = self._record(session, sub_account_id, "refunds.create", idempotency_key,
                                {"payment_intent": payment_ref, "amount": cents(amount, currency)}, {"id": refund_id})
        return str(response["id"])


class StripeGateway:
    """The real thing, through the official SDK; every call carries the caller's idempotency key, so a retried
    task never charges, links or refunds twice."""

    name = "stripe"

    def __init__(self, api_key: str, public_base_url: str, api_base: str | None = None) -> None:
        import stripe

        # retries are the SDK's (with the same idempotency key); a network error surfaces after them
        self.client = stripe.StripeClient(api_key, base_addresses={"api": api_base} if api_base else None,
                                          max_network_retries=2)
        self.base = public_base_url.rstrip("/")

    def _call(self, operation: Any, params: dict[str, Any], idempotency_key: str) -> Any:
        import stripe

        try:
            return operation(params=params, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise ProviderError(f"Stripe refused the request: {exc.user_message or exc}",
                                provider="stripe", code=getattr(exc, "code", None)) from exc

    def create_payment_link(self, *, session: Session, invoice: Invoice, idempotency_key: str) -> str:
        """A Checkout Session for the balance due, tagged with the invoice for the webhook."""
        metadata = {"sub_account_id": str(invoice.sub_account_id), "invoice_id": str(invoice.id)}
        checkout = self._call(self.client.v1.checkout.sessions.create, {
            "mode": "payment",
            "line_items": [{"quantity": 1, "price_data": {
                "currency": invoice.currency.lower(),
                "unit_amount": cents(invoice.total_amount - invoice.amount_paid, invoice.currency),
                "product_data": {"name": f"Invoice {invoice.invoice_number}"}}}],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": f"{self.base}/pay/{invoice.id}/thanks",
            "cancel_url": f"{self.base}/pay/{invoice.id}",
        }, idempotency_key)
        return str(checkout.url)

    def refund(self, *, session: Session, sub_account_id: uuid.UUID, payment_ref: str, amount: Decimal,
               idempotency_key: str, currency: str = "USD") -> str:
        """Refund against the PaymentIntent."""
        refund = self._call(self.client.v1.refunds.create,
                            {"payment_intent": payment_ref, "amount": cents(amount, currency)}, idempotency_key)
        return str(refund.id)


def gateway_for(settings: Settings | None = None) -> PaymentGateway:
    """Stripe when STRIPE_API_KEY is set, else the sandbox."""
    settings = settings or get_settings()
    if settings.stripe_api_key:
        return StripeGateway(settings.stripe_api_key, settings.public_base_url, settings.stripe_api_base)
    return SandboxGateway(settings.public_base_url)
