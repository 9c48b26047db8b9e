"""Stripe webhook events, once verified: recorded once per event id, then applied under the tenant's scope.
Effects are idempotent too (payments keyed by PaymentIntent, refunds by charge and running total), so a
redelivered or reprocessed event changes nothing.

Two kinds of money arrive:
- payments of OUR invoices (the Checkout Session and its PaymentIntent carry `invoice_id` in their metadata): they
  pay the invoice (a Transaction) and are mirrored into financial_records as `stripe:{payment_intent}`. The
  checkout.session.completed and the payment_intent.succeeded / charge.succeeded of one payment all land on that one
  Transaction and that one record, in whichever order they arrive.
- payments taken outside our invoices (a Stripe payment link, a subscription Stripe bills, a charge made in the
  dashboard): payment_intent.succeeded, charge.succeeded (captured) and a paid checkout.session.completed become a
  `payment` record keyed `stripe:{payment_intent}` (a charge without one: `stripe:{charge}`), so the several events
  of one payment make one record; charge.refunded becomes `refund` records keyed `stripe:{charge}:{refunded so far}`
  for the part not yet recorded. The buyer is matched by email (billing_details / receipt_email / customer_details)
  in the sub-account, created when unknown (as GoHighLevel files a new buyer), and the record is attributed to the
  contact's campaign; a refund keeps the attribution of the payment it reverses.

Routing (which sub-account an event belongs to):
- a Connect event (`account` set) belongs to the sub-account whose active Stripe integration has that account as its
  connection_id (one at most: a unique index lets one live integration claim an account); metadata naming another
  sub-account is not trusted there (a connected account writes its own): ignored;
- a platform event with our `sub_account_id` metadata belongs to that sub-account (our invoices, subscriptions);
- any other platform event belongs to the only active Stripe integration bound to a sub-account when there is
  exactly one (a single-business install).
An event of a kind we apply whose owner is not known yet (an account no active integration holds, a platform
event with no or several candidates) is never stored as ignored: it is kept retryable and refused (RetryLater),
so Stripe's redelivery applies it once the integration exists (Stripe retries for three days). Events of kinds we
do not apply are acknowledged and ignored whoever they belong to.

Events that pass the signature but not the shape Stripe documents (not an object, no id / type / data.object)
are refused as Malformed before anything is stored: retrying them cannot help.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.activity import Integration
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.payments import Invoice, ProviderEvent, Subscription, Transaction
from models.performance import FinancialRecord
from models.tenancy import SubAccount
from services import payments
from services.errors import Malformed, RetryLater
from services.payment_gateway import from_minor
from services.payment_records import buyer_contact, record_money

PAYMENTS = ("checkout.session.completed", "payment_intent.succeeded", "charge.succeeded")
HANDLED = (*PAYMENTS, "charge.refunded", "invoice.payment_failed", "customer.subscription.deleted")
AMOUNTS = ("amount", "amount_total", "amount_received", "amount_captured", "amount_refunded", "created")


def _scrub(value: Any) -> Any:
    """The JSON without NUL characters, which neither Postgres text nor jsonb can hold."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def parse_event(payload: bytes) -> dict[str, Any]:
    """A verified payload as an event in the shape Stripe documents (NUL characters dropped), or Malformed."""
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("The Stripe event is not JSON.") from exc
    if not isinstance(event, dict):
        raise Malformed("A Stripe event is a JSON object.")
    event = _scrub(event)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    problems = [name for name, ok in (
        ("id", isinstance(event.get("id"), str) and 0 < len(event["id"]) <= 255),
        ("type", isinstance(event.get("type"), str) and 0 < len(event["type"]) <= 255),
        ("data.object", isinstance(obj, dict)),
        ("account", event.get("account") is None or isinstance(event["account"], str)),
        ("created", event.get("created") is None or type(event["created"]) is int),
    ) if not ok]
    if isinstance(obj, dict):
        problems += [f"data.object.{name}" for name, ok in (
            ("id", obj.get("id") is None or isinstance(obj["id"], str)),
            ("metadata", obj.get("metadata") is None or isinstance(obj["metadata"], dict)),
            ("payment_intent", obj.get("payment_intent") is None or isinstance(obj["payment_intent"], str | dict)),
            ("currency", obj.get("currency") is None or isinstance(obj["currency"], str)),
            *((field, obj.get(field) is None or type(obj[field]) is int) for field in AMOUNTS),
        ) if not ok]
        if event.get("type") in HANDLED and not isinstance(obj.get("id"), str):
            problems.append("data.object.id")
    if problems:
        raise Malformed(f"The Stripe event is not in Stripe's shape: {', '.join(dict.fromkeys(problems))}.")
    return event
