"""Payments: products and prices, invoices with per-sub-account numbering and exact totals, payments and
refunds, and subscriptions through trial, renewal, dunning and cancellation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.crm import Contact
from models.payments import Invoice, InvoiceLineItem, Price, Product, Subscription, Transaction
from models.tenancy import DocumentSequence
from services.errors import Conflict, InvalidInput, NotFound
from services.payment_gateway import PaymentGateway

CENT = Decimal("0.01")
LIVE = ("trialing", "active", "past_due")


def money(value: Decimal | int | str) -> Decimal:
    """Round half-up to cents, as invoices are printed."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def next_number(*, session: Session, sub_account_id: uuid.UUID, name: str, year: int) -> int:
    """The next value of a per-sub-account, per-year counter. The row stays locked until commit, so numbers
    are unique and, among committed documents, gap-free."""
    stmt = pg_insert(DocumentSequence).values(sub_account_id=sub_account_id, name=name, year=year, last_value=1)
    stmt = stmt.on_conflict_do_update(index_elements=["sub_account_id", "name", "year"],
                                      set_={"last_value": DocumentSequence.last_value + 1})
    return int(session.execute(stmt.returning(DocumentSequence.last_value)).scalar_one())


def create_product(*, session: Session, sub_account_id: uuid.UUID, name: str, product_type: str,
                   description: str | None = None) -> Product:
    """Something the business sells, one-time or recurring."""
    if product_type not in ("one_time", "recurring"):
        raise InvalidInput("product_type is one_time or recurring.", field="product_type")
    product = Product(sub_account_id=sub_account_id, name=name, product_type=product_type, description=description)
    session.add(product)
    session.flush()
    return product


def add_price(*, session: Session, product_id: uuid.UUID, amount: Decimal, currency: str = "USD",
              billing_period: str | None = None, billing_interval: int | None = None, trial_period_days: int = 0,
              nickname: str | None = None) -> Price:
    """A price of a product; recurring products need a billing period and interval, one-time ones none."""
    product = session.get(Product, product_id)
    if product is None or product.deleted_at is not None:
        raise NotFound("No such product.")
    recurring = product.product_type == "recurring"
    if recurring != (billing_period is not None):
        raise InvalidInput("Recurring products need a billing period; one-time products have none.",
                           field="billing_period")
    if amount < 0:
        raise InvalidInput("A price cannot be negative.", field="amount")
    price = Price(sub_account_id=product.sub_account_id, product_id=product.id, amount=money(amount),
                  currency=currency.upper(), billing_period=billing_period,
                  billing_interval=(billing_interval or 1) if recurring else None,
                  trial_period_days=trial_period_days if recurring else 0, nickname=nickname)
    session.add(price)
    session.flush()
    return price


