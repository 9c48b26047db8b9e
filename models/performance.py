"""The sales-performance seed: ad/sales campaigns, sales calls, financial records, metrics, feedback,
report templates and their junctions. Its `clients` are sub-accounts, so `client_id` is `sub_account_id`."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Numeric, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    SoftDelete,
    SubAccountOwned,
    Timestamps,
    UUIDPrimaryKey,
    choice,
    counter,
    fk,
    flag,
    jsonb_list,
    jsonb_obj,
    short,
)

CAMPAIGN_STATUSES = ("draft", "active", "paused", "completed")
CALL_OUTCOMES = ("scheduled", "completed", "no_show", "closed")
METRIC_TYPES = (
    "show_rate", "close_rate", "roi", "revenue", "refunds", "ad_spend", "cost_per_booked_call",
    "cost_per_acquisition", "booked_calls",
)
METRIC_SCOPES = ("campaign", "sub_account", "agency")
TRENDS = ("up", "down", "stable")
FINANCIAL_TYPES = ("ad_spend", "payment", "refund")
PAYMENT_STATUSES = ("pending", "paid", "failed")
FEEDBACK_TYPES = ("rating", "comment", "complaint")
FEEDBACK_STATUSES = ("new", "reviewed", "resolved")
TEMPLATE_TYPES = ("dashboard", "export", "recurring")
FREQUENCIES = ("daily", "weekly", "monthly")


def _agency_sub_account_fk(table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["agency_id", "sub_account_id"], ["sub_accounts.agency_id", "sub_accounts.id"],
        ondelete="CASCADE", name=f"fk_{table}_agency_sub_account",
    )


class Campaign(UUIDPrimaryKey, SubAccountOwned, Timestamps, SoftDelete, Base):
    """An ad/sales campaign of a client: budget, dates, target metrics; groups calls and money."""

    __tablename__ = "campaigns"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        _agency_sub_account_fk("campaigns"),
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="date_order"),
        CheckConstraint("budget_allocation >= 0", name="budget_non_negative"),
        Index("ix_campaigns_external", "sub_account_id", "platform", "external_campaign_id"),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    name: Mapped[str] = short(255, nullable=False)
    start_date: Mapped[datetime] = mapped_column(nullable=False)
    end_date: Mapped[datetime | None]
    campaign_status: Mapped[str] = mapped_column(choice("campaign_status", *CAMPAIGN_STATUSES),
                                                 nullable=False, server_default="draft")
    budget_allocation: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    target_metrics: Mapped[dict[str, Any]] = jsonb_obj()
    platform: Mapped[str | None] = short(32)
    external_campaign_id: Mapped[str | None] = short(255)
    utm_campaign: Mapped[str | None] = short(255)


class SalesCall(UUIDPrimaryKey, SubAccountOwned, Timestamps, SoftDelete, Base):
    """A sales call of a client, possibly booked as an appointment, with its outcome."""

    __tablename__ = "sales_calls"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        CheckConstraint("duration >= 0", name="duration_non_negative"),
        Index("ix_sales_calls_sub_account_scheduled", "sub_account_id", "scheduled_date_time"),
        Index("ix_sales_calls_campaign_scheduled", "campaign_id", "scheduled_date_time", "call_outcome"),
    )

    campaign_id: Mapped[uuid.UUID | None] = fk("campaigns.id", ondelete="SET NULL", nullable=True, index=False)
    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="SET NULL", nullable=True)
    appointment_id: Mapped[uuid.UUID | None] = fk("appointments.id", ondelete="SET NULL", nullable=True)
    user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    scheduled_date_time: Mapped[datetime] = mapped_column(nullable=False)
    # minutes
    duration: Mapped[int] = mapped_column(nullable=False, server_default=text("30"))
    call_outcome: Mapped[str] = mapped_column(choice("call_outcome", *CALL_OUTCOMES), nullable=False,
                                              server_default="scheduled")
    notes: Mapped[str | None]
    follow_up_actions: Mapped[str | None]
    attendee_list: Mapped[list[Any]] = jsonb_list()


class CampaignCall(SubAccountOwned, Base):
    """Junction grouping sales calls under campaigns (a call may count toward several)."""

    __tablename__ = "campaign_calls"

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    sales_call_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sales_calls.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class PerformanceMetric(UUIDPrimaryKey, Timestamps, Base):
    """A calculated figure (show rate, ROI, ...) for a campaign, sub-account or the agency and a period."""

    __tablename__ = "performance_metrics"
    __tenancy__: ClassVar[str | None] = "agency_sub_account"
    __table_args__ = (
        _agency_sub_account_fk("performance_metrics"),
        CheckConstraint("(scope = 'agency') = (sub_account_id IS NULL)", name="scope_shape"),
        CheckConstraint("(scope = 'campaign') = (campaign_id IS NOT NULL)", name="campaign_scope"),
        Index("ix_performance_metrics_lookup", "agency_id", "sub_account_id", "metric_type", "period_start"),
        Index("ix_performance_metrics_sub_account", "sub_account_id"),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    sub_account_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    campaign_id: Mapped[uuid.UUID | None] = fk("campaigns.id", ondelete="CASCADE", nullable=True)
    scope: Mapped[str] = mapped_column(choice("metric_scope", *METRIC_SCOPES), nullable=False)
    calculation_method: Mapped[str] = mapped_column(nullable=False)
    metric_type: Mapped[str] = mapped_column(choice("metric_type", *METRIC_TYPES), nullable=False)
    calculated_value: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    time_period: Mapped[str] = short(64, nullable=False)
    period_start: Mapped[datetime] = mapped_column(nullable=False)
    period_end: Mapped[datetime] = mapped_column(nullable=False)
    comparison_baseline: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    trend_direction: Mapped[str | None] = mapped_column(choice("trend_direction", *TRENDS))


class FinancialRecord(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """Ad spend, payment or refund from an integration (Meta, Whop, Stripe), attributed to a campaign."""

    __tablename__ = "financial_records"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        _agency_sub_account_fk("financial_records"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        Index("uq_financial_records_reference", "integration_source_id", "reference_number", unique=True,
              postgresql_where=text("reference_number IS NOT NULL")),
        Index("ix_financial_records_campaign_date", "campaign_id", "transaction_date", "transaction_type"),
        Index("ix_financial_records_sub_account_date", "sub_account_id", "transaction_type", "transaction_date"),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    # nullable where the seed says required: unattributed payments and manual entries exist
    campaign_id: Mapped[uuid.UUID | None] = fk("campaigns.id", ondelete="SET NULL", nullable=True, index=False)
    integration_source_id: Mapped[uuid.UUID | None] = fk("integrations.id", ondelete="SET NULL", nullable=True,
                                                         index=False)
    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="SET NULL", nullable=True)
    transaction_id: Mapped[uuid.UUID | None] = fk("transactions.id", ondelete="SET NULL", nullable=True)
    transaction_date: Mapped[datetime] = mapped_column(nullable=False)
    amount: Mapped[Decimal] = mapped_column(nullable=False)
    payment_status: Mapped[str] = mapped_column(choice("financial_payment_status", *PAYMENT_STATUSES),
                                                nullable=False, server_default="paid")
    transaction_type: Mapped[str] = mapped_column(choice("financial_transaction_type", *FINANCIAL_TYPES),
                                                  nullable=False)
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    reference_number: Mapped[str | None] = short(255)
    metadata_: Mapped[dict[str, Any]] = jsonb_obj("metadata")


class UserFeedback(UUIDPrimaryKey, SubAccountOwned, Timestamps, Base):
    """A rating, comment or complaint from a client about a call."""

    __tablename__ = "user_feedback"
    __table_args__ = (CheckConstraint("rating_score BETWEEN 1 AND 5", name="rating_range"),)

    sales_call_id: Mapped[uuid.UUID | None] = fk("sales_calls.id", ondelete="SET NULL", nullable=True)
    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="SET NULL", nullable=True)
    user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    feedback_date: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    feedback_type: Mapped[str] = mapped_column(choice("feedback_type", *FEEDBACK_TYPES), nullable=False)
    rating_score: Mapped[int | None]
    comments: Mapped[str | None]
    feedback_status: Mapped[str] = mapped_column(choice("feedback_status", *FEEDBACK_STATUSES), nullable=False,
                                                 server_default="new")
    response_actions: Mapped[str | None]


class ReportTemplate(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A saved dashboard, export or recurring report, agency-wide or for one sub-account."""

    __tablename__ = "report_templates"
    __tenancy__: ClassVar[str | None] = "agency_sub_account"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        _agency_sub_account_fk("report_templates"),
        CheckConstraint("template_type <> 'recurring' OR schedule_frequency IS NOT NULL",
                        name="recurring_has_schedule"),
        Index("ix_report_templates_sub_account", "sub_account_id"),
        Index("ix_report_templates_due", "next_run_at",
              postgresql_where=text("template_type = 'recurring' AND active_status")),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    sub_account_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    created_by_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    template_type: Mapped[str] = mapped_column(choice("report_template_type", *TEMPLATE_TYPES), nullable=False)
    template_name: Mapped[str] = short(255, nullable=False)
    configuration_settings: Mapped[dict[str, Any]] = jsonb_obj()
    schedule_frequency: Mapped[str | None] = mapped_column(choice("schedule_frequency", *FREQUENCIES))
    recipients: Mapped[list[Any]] = jsonb_list()
    last_run_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    active_status: Mapped[bool] = flag(True)