@dataclass(frozen=True)
class Route:
    """The tenant an event belongs to, and the integration it came through (None: routed by our metadata)."""

    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    integration_id: uuid.UUID | None = None


def _stripe_integration(session: Session, sub_account_id: uuid.UUID) -> uuid.UUID | None:
    """The sub-account's Stripe integration (the active one first, then the oldest), the source money is filed under."""
    return session.scalar(select(Integration.id).where(
        Integration.sub_account_id == sub_account_id, Integration.provider_name == "stripe")
        .order_by(Integration.deleted_at.is_(None).desc(), Integration.is_active.desc(), Integration.created_at,
                  Integration.id).limit(1))


def _money_record(session: Session, *, sub_account_id: uuid.UUID, contact_id: uuid.UUID | None, kind: str,
                  amount: Decimal, reference: str, transaction_id: uuid.UUID, when: datetime,
                  currency: str | None = None) -> None:
    """Mirror a payment or refund of our invoice into financial_records, attributed to the contact's campaign."""
    campaign_id = session.scalar(select(Contact.campaign_id).where(Contact.id == contact_id)) if contact_id else None
    record_money(session, sub_account_id=sub_account_id, integration_id=_stripe_integration(session, sub_account_id),
                 kind=kind, amount=amount, reference=f"stripe:{reference}", when=when, contact_id=contact_id,
                 campaign_id=campaign_id, currency=currency, transaction_id=transaction_id)


def _pay_invoice(session: Session, *, invoice_id: str, reference: str, minor_amount: int, when: datetime) -> str:
    """A payment of our invoice: the Transaction (once per PaymentIntent) and its financial record."""
    invoice = session.get(Invoice, uuid.UUID(invoice_id))
    if invoice is None:
        return "ignored"
    amount = from_minor(minor_amount, invoice.currency)  # as payment_gateway.cents charged it
    payment = payments.record_payment(session=session, invoice_id=invoice.id, amount=amount, gateway="stripe",
                                      gateway_transaction_id=reference, now=when)
    _money_record(session, sub_account_id=invoice.sub_account_id, contact_id=invoice.contact_id, kind="payment",
                  amount=payment.amount, reference=reference, transaction_id=payment.id, when=when,
                  currency=payment.currency)
    return "processed"


