"""Payments against the real database: numbering, exact money, idempotent gateways, subscription lifecycle."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, select

from models.crm import Contact
from models.db import TenantScope, tenant_session
from models.payments import Invoice, InvoiceLineItem
from services import payments
from services.errors import Conflict, InvalidInput
from tests.conftest import Demo, app_url_for

pytestmark = pytest.mark.integration
JAN31 = datetime(2027, 1, 31, 15, 0, tzinfo=UTC)



@pytest.fixture
def contact(a) -> Contact:  # type: ignore[no-untyped-def]
    return a.scalars(select(Contact).order_by(Contact.id).limit(1)).one()


@pytest.fixture
def catalogue(a, demo: Demo):  # type: ignore[no-untyped-def]
    saas = payments.create_product(session=a, sub_account_id=demo.a, name="SaaS Platform", product_type="recurring")
    addon = payments.create_product(session=a, sub_account_id=demo.a, name="Extra Users", product_type="one_time")
    monthly = payments.add_price(session=a, product_id=saas.id, amount=Decimal("29.00"), billing_period="month",
                                 nickname="Monthly")
    yearly = payments.add_price(session=a, product_id=saas.id, amount=Decimal("290.00"), billing_period="year",
                                trial_period_days=14, nickname="Yearly")
    seat = payments.add_price(session=a, product_id=addon.id, amount=Decimal("5.00"))
    return monthly, yearly, seat


def test_the_seed_invoice_example_adds_up_exactly(a, contact) -> None:  # type: ignore[no-untyped-def]
    invoice = payments.create_invoice(session=a, contact_id=contact.id, issue_date=date(2027, 3, 1),
                                      tax_rate=Decimal("0.08"), discount=Decimal("10.00"),
                                      lines=[payments.Line("Catering", Decimal(1), Decimal("100.00"))])
    assert (invoice.subtotal, invoice.tax_amount, invoice.discount_amount, invoice.total_amount) == (
        Decimal("100.00"), Decimal("8.00"), Decimal("10.00"), Decimal("98.00"))


def test_lines_round_half_up_and_numbers_run_per_year(a, contact, catalogue) -> None:  # type: ignore[no-untyped-def]
    monthly, _, seat = catalogue
    lines = [payments.line_for_price(session=a, price_id=monthly.id),
             payments.line_for_price(session=a, price_id=seat.id, quantity=Decimal(10)),
             payments.Line("Tip", Decimal("3"), Decimal("0.335"))]
    first = payments.create_invoice(session=a, contact_id=contact.id, lines=lines, tax_rate=Decimal("0.08875"),
                                    issue_date=date(2031, 5, 1))
    second = payments.create_invoice(session=a, contact_id=contact.id, lines=lines[:1], issue_date=date(2031, 6, 1))
    next_year = payments.create_invoice(session=a, contact_id=contact.id, lines=lines[:1], issue_date=date(2032, 1, 2))
    assert [first.invoice_number, second.invoice_number, next_year.invoice_number] == [
        "INV-2031-0001", "INV-2031-0002", "INV-2032-0001"]
    amounts = a.scalars(select(InvoiceLineItem.amount).where(InvoiceLineItem.invoice_id == first.id)
                        .order_by(InvoiceLineItem.position)).all()
    # 0.335 is shown as 0.34, so 3 x 0.34 = 1.02; subtotal 80.02; tax 8.875% = 7.101775 -> 7.10
    assert amounts == [Decimal("29.00"), Decimal("50.00"), Decimal("1.02")]
    assert (first.subtotal, first.tax_amount, first.total_amount) == (Decimal("80.02"), Decimal("7.10"),
                                                                      Decimal("87.12"))


def test_concurrent_invoices_get_distinct_consecutive_numbers(fresh_db_url: str, demo: Demo) -> None:
    engine = create_engine(app_url_for(fresh_db_url), pool_size=10)
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope, bind=engine) as session:
        contact_id = session.scalars(select(Contact.id).limit(1)).one()
    barrier, numbers = threading.Barrier(10), []

    def issue() -> None:
        barrier.wait()
        with tenant_session(scope, bind=engine) as session:
            invoice = payments.create_invoice(session=session, contact_id=contact_id, issue_date=date(2040, 1, 1),
                                              lines=[payments.Line("x", Decimal(1), Decimal(1))])
            numbers.append(invoice.invoice_number)

    threads = [threading.Thread(target=issue) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert sorted(numbers) == [f"INV-2040-{n:04d}" for n in range(1, 11)]


def test_partial_payments_a_gateway_retry_and_refund_limits(a, contact) -> None:  # type: ignore[no-untyped-def]
    invoice = payments.create_invoice(session=a, contact_id=contact.id, lines=[
        payments.Line("Deposit", Decimal(1), Decimal("250.00"))])
    payments.record_payment(session=a, invoice_id=invoice.id, amount=Decimal("100"), gateway="stripe",
                            gateway_transaction_id="ch_1")
    retry = payments.record_payment(session=a, invoice_id=invoice.id, amount=Decimal("100"), gateway="stripe",
                                    gateway_transaction_id="ch_1")
    assert (invoice.amount_paid, invoice.status) == (Decimal("100.00"), "open")
    with pytest.raises(InvalidInput):
        payments.record_payment(session=a, invoice_id=invoice.id, amount=Decimal("150.01"), gateway="stripe")
    payments.record_payment(session=a, invoice_id=invoice.id, amount=Decimal("150"), gateway="stripe",
                            gateway_transaction_id="ch_2")
    assert invoice.status == "paid" and invoice.paid_at is not None
    with pytest.raises(Conflict):
        payments.record_payment(session=a, invoice_id=invoice.id, amount=Decimal("1"), gateway="stripe")
    payments.refund(session=a, transaction_id=retry.id, amount=Decimal("60"))
    with pytest.raises(InvalidInput):
        payments.refund(session=a, transaction_id=retry.id, amount=Decimal("40.01"))
    payments.refund(session=a, transaction_id=retry.id)
    assert retry.status == "refunded"


def test_trial_then_renewals_on_the_anchor_day(a, contact, catalogue) -> None:  # type: ignore[no-untyped-def]
    monthly, yearly, _ = catalogue
    trial, none = payments.subscribe(session=a, contact_id=contact.id, price_id=yearly.id, now=JAN31)
    assert (trial.status, none, trial.current_period_end) == ("trialing", None, JAN31 + timedelta(days=14))
    sub, first = payments.subscribe(session=a, contact_id=contact.id, price_id=monthly.id, now=JAN31)
    assert (sub.status, first.total_amount, sub.current_period_end) == ("active", Decimal("29.00"),
                                                                         datetime(2027, 2, 28, 15, tzinfo=UTC))
    issued = payments.renew_due_subscriptions(session=a, now=datetime(2027, 3, 1, tzinfo=UTC))
    ours = [i for i in issued if i.subscription_id in (trial.id, sub.id)]  # the demo's due ones renew too
    assert sorted(i.total_amount for i in ours) == [Decimal("29.00"), Decimal("290.00")]
    assert trial.status == "active" and trial.current_period_end == JAN31 + timedelta(days=14) + timedelta(days=365)
    assert sub.current_period_end == datetime(2027, 3, 31, 15, tzinfo=UTC)  # back on the 31st, no drift
    assert payments.renew_due_subscriptions(session=a, now=datetime(2027, 3, 1, tzinfo=UTC)) == []  # idempotent


def test_cancel_keeps_access_to_period_end_then_ends(a, contact, catalogue) -> None:  # type: ignore[no-untyped-def]
    monthly, *_ = catalogue
    sub, _ = payments.subscribe(session=a, contact_id=contact.id, price_id=monthly.id, now=JAN31)
    payments.cancel_subscription(session=a, subscription_id=sub.id, now=JAN31 + timedelta(days=3))
    assert payments.has_access(sub, datetime(2027, 2, 20, tzinfo=UTC))
    issued = payments.renew_due_subscriptions(session=a, now=datetime(2027, 3, 1, tzinfo=UTC))
    assert sub.id not in {i.subscription_id for i in issued}
    assert (sub.status, sub.ended_at) == ("cancelled", datetime(2027, 2, 28, 15, tzinfo=UTC))
    assert not payments.has_access(sub, datetime(2027, 3, 1, tzinfo=UTC))
    assert a.scalar(select(Invoice).where(Invoice.subscription_id == sub.id,
                                          Invoice.issue_date > date(2027, 2, 1))) is None


def test_a_failed_charge_makes_the_subscription_past_due(a, contact, catalogue) -> None:  # type: ignore[no-untyped-def]
    monthly, *_ = catalogue
    sub, _ = payments.subscribe(session=a, contact_id=contact.id, price_id=monthly.id, now=JAN31)
    payments.mark_payment_failed(session=a, subscription_id=sub.id)
    assert sub.status == "past_due" and payments.has_access(sub, JAN31)


def test_prices_must_fit_their_product(a, catalogue) -> None:  # type: ignore[no-untyped-def]
    monthly, _, seat = catalogue
    with pytest.raises(InvalidInput):
        payments.add_price(session=a, product_id=seat.product_id, amount=Decimal(5), billing_period="month")
    with pytest.raises(InvalidInput):
        payments.add_price(session=a, product_id=monthly.product_id, amount=Decimal(5))