@dataclass(frozen=True)
class Line:
    """One invoice line as the caller describes it."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    product_id: uuid.UUID | None = None
    price_id: uuid.UUID | None = None


def line_for_price(*, session: Session, price_id: uuid.UUID, quantity: Decimal = Decimal(1)) -> Line:
    """An invoice line for a catalogue price."""
    price = session.get(Price, price_id)
    if price is None or price.deleted_at is not None or not price.is_active:
        raise NotFound("No such price.")
    product = session.get(Product, price.product_id)
    assert product is not None
    label = product.name + (f" - {price.nickname}" if price.nickname else "")
    return Line(label, quantity, price.amount, product.id, price.id)


def create_invoice(*, session: Session, contact_id: uuid.UUID, lines: Sequence[Line],
                   tax_rate: Decimal | None = None, discount: Decimal = Decimal(0), currency: str = "USD",
                   issue_date: date | None = None, due_in_days: int = 14, subscription_id: uuid.UUID | None = None,
                   status: str = "open", notes: str | None = None) -> Invoice:
    """An invoice numbered INV-<year>-<nnnn> per sub-account. Tax applies to the subtotal, the discount comes
    off the end: total = subtotal + tax - discount, each rounded half-up to cents."""
    contact = session.get(Contact, contact_id)
    if contact is None or contact.deleted_at is not None:
        raise NotFound("No such contact.")
    if not lines:
        raise InvalidInput("An invoice needs at least one line.", field="lines")
    if any(line.quantity <= 0 or line.unit_price < 0 for line in lines):
        raise InvalidInput("Quantities must be positive and prices not negative.", field="lines")
    if tax_rate is not None and not Decimal(0) <= tax_rate < Decimal(1):
        raise InvalidInput("tax_rate is a fraction between 0 and 1 (0.08875 for 8.875%).", field="tax_rate")
    # unit prices are kept in cents, so each amount is computed from the rounded unit price the line shows
    amounts = [money(line.quantity * money(line.unit_price)) for line in lines]
    subtotal = sum(amounts, Decimal(0))
    tax = money(subtotal * tax_rate) if tax_rate else Decimal("0.00")
    discount = money(discount)
    if discount < 0 or discount > subtotal + tax:
        raise InvalidInput("The discount must be between zero and the invoice amount.", field="discount")
    issued = issue_date or datetime.now(UTC).date()
    number = next_number(session=session, sub_account_id=contact.sub_account_id, name="invoice", year=issued.year)
    invoice = Invoice(sub_account_id=contact.sub_account_id, contact_id=contact.id, subscription_id=subscription_id,
                      invoice_number=f"INV-{issued.year}-{number:04d}", status=status, currency=currency.upper(),
                      subtotal=subtotal, tax_rate=tax_rate, tax_amount=tax, discount_amount=discount,
                      total_amount=subtotal + tax - discount, issue_date=issued,
                      due_date=issued + timedelta(days=due_in_days), notes=notes)
    session.add(invoice)
    session.flush()
    session.add_all(InvoiceLineItem(sub_account_id=invoice.sub_account_id, invoice_id=invoice.id,
                                    product_id=line.product_id, price_id=line.price_id, description=line.description,
                                    quantity=line.quantity, unit_price=money(line.unit_price), amount=amount,
                                    position=i)
                    for i, (line, amount) in enumerate(zip(lines, amounts, strict=True)))
    session.flush()
    return invoice


def record_payment(*, session: Session, invoice_id: uuid.UUID, amount: Decimal, gateway: str,
                   gateway_transaction_id: str | None = None, now: datetime | None = None) -> Transaction:
    """Apply a payment to an invoice (partial payments add up). A gateway retry with the same transaction id
    returns the first transaction and changes nothing."""
    if gateway_transaction_id:
        seen = session.scalar(select(Transaction).where(Transaction.gateway == gateway,
                                                        Transaction.gateway_transaction_id == gateway_transaction_id))
        if seen is not None:
            return seen
    invoice = session.get(Invoice, invoice_id, with_for_update=True)
    if invoice is None or invoice.deleted_at is not None:
        raise NotFound("No such invoice.")
    if invoice.status not in ("open", "draft"):
        raise Conflict(f"An invoice that is {invoice.status} takes no payment.")
    amount = money(amount)
    if amount <= 0 or invoice.amount_paid + amount > invoice.total_amount:
        raise InvalidInput(f"A payment must be positive and at most the {invoice.total_amount - invoice.amount_paid}"
                           " still due.", field="amount")
    now = now or datetime.now(UTC)
    payment = Transaction(sub_account_id=invoice.sub_account_id, contact_id=invoice.contact_id, invoice_id=invoice.id,
                          subscription_id=invoice.subscription_id, transaction_type="payment", amount=amount,
                          currency=invoice.currency, status="succeeded", gateway=gateway,
                          gateway_transaction_id=gateway_transaction_id, processed_at=now)
    session.add(payment)
    invoice.amount_paid += amount
    if invoice.amount_paid == invoice.total_amount:
        invoice.status, invoice.paid_at = "paid", now
        from services import webhooks, workflows

        event = {"invoice_id": str(invoice.id), "total": str(invoice.total_amount), "currency": invoice.currency}
        workflows.fire(session, invoice.sub_account_id, "invoice_paid", invoice.contact_id, event)
        webhooks.emit(session, invoice.sub_account_id, "invoice.paid", {**event, "contact_id": str(invoice.contact_id)})
    session.flush()
    return payment


def _refundable(session: Session, transaction_id: uuid.UUID, amount: Decimal | None
                ) -> tuple[Transaction, Decimal, Decimal]:
    """The payment (locked), what is already refunded of it, and the amount to refund now (checked)."""
    payment = session.get(Transaction, transaction_id, with_for_update=True)
    if payment is None or payment.transaction_type != "payment" or payment.status != "succeeded":
        raise NotFound("No such successful payment.")
    refunded = session.scalar(select(func.coalesce(func.sum(Transaction.amount), 0)).where(
        Transaction.transaction_type == "refund", Transaction.status == "succeeded",
        Transaction.metadata_["refund_of"].astext == str(payment.id))) or Decimal(0)
    amount = money(amount if amount is not None else payment.amount - refunded)
    if amount <= 0 or refunded + amount > payment.amount:
        raise InvalidInput(f"At most {payment.amount - refunded} of this payment can still be refunded.",
                           field="amount")
    return payment, refunded, amount


def refund(*, session: Session, transaction_id: uuid.UUID, amount: Decimal | None = None,
           gateway_transaction_id: str | None = None, now: datetime | None = None) -> Transaction:
    """Refund all or part of a payment; refunds of one payment never exceed it."""
    payment, refunded, amount = _refundable(session, transaction_id, amount)
    result = Transaction(sub_account_id=payment.sub_account_id, contact_id=payment.contact_id,
                         invoice_id=payment.invoice_id, subscription_id=payment.subscription_id,
                         transaction_type="refund", amount=amount, currency=payment.currency, status="succeeded",
                         gateway=payment.gateway, gateway_transaction_id=gateway_transaction_id,
                         processed_at=now or datetime.now(UTC), metadata_={"refund_of": str(payment.id)})
    session.add(result)
    if refunded + amount == payment.amount:
        payment.status = "refunded"
    session.flush()
    return result


def refund_through_gateway(*, session: Session, transaction_id: uuid.UUID, gateway: PaymentGateway,
                           amount: Decimal | None = None, now: datetime | None = None) -> Transaction:
    """Refund a payment at its provider, then record it. The provider call carries a key derived from the
    payment and how much of it is already refunded, so a retried request refunds once; the later
    charge.refunded webhook finds the refund already recorded and adds nothing."""
    payment, refunded, amount = _refundable(session, transaction_id, amount)
    if not payment.gateway_transaction_id:
        raise Conflict("This payment was not taken through a gateway; record the refund instead.")
    refund_id = gateway.refund(session=session, sub_account_id=payment.sub_account_id,
                               payment_ref=payment.gateway_transaction_id, amount=amount,
                               idempotency_key=f"refund:{payment.id}:{refunded}:{amount}", currency=payment.currency)
    return refund(session=session, transaction_id=transaction_id, amount=amount, gateway_transaction_id=refund_id,
                  now=now)


def _period_after(price: Price, anchor: datetime, periods: int) -> datetime:
    step = {"day": relativedelta(days=1), "week": relativedelta(weeks=1), "month": relativedelta(months=1),
            "year": relativedelta(years=1)}[price.billing_period or "month"]
    # counted from the anchor each time, so Jan 31 renews Feb 28 then Mar 31 (no drift to the 28th)
    return anchor + step * ((price.billing_interval or 1) * periods)


def subscribe(*, session: Session, contact_id: uuid.UUID, price_id: uuid.UUID, quantity: int = 1,
              now: datetime | None = None) -> tuple[Subscription, Invoice | None]:
    """Start a subscription: a trial when the price has one (no invoice yet), otherwise active with the first
    period's invoice."""
    now = now or datetime.now(UTC)
    price = session.get(Price, price_id)
    if price is None or price.deleted_at is not None or price.billing_period is None:
        raise NotFound("No such recurring price.")
    contact = session.get(Contact, contact_id)
    if contact is None or contact.deleted_at is not None:
        raise NotFound("No such contact.")
    trial_end = now + timedelta(days=price.trial_period_days) if price.trial_period_days else None
    subscription = Subscription(
        sub_account_id=price.sub_account_id, contact_id=contact.id, product_id=price.product_id, price_id=price.id,
        quantity=quantity, status="trialing" if trial_end else "active", created_at=now,  # the billing anchor
        trial_start=now if trial_end else None, trial_end=trial_end,
        current_period_start=now, current_period_end=trial_end or _period_after(price, now, 1))
    session.add(subscription)
    session.flush()
    invoice = None if trial_end else _period_invoice(session, subscription, price)
    return subscription, invoice