def _buyer(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """The buyer's email and name, from wherever this object keeps them."""
    details = obj.get("billing_details") or obj.get("customer_details") or {}
    # a PaymentIntent names its buyer on its charge, present when the endpoint expands latest_charge
    charge = obj["latest_charge"] if isinstance(obj.get("latest_charge"), dict) else {}
    charge_details = charge.get("billing_details") or {}
    email = (details.get("email") or obj.get("receipt_email") or obj.get("customer_email")
             or charge_details.get("email") or charge.get("receipt_email"))
    return email, details.get("name") or charge_details.get("name")


def _outside_payment(session: Session, route: Route, kind: str, obj: dict[str, Any], when: datetime) -> str:
    """A payment not tied to our invoices: one `payment` record per PaymentIntent, whichever of its events comes."""
    if kind == "checkout.session.completed":
        if obj.get("payment_status") != "paid" or not obj.get("payment_intent"):
            return "ignored"  # unpaid yet (async methods), or a subscription's: its invoice's PaymentIntent counts
        reference, minor = obj["payment_intent"], obj.get("amount_total") or 0
    elif kind == "payment_intent.succeeded":
        reference, minor = obj["id"], obj.get("amount_received") or obj.get("amount") or 0
    else:
        if obj.get("captured") is False:
            return "ignored"  # an authorization only: the capture comes as payment_intent.succeeded
        reference, minor = obj.get("payment_intent") or obj["id"], obj.get("amount_captured") or obj.get("amount") or 0
    if not minor:
        return "ignored"
    email, name = _buyer(obj)
    contact = buyer_contact(session, sub_account_id=route.sub_account_id, email=email, name=name, source="stripe")
    record_money(session, sub_account_id=route.sub_account_id,
                 integration_id=route.integration_id or _stripe_integration(session, route.sub_account_id),
                 kind="payment", amount=from_minor(minor, obj.get("currency")), reference=f"stripe:{reference}",
                 when=when, contact_id=contact.id if contact else None,
                 campaign_id=contact.campaign_id if contact else None, currency=obj.get("currency"),
                 metadata={"provider": "stripe", "event_object": obj.get("id")})
    return "processed"


def _outside_refund(session: Session, route: Route, obj: dict[str, Any], when: datetime) -> str:
    """Refunds of a payment not tied to our invoices: the part of the charge's refunded total not yet recorded."""
    charge_id, currency = obj["id"], obj.get("currency")
    prefix = f"stripe:{charge_id}:"
    # two partial refunds' events may be applied at once: one at a time per charge, or both would count the first
    session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(prefix, 0))))
    refunded_total = from_minor(obj.get("amount_refunded") or 0, currency)
    already = session.scalar(select(func.coalesce(func.sum(FinancialRecord.amount), 0)).where(
        FinancialRecord.sub_account_id == route.sub_account_id, FinancialRecord.transaction_type == "refund",
        FinancialRecord.reference_number.startswith(prefix, autoescape=True))) or Decimal(0)
    if refunded_total <= already:
        return "processed"
    paid = session.scalars(select(FinancialRecord).where(
        FinancialRecord.sub_account_id == route.sub_account_id, FinancialRecord.transaction_type == "payment",
        FinancialRecord.reference_number == f"stripe:{obj.get('payment_intent') or charge_id}")).first()
    if paid is not None:
        contact_id, campaign_id = paid.contact_id, paid.campaign_id
    else:  # the payment predates the integration: attribute by the buyer, never invent one for a refund
        contact = buyer_contact(session, sub_account_id=route.sub_account_id, email=_buyer(obj)[0],
                                source="stripe", create=False)
        contact_id, campaign_id = (contact.id, contact.campaign_id) if contact else (None, None)
    record_money(session, sub_account_id=route.sub_account_id,
                 integration_id=route.integration_id or _stripe_integration(session, route.sub_account_id),
                 kind="refund", amount=refunded_total - already, reference=f"{prefix}{obj.get('amount_refunded')}",
                 when=when, contact_id=contact_id, campaign_id=campaign_id, currency=currency,
                 metadata={"provider": "stripe", "charge": charge_id, "payment_intent": obj.get("payment_intent")})
    return "processed"


def apply_event(*, session: Session, event: dict[str, Any], route: Route | None = None) -> str:
    """Apply one verified event inside a tenant-scoped session; returns 'processed' or 'ignored'."""
    kind, obj = event["type"], event["data"]["object"]
    metadata = obj.get("metadata") or {}
    when = datetime.fromtimestamp(event.get("created") or obj.get("created") or 0, UTC)
    if kind in PAYMENTS and metadata.get("invoice_id") and obj.get("captured") is not False:
        # the Checkout Session, its PaymentIntent and its charge: one payment, keyed by the PaymentIntent
        reference = obj["id"] if kind == "payment_intent.succeeded" else obj.get("payment_intent") or obj["id"]
        field = {"checkout.session.completed": "amount_total", "payment_intent.succeeded": "amount_received",
                 "charge.succeeded": "amount_captured"}[kind]
        minor = obj.get(field) or obj.get("amount") or 0
        return _pay_invoice(session, invoice_id=metadata["invoice_id"], reference=reference, minor_amount=minor,
                            when=when)
    if kind == "charge.refunded" and obj.get("payment_intent"):
        paid = session.scalar(select(Transaction).where(
            Transaction.gateway == "stripe", Transaction.gateway_transaction_id == obj["payment_intent"],
            Transaction.transaction_type == "payment"))
        if paid is not None:
            return _refund_invoice_payment(session, paid, obj, when)
    if route is not None and kind in PAYMENTS:
        return _outside_payment(session, route, kind, obj, when)
    if route is not None and kind == "charge.refunded":
        return _outside_refund(session, route, obj, when)
    if kind in ("invoice.payment_failed", "customer.subscription.deleted") and metadata.get("subscription_id"):
        subscription = session.get(Subscription, uuid.UUID(metadata["subscription_id"]))
        if subscription is None:
            return "ignored"
        if kind == "invoice.payment_failed" and subscription.status in payments.LIVE:
            subscription.status = "past_due"
        elif kind == "customer.subscription.deleted":
            subscription.status, subscription.ended_at = "cancelled", subscription.ended_at or when
        session.flush()
        return "processed"
    return "ignored"


