"""Stripe webhook events, once verified: recorded once per event id, then applied under the tenant's scope.
Effects are idempotent too (payments keyed by PaymentIntent, refunds by charge and running total), so a
redelivered or reprocessed event changes nothing."""

from __future__ import annotations

import uuid
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

HANDLED = ("checkout.session.completed", "charge.refunded", "invoice.payment_failed", "customer.subscription.deleted")


def _money_record(session: Session, *, sub_account_id: uuid.UUID, contact_id: uuid.UUID | None, kind: str,
                  amount: Decimal, reference: str, transaction_id: uuid.UUID, when: datetime) -> None:
    """Mirror a Stripe payment or refund into financial_records, attributed to the contact's campaign."""
    agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == sub_account_id))
    integration_id = session.scalar(select(Integration.id).where(
        Integration.sub_account_id == sub_account_id, Integration.provider_name == "stripe"))
    campaign_id = session.scalar(select(Contact.campaign_id).where(Contact.id == contact_id)) if contact_id else None
    session.execute(pg_insert(FinancialRecord).values(
        agency_id=agency_id, sub_account_id=sub_account_id, campaign_id=campaign_id,
        integration_source_id=integration_id, contact_id=contact_id, transaction_id=transaction_id,
        transaction_date=when, amount=amount, transaction_type=kind, payment_status="paid",
        reference_number=f"stripe:{reference}").on_conflict_do_nothing())


def apply_event(*, session: Session, event: dict[str, Any]) -> str:
    """Apply one verified event inside a tenant-scoped session; returns 'processed' or 'ignored'."""
    kind, obj = event["type"], event["data"]["object"]
    metadata = obj.get("metadata") or {}
    when = datetime.fromtimestamp(event.get("created") or obj.get("created") or 0, UTC)
    if kind == "checkout.session.completed" and metadata.get("invoice_id"):
        reference = obj.get("payment_intent") or obj["id"]
        amount = Decimal(obj["amount_total"]) / 100
        invoice = session.get(Invoice, uuid.UUID(metadata["invoice_id"]))
        if invoice is None:
            return "ignored"
        payment = payments.record_payment(session=session, invoice_id=invoice.id, amount=amount, gateway="stripe",
                                          gateway_transaction_id=reference, now=when)
        _money_record(session, sub_account_id=invoice.sub_account_id, contact_id=invoice.contact_id,
                      kind="payment", amount=payment.amount, reference=reference, transaction_id=payment.id,
                      when=when)
        return "processed"
    if kind == "charge.refunded" and obj.get("payment_intent"):
        paid = session.scalar(select(Transaction).where(
            Transaction.gateway == "stripe", Transaction.gateway_transaction_id == obj["payment_intent"],
            Transaction.transaction_type == "payment"))
        if paid is None:
            return "ignored"
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
                      amount=refund.amount, reference=reference, transaction_id=refund.id, when=when)
        return "processed"
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


def handle_event(event: dict[str, Any]) -> dict[str, Any]:
    """Record a verified event once, route it to its sub-account, apply it; raise to make Stripe retry."""
    obj = event["data"]["object"]
    raw_sub = (obj.get("metadata") or {}).get("sub_account_id")
    sub_account_id = uuid.UUID(raw_sub) if raw_sub else None
    with owner_session() as session:  # routing precedes the tenant: only the owner can look the tenant up
        agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == sub_account_id)) \
            if sub_account_id else None
        session.execute(pg_insert(ProviderEvent).values(
            provider="stripe", event_id=event["id"], event_type=event["type"],
            sub_account_id=sub_account_id if agency_id else None, payload=event).on_conflict_do_nothing())
        record = session.scalars(select(ProviderEvent).where(ProviderEvent.provider == "stripe",
                                                             ProviderEvent.event_id == event["id"])
                                 .with_for_update()).one()
        if record.status in ("processed", "ignored"):
            return {"event": event["id"], "status": record.status, "duplicate": True}
        record.attempts += 1
        if agency_id is None or event["type"] not in HANDLED:
            record.status, record.processed_at = "ignored", datetime.now(UTC)
            return {"event": event["id"], "status": "ignored"}
        try:
            with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=sub_account_id)) as tenant:
                outcome = apply_event(session=tenant, event=event)
        except Exception as exc:
            record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            raise
        record.status, record.processed_at, record.error = outcome, datetime.now(UTC), None
        return {"event": event["id"], "status": outcome}
