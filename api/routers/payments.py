"""Products and prices, invoices with exact totals, payment links, payments, refunds and subscriptions."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from api.deps import Tenant, sub_account
from api.schemas import row
from models.payments import Invoice, InvoiceLineItem, Price, Product, Subscription, Transaction
from services import payments
from services.errors import NotFound
from services.payment_gateway import gateway_for

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["Payments"])
Read = Annotated[Tenant, Depends(sub_account("payments.read"))]
Write = Annotated[Tenant, Depends(sub_account("payments.write"))]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class ProductIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    product_type: Literal["one_time", "recurring"]
    description: str | None = None


class PriceIn(BaseModel):
    amount: Money
    currency: str = Field("USD", min_length=3, max_length=3)
    billing_period: Literal["day", "week", "month", "year"] | None = None
    billing_interval: int | None = Field(None, ge=1, le=36)
    trial_period_days: int = Field(0, ge=0, le=730)
    nickname: str | None = None


class LineIn(BaseModel):
    """Either a price of a product, or a free-text line with a unit price."""

    model_config = ConfigDict(extra="forbid")
    price_id: uuid.UUID | None = None
    description: str | None = Field(None, max_length=500)
    quantity: Decimal = Field(Decimal(1), gt=0, max_digits=10, decimal_places=3)
    unit_price: Money | None = None

    @model_validator(mode="after")
    def one_kind(self) -> LineIn:
        if (self.price_id is None) == (self.unit_price is None and self.description is None):
            raise ValueError("give price_id, or description and unit_price")
        if self.price_id is None and (self.unit_price is None or not self.description):
            raise ValueError("a free-text line needs description and unit_price")
        return self


class InvoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_id: uuid.UUID
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    tax_rate: Decimal | None = Field(None, ge=0, le=1,
                                     description="A fraction (0.08875 for 8.875%), applied to the subtotal.")
    discount: Money = Decimal(0)
    currency: str = Field("USD", min_length=3, max_length=3)
    issue_date: date | None = None
    due_in_days: int = Field(14, ge=0, le=365)
    notes: str | None = None


class RefundIn(BaseModel):
    amount: Money | None = Field(None, description="Default: everything not yet refunded.")


class SubscribeIn(BaseModel):
    contact_id: uuid.UUID
    price_id: uuid.UUID
    quantity: int = Field(1, ge=1, le=1000)


def _invoice(s: Any, invoice: Invoice) -> dict[str, Any]:
    items = s.scalars(select(InvoiceLineItem).where(InvoiceLineItem.invoice_id == invoice.id)
                      .order_by(InvoiceLineItem.position)).all()
    return row(invoice, extra={"items": [row(i) for i in items]})


@router.get("/products", summary="Products and their active prices")
def list_products(t: Read) -> list[dict[str, Any]]:
    with t.session() as s:
        products = s.scalars(select(Product).where(Product.deleted_at.is_(None)).order_by(Product.name)).all()
        prices = s.scalars(select(Price).where(Price.deleted_at.is_(None))).all()
        return [row(p, extra={"prices": [row(x) for x in prices if x.product_id == p.id]}) for p in products]


@router.post("/products", status_code=201, summary="Create a product")
def create_product(t: Write, body: ProductIn) -> dict[str, Any]:
    with t.session() as s:
        return row(payments.create_product(session=s, sub_account_id=t.sub_account_id, **body.model_dump()))


@router.post("/products/{product_id}/prices", status_code=201, summary="Add a price")
def add_price(t: Write, product_id: uuid.UUID, body: PriceIn) -> dict[str, Any]:
    """Recurring products need billing_period and billing_interval; one-time ones take neither."""
    with t.session() as s:
        return row(payments.add_price(session=s, product_id=product_id, **body.model_dump()))


@router.post("/invoices", status_code=201, summary="Create an invoice")
def create_invoice(t: Write, body: InvoiceIn) -> dict[str, Any]:
    """Numbered INV-<year>-<nnnn> per sub-account; total = subtotal + tax - discount, exact to the cent."""
    with t.session() as s:
        lines = [payments.line_for_price(session=s, price_id=x.price_id, quantity=x.quantity) if x.price_id
                 else payments.Line(str(x.description), x.quantity, x.unit_price or Decimal(0))
                 for x in body.lines]
        invoice = payments.create_invoice(session=s, contact_id=body.contact_id, lines=lines,
                                          **body.model_dump(exclude={"contact_id", "lines"}))
        return _invoice(s, invoice)


@router.get("/invoices/{invoice_id}", summary="Get an invoice")
def get_invoice(t: Read, invoice_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        invoice = s.get(Invoice, invoice_id)
        if invoice is None or invoice.deleted_at is not None:
            raise NotFound("No such invoice.")
        return _invoice(s, invoice)


@router.post("/invoices/{invoice_id}/payment-link", summary="Create (or return) the payment link")
def payment_link(t: Write, invoice_id: uuid.UUID) -> dict[str, Any]:
    """A Stripe Checkout link when Stripe is configured, else the sandbox's; the same link on every retry."""
    with t.session() as s:
        invoice = payments.send_payment_link(session=s, invoice_id=invoice_id, gateway=gateway_for())
        return {"invoice_id": str(invoice.id), "url": invoice.payment_link_url}


@router.post("/transactions/{transaction_id}/refund", status_code=201, summary="Refund a payment")
def refund(t: Write, transaction_id: uuid.UUID, body: RefundIn) -> dict[str, Any]:
    """Through the configured gateway when the payment came through it (Stripe, or the sandbox), otherwise
    recorded as a refund made elsewhere. Refunds of one payment never exceed it (422)."""
    gateway = gateway_for()
    with t.session() as s:
        payment = s.get(Transaction, transaction_id)
        if payment is not None and payment.gateway == gateway.name and payment.gateway_transaction_id:
            made = payments.refund_through_gateway(session=s, transaction_id=transaction_id, gateway=gateway,
                                                   amount=body.amount)
        else:
            made = payments.refund(session=s, transaction_id=transaction_id, amount=body.amount)
        return row(made)


@router.post("/subscriptions", status_code=201, summary="Start a subscription")
def subscribe(t: Write, body: SubscribeIn) -> dict[str, Any]:
    """Trialing when the price has trial days, else active with the first period's invoice."""
    with t.session() as s:
        sub, invoice = payments.subscribe(session=s, **body.model_dump())
        return row(sub, extra={"invoice": _invoice(s, invoice) if invoice else None})


@router.get("/subscriptions/{subscription_id}", summary="Get a subscription")
def get_subscription(t: Read, subscription_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        sub = s.get(Subscription, subscription_id)
        if sub is None:
            raise NotFound("No such subscription.")
        return row(sub)


@router.post("/subscriptions/{subscription_id}/cancel", summary="Cancel at period end")
def cancel(t: Write, subscription_id: uuid.UUID) -> dict[str, Any]:
    """Access continues to the end of the paid period."""
    with t.session() as s:
        return row(payments.cancel_subscription(session=s, subscription_id=subscription_id))