def _period_invoice(session: Session, subscription: Subscription, price: Price) -> Invoice:
    line = line_for_price(session=session, price_id=price.id, quantity=Decimal(subscription.quantity))
    assert subscription.current_period_start is not None
    return create_invoice(session=session, contact_id=subscription.contact_id, lines=[line],
                          currency=price.currency, issue_date=subscription.current_period_start.date(),
                          subscription_id=subscription.id, due_in_days=0)


def cancel_subscription(*, session: Session, subscription_id: uuid.UUID, now: datetime | None = None
                        ) -> Subscription:
    """Cancel at the end of the paid period: access continues until then, no further renewal."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None or subscription.status not in LIVE:
        raise NotFound("No such live subscription.")
    subscription.cancel_at_period_end, subscription.cancelled_at = True, now or datetime.now(UTC)
    session.flush()
    return subscription


def has_access(subscription: Subscription, now: datetime) -> bool:
    """Whether the subscriber may use what they subscribed to at `now`."""
    if subscription.status in LIVE:
        return True
    return subscription.ended_at is not None and now < subscription.ended_at


def mark_payment_failed(*, session: Session, subscription_id: uuid.UUID) -> Subscription:
    """The period's charge failed: the subscription is past due until a payment succeeds."""
    subscription = session.get(Subscription, subscription_id)
    if subscription is None or subscription.status not in LIVE:
        raise NotFound("No such live subscription.")
    subscription.status = "past_due"
    session.flush()
    return subscription


