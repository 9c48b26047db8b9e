"""Payments: products, prices, payment methods, subscriptions, invoices with line items, transactions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, Index, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    Entity,
    SubAccountOwned,
    Timestamps,
    UUIDPrimaryKey,
    choice,
    counter,
    fk,
    flag,
    jsonb_obj,
    short,
)

PRODUCT_TYPES = ("one_time", "recurring")
BILLING_PERIODS = ("day", "week", "month", "year")
PAYMENT_METHOD_TYPES = ("card", "bank_account", "wallet")
SUBSCRIPTION_STATUSES = ("incomplete", "trialing", "active", "past_due", "cancelled", "unpaid")
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
TRANSACTION_TYPES = ("payment", "refund", "chargeback", "adjustment")
TRANSACTION_STATUSES = ("pending", "succeeded", "failed", "refunded", "cancelled")
GATEWAYS = ("stripe", "whop", "manual", "sandbox")
PROVIDER_EVENT_STATUSES = ("received", "processed", "ignored", "failed")


class Product(Entity, Base):
    """Something a sub-account sells."""

    __tablename__ = "products"

    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    product_type: Mapped[str] = mapped_column(choice("product_type", *PRODUCT_TYPES), nullable=False)
    image_url: Mapped[str | None]
    stripe_product_id: Mapped[str | None] = short(255)
    is_active: Mapped[bool] = flag(True)


class Price(Entity, Base):
    """A price of a product: one-time, or recurring every `billing_interval` `billing_period`s."""

    __tablename__ = "prices"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint("(billing_period IS NULL) = (billing_interval IS NULL)", name="recurring_shape"),
        CheckConstraint("billing_interval IS NULL OR billing_interval > 0", name="interval_positive"),
        CheckConstraint("trial_period_days >= 0", name="trial_non_negative"),
    )

    product_id: Mapped[uuid.UUID] = fk("products.id", ondelete="CASCADE")
    nickname: Mapped[str | None] = short(255)
    amount: Mapped[Decimal] = mapped_column(nullable=False)
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    billing_period: Mapped[str | None] = mapped_column(choice("billing_period", *BILLING_PERIODS))
    billing_interval: Mapped[int | None]
    trial_period_days: Mapped[int] = counter()
    stripe_price_id: Mapped[str | None] = short(255)
    is_active: Mapped[bool] = flag(True)


class PaymentMethod(Entity, Base):
    """A saved way for a contact to pay (only the gateway's token and display facts are kept)."""

    __tablename__ = "payment_methods"

    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    method_type: Mapped[str] = mapped_column(choice("payment_method_type", *PAYMENT_METHOD_TYPES),
                                             nullable=False)
    brand: Mapped[str | None] = short(32)
    last4: Mapped[str | None] = short(4)
    exp_month: Mapped[int | None]
    exp_year: Mapped[int | None]
    is_default: Mapped[bool] = flag(False)
    gateway: Mapped[str] = mapped_column(choice("payment_method_gateway", *GATEWAYS), nullable=False)
    gateway_payment_method_id: Mapped[str | None] = short(255)


class Subscription(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """A contact's recurring purchase through its lifecycle."""

    __tablename__ = "subscriptions"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_subscriptions_renewal", "current_period_end",
              postgresql_where=text("status IN ('trialing', 'active', 'past_due')")),
    )

    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    product_id: Mapped[uuid.UUID] = fk("products.id", ondelete="RESTRICT")
    price_id: Mapped[uuid.UUID] = fk("prices.id", ondelete="RESTRICT")
    payment_method_id: Mapped[uuid.UUID | None] = fk("payment_methods.id", ondelete="SET NULL", nullable=True)
    status: Mapped[str] = mapped_column(choice("subscription_status", *SUBSCRIPTION_STATUSES), nullable=False)
    quantity: Mapped[int] = mapped_column(nullable=False, server_default=text("1"))
    trial_start: Mapped[datetime | None]
    trial_end: Mapped[datetime | None]
    current_period_start: Mapped[datetime | None]
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = flag(False)
    cancelled_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)