class TemplateMetric(Base):
    """Junction: performance metrics a report template includes."""

    __tablename__ = "template_metrics"
    __tenancy__: ClassVar[str | None] = "agency"

    report_template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report_templates.id", ondelete="CASCADE"), primary_key=True
    )
    performance_metric_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("performance_metrics.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")


class TemplateFinancial(Base):
    """Junction: financial records a report template includes."""

    __tablename__ = "template_financials"
    __tenancy__: ClassVar[str | None] = "agency"

    report_template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("report_templates.id", ondelete="CASCADE"), primary_key=True
    )
    financial_record_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("financial_records.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")


class ReportDailyRollup(SubAccountOwned, Base):
    """Per (sub-account, campaign, local day) sums of sales_calls and paid financial_records, kept exact by
    triggers on both tables (and rebuilt for a sub-account whose timezone changes). Days are calendar days in
    the sub-account's timezone; reporting reads whole past days from here and the rest from the raw tables."""

    __tablename__ = "report_daily_rollups"
    __table_args__ = (
        Index("uq_report_daily_rollups_key", "sub_account_id", "campaign_id", "day", unique=True,
              postgresql_nulls_not_distinct=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    sub_account_id: Mapped[uuid.UUID] = fk("sub_accounts.id", ondelete="CASCADE", index=False)
    # no foreign key: a deleted campaign's calls move to "no campaign" through the triggers, leaving zeros here
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    day: Mapped[date] = mapped_column(nullable=False)
    booked: Mapped[int] = counter()
    showed: Mapped[int] = counter()
    closed: Mapped[int] = counter()
    revenue: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    refunds: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
    ad_spend: Mapped[Decimal] = mapped_column(nullable=False, server_default=text("0"))