def renew_due_subscriptions(*, session: Session, now: datetime | None = None) -> list[Invoice]:
    """Roll every subscription whose period has ended: end the cancelled ones, start the next period (and
    invoice it) for the rest. Safe to run repeatedly: a rolled subscription is no longer due."""
    now = now or datetime.now(UTC)
    due = session.scalars(select(Subscription).where(Subscription.status.in_(LIVE),
                                                     Subscription.current_period_end <= now)
                          .order_by(Subscription.current_period_end).with_for_update(skip_locked=True)).all()
    invoices = []
    for subscription in due:
        price = session.get(Price, subscription.price_id)
        assert price is not None and subscription.current_period_end is not None
        if subscription.cancel_at_period_end:
            subscription.status, subscription.ended_at = "cancelled", subscription.current_period_end
            continue
        anchor = subscription.trial_end or subscription.created_at
        while subscription.current_period_end <= now:
            periods = 1
            while _period_after(price, anchor, periods) <= subscription.current_period_end:
                periods += 1
            subscription.current_period_start = subscription.current_period_end
            subscription.current_period_end = _period_after(price, anchor, periods)
            if subscription.status == "trialing":
                subscription.status = "active"
            invoices.append(_period_invoice(session, subscription, price))
    session.flush()
    return invoices


def send_payment_link(*, session: Session, invoice_id: uuid.UUID, gateway: PaymentGateway) -> Invoice:
    """Attach a hosted payment link for the balance due (the same link on every retry)."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.deleted_at is not None:
        raise NotFound("No such invoice.")
    if invoice.status != "open":
        raise Conflict(f"An invoice that is {invoice.status} cannot be paid.")
    if not invoice.payment_link_url:
        invoice.payment_link_url = gateway.create_payment_link(
            session=session, invoice=invoice, idempotency_key=f"link:{invoice.id}:{invoice.amount_paid}")
        session.flush()
    return invoice