class Invoice(Entity, Base):
    """A bill to a contact; the database insists total = subtotal + tax - discount."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("sub_account_id", "invoice_number"),
        CheckConstraint("total_amount = subtotal + tax_amount - discount_amount", name="total_adds_up"),
        CheckConstraint("subtotal >= 0 AND tax_amount >= 0 AND discount_amount >= 0 AND amount_paid >= 0",
                        name="amounts_non_negative"),
        Index("ix_invoices_status_due", "sub_account_id", "status", "due_date"),
    )

    contact_id: Mapped[uuid.UUID] = fk("contacts.id")
    subscription_id: Mapped[uuid.UUID | None] = fk("subscriptions.id", ondelete="SET NULL", nullable=True)
    invoice_number: Mapped[str] = short(32, nullable=False)
    status: Mapped[str] = mapped_column(choice("invoice_status", *INVOICE_STATUSES), nullable=False,
                                        server_default="draft")
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    subtotal: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    tax_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    tax_amount: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    discount_amount: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    total_amount: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    amount_paid: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    issue_date: Mapped[date | None]
    due_date: Mapped[date | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    stripe_invoice_id: Mapped[str | None] = short(255)
    payment_link_url: Mapped[str | None]
    notes: Mapped[str | None]


class InvoiceLineItem(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """One line of an invoice; amount = round(quantity x unit_price, 2)."""

    __tablename__ = "invoice_line_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("amount = round(quantity * unit_price, 2)", name="amount_adds_up"),
    )

    invoice_id: Mapped[uuid.UUID] = fk("invoices.id", ondelete="CASCADE")
    product_id: Mapped[uuid.UUID | None] = fk("products.id", ondelete="SET NULL", nullable=True)
    price_id: Mapped[uuid.UUID | None] = fk("prices.id", ondelete="SET NULL", nullable=True)
    description: Mapped[str] = mapped_column(nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False, server_default=text("1"))
    unit_price: Mapped[Decimal] = mapped_column(nullable=False)
    amount: Mapped[Decimal] = mapped_column(nullable=False)
    position: Mapped[int] = counter()


class Transaction(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """Money moving: a payment, refund or chargeback through a gateway."""

    __tablename__ = "transactions"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        Index("uq_transactions_gateway_id", "gateway", "gateway_transaction_id", unique=True,
              postgresql_where=text("gateway_transaction_id IS NOT NULL")),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
    )

    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="SET NULL", nullable=True)
    invoice_id: Mapped[uuid.UUID | None] = fk("invoices.id", ondelete="SET NULL", nullable=True)
    subscription_id: Mapped[uuid.UUID | None] = fk("subscriptions.id", ondelete="SET NULL", nullable=True)
    payment_method_id: Mapped[uuid.UUID | None] = fk("payment_methods.id", ondelete="SET NULL", nullable=True)
    transaction_type: Mapped[str] = mapped_column(choice("transaction_type", *TRANSACTION_TYPES), nullable=False)
    amount: Mapped[Decimal] = mapped_column(nullable=False)
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    status: Mapped[str] = mapped_column(choice("transaction_status", *TRANSACTION_STATUSES), nullable=False)
    gateway: Mapped[str] = mapped_column(choice("transaction_gateway", *GATEWAYS), nullable=False)
    gateway_transaction_id: Mapped[str | None] = short(255)
    failure_reason: Mapped[str | None]
    processed_at: Mapped[datetime | None]
    metadata_: Mapped[dict[str, Any]] = jsonb_obj("metadata")


class ProviderEvent(UUIDPrimaryKey, Base):
    """An inbound provider webhook event (Stripe, Whop, Twilio status), processed once by its event id.

    System table: webhooks arrive before a tenant is known, so only the owner connection touches it.
    """

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    provider: Mapped[str] = short(32, nullable=False)
    event_id: Mapped[str] = short(255, nullable=False)
    event_type: Mapped[str] = short(255, nullable=False)
    sub_account_id: Mapped[uuid.UUID | None] = fk("sub_accounts.id", ondelete="SET NULL", nullable=True)
    payload: Mapped[dict[str, Any]] = jsonb_obj()
    status: Mapped[str] = mapped_column(choice("provider_event_status", *PROVIDER_EVENT_STATUSES),
                                        nullable=False, server_default="received")
    error: Mapped[str | None]
    attempts: Mapped[int] = counter()
    received_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    processed_at: Mapped[datetime | None]