def _refund_invoice_payment(session: Session, paid: Transaction, obj: dict[str, Any], when: datetime) -> str:
    """A refund of our invoice's payment: refund Transactions follow the charge's running refunded total."""
    refunded_total = Decimal(obj["amount_refunded"]) / 100
    already = session.scalar(select(func.coalesce(func.sum(Transaction.amount), 0)).where(
        Transaction.transaction_type == "refund",
        Transaction.metadata_["refund_of"].astext == str(paid.id))) or Decimal(0)
    if refunded_total <= already:
        return "processed"
    reference = f"{obj['id']}:{obj['amount_refunded']}"
    refund = payments.refund(session=session, transaction_id=paid.id, amount=refunded_total - already,
                             gateway_transaction_id=reference, now=when)
    _money_record(session, sub_account_id=paid.sub_account_id, contact_id=paid.contact_id, kind="refund",
                  amount=refund.amount, reference=reference, transaction_id=refund.id, when=when,
                  currency=refund.currency)
    return "processed"


def _active_stripe() -> Any:
    return (Integration.provider_name == "stripe") & Integration.is_active & Integration.deleted_at.is_(None) \
        & Integration.sub_account_id.is_not(None)


def route_event(session: Session, event: dict[str, Any]) -> Route | None:
    """The sub-account an event belongs to (see the module docstring), looked up as the owner: no tenant yet.
    None: it is no sub-account's, for good; RetryLater: its owner cannot be told yet."""
    raw_sub = str((event["data"]["object"].get("metadata") or {}).get("sub_account_id") or "")
    account = event.get("account")
    if account:
        rows = session.execute(select(Integration.id, Integration.agency_id, Integration.sub_account_id)
                               .where(_active_stripe(), Integration.connection_id == account).limit(2)).all()
        if len(rows) != 1:
            raise RetryLater("No active Stripe integration holds this connected account yet.")
        if raw_sub and raw_sub != str(rows[0].sub_account_id):
            return None
        return Route(rows[0].agency_id, rows[0].sub_account_id, rows[0].id)
    if raw_sub:
        try:
            sub_account_id = uuid.UUID(raw_sub)
        except ValueError:
            return None
        agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == sub_account_id))
        return Route(agency_id, sub_account_id) if agency_id else None
    rows = session.execute(select(Integration.id, Integration.agency_id, Integration.sub_account_id)
                           .where(_active_stripe()).limit(2)).all()
    if len(rows) != 1:
        raise RetryLater("This platform event names no sub-account, and no single Stripe integration is active.")
    return Route(rows[0].agency_id, rows[0].sub_account_id, rows[0].id)


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    """Record a verified event once, route it to its sub-account, apply it; raise to make Stripe retry (the
    record then says why, and stays retryable)."""
    failure: Exception | None = None
    with owner_session() as session:  # routing precedes the tenant: only the owner can look the tenant up
        route = None
        if event["type"] in HANDLED:
            try:
                route = route_event(session, event)
            except RetryLater as exc:
                failure = exc
        session.execute(pg_insert(ProviderEvent).values(
            provider="stripe", event_id=event["id"], event_type=event["type"],
            sub_account_id=route.sub_account_id if route else None, payload=event).on_conflict_do_nothing())
        record = session.scalars(select(ProviderEvent).where(ProviderEvent.provider == "stripe",
                                                             ProviderEvent.event_id == event["id"])
                                 .with_for_update()).one()
        if record.status in ("processed", "ignored"):
            return {"event": event["id"], "status": record.status, "duplicate": True}
        record.attempts += 1
        if failure is None and (route is None or event["type"] not in HANDLED):
            record.status, record.processed_at = "ignored", datetime.now(UTC)
            return {"event": event["id"], "status": "ignored"}
        if failure is None and route is not None:
            record.sub_account_id = route.sub_account_id
            try:
                scope = TenantScope(agency_id=route.agency_id, sub_account_id=route.sub_account_id)
                with tenant_session(scope) as tenant:
                    outcome = apply_event(session=tenant, event=event, route=route)
            except Exception as exc:
                failure = exc
            else:
                record.status, record.processed_at, record.error = outcome, datetime.now(UTC), None
                return {"event": event["id"], "status": outcome}
        # committed as failed (an operator sees why), then raised, so that Stripe redelivers it
        assert failure is not None
        detail = (f"unrouted: {failure.detail}" if isinstance(failure, RetryLater)
                  else f"{type(failure).__name__}: {failure}")
        record.status, record.error = "failed", detail[:2000]
    raise failure
