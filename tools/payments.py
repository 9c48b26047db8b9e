"""Payment tools: the catalogue, and invoices, payment links and subscriptions of the conversation's lead."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.payments import Invoice, Price, Product, Subscription
from services import payments
from services.errors import NotFound
from services.payment_gateway import gateway_for
from tools.base import contact_of, guarded
from tools.context import AgentContext, session_for


class NoArgs(BaseModel):
    pass


def _own_invoice(session: Session, ctx: AgentContext, invoice_id: uuid.UUID | None) -> Invoice:
    stmt = select(Invoice).where(Invoice.contact_id == ctx.contact_id, Invoice.deleted_at.is_(None))
    stmt = stmt.where(Invoice.id == invoice_id) if invoice_id else stmt.order_by(Invoice.created_at.desc())
    invoice = session.scalars(stmt.limit(1)).first()
    if invoice is None:
        raise NotFound("No such invoice for this lead.")
    return invoice


def _invoice_card(invoice: Invoice) -> dict[str, Any]:
    return {"invoice_id": invoice.id, "number": invoice.invoice_number, "status": invoice.status,
            "total": invoice.total_amount, "paid": invoice.amount_paid,
            "due": invoice.total_amount - invoice.amount_paid, "currency": invoice.currency,
            "due_date": invoice.due_date, "payment_link": invoice.payment_link_url}


@tool(args_schema=NoArgs)
@guarded("take_payments")
def list_products(*, config: RunnableConfig) -> dict[str, Any]:
    """What the business sells, with each price id, amount and billing period."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        rows = session.execute(select(Product, Price).join(Price, Price.product_id == Product.id).where(
            Product.is_active, Price.is_active, Product.deleted_at.is_(None), Price.deleted_at.is_(None))
            .order_by(Product.name, Price.amount)).all()
        return {"products": [{"product": p.name, "price_id": pr.id, "label": pr.nickname, "amount": pr.amount,
                              "currency": pr.currency, "every": (f"{pr.billing_interval} {pr.billing_period}"
                                                                 if pr.billing_period else None),
                              "trial_days": pr.trial_period_days} for p, pr in rows]}


class InvoiceItem(BaseModel):
    price_id: uuid.UUID = Field(description="A price_id from list_products")
    quantity: Decimal = Field(default=Decimal(1), gt=0, description="How many")


class CreateInvoiceArgs(BaseModel):
    items: list[InvoiceItem] = Field(min_length=1, description="What the lead is buying")


@tool(args_schema=CreateInvoiceArgs)
@guarded("take_payments")
def create_invoice(items: list[InvoiceItem], *, config: RunnableConfig) -> dict[str, Any]:
    """Bill the lead for catalogue items; then send_payment_link to let them pay."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    with session_for(ctx, config) as session:
        lines = [payments.line_for_price(session=session, price_id=i.price_id, quantity=i.quantity) for i in items]
        invoice = payments.create_invoice(session=session, contact_id=contact_id, lines=lines)
        return _invoice_card(invoice)


class InvoiceRef(BaseModel):
    invoice_id: uuid.UUID | None = Field(default=None, description="The lead's invoice; default their latest")


@tool(args_schema=InvoiceRef)
@guarded("take_payments")
def send_payment_link(invoice_id: uuid.UUID | None = None, *, config: RunnableConfig) -> dict[str, Any]:
    """A secure link where the lead pays their invoice; put it in your reply."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        invoice = _own_invoice(session, ctx, invoice_id)
        invoice = payments.send_payment_link(session=session, invoice_id=invoice.id, gateway=gateway_for())
        return _invoice_card(invoice)


@tool(args_schema=InvoiceRef)
@guarded("take_payments")
def invoice_status(invoice_id: uuid.UUID | None = None, *, config: RunnableConfig) -> dict[str, Any]:
    """Whether the lead's invoice is paid, and what is still due."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        return _invoice_card(_own_invoice(session, ctx, invoice_id))


@tool(args_schema=NoArgs)
@guarded("take_payments")
def subscription_status(*, config: RunnableConfig) -> dict[str, Any]:
    """The lead's subscriptions: status, current period, and whether they still have access."""
    ctx = AgentContext.from_config(config)
    now = datetime.now(UTC)
    with session_for(ctx, config) as session:
        subs = session.scalars(select(Subscription).where(Subscription.contact_id == ctx.contact_id)
                               .order_by(Subscription.created_at.desc())).all()
        names = {p.id: p.name for p in session.scalars(select(Product).where(
            Product.id.in_([s.product_id for s in subs])))}
        return {"subscriptions": [{"product": names.get(s.product_id), "status": s.status,
                                   "period_end": s.current_period_end, "cancels_at_period_end": s.cancel_at_period_end,
                                   "has_access": payments.has_access(s, now)} for s in subs]}
