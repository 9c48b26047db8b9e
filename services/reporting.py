"""Sales-performance reporting over sales_calls and financial_records.

Formulas (also published in the API docs):
- show rate            = calls that showed (completed or closed) / calls scheduled in the period and already due
- close rate           = closed calls / calls that showed
- revenue              = paid payments;  refunds = paid refunds;  ad spend = paid ad-spend records
- ROI                  = (revenue - refunds - ad spend) / ad spend
- cost per booked call = ad spend / calls scheduled in the period
- cost per acquisition = ad spend / closed calls
A ratio whose denominator is zero is None (undefined), never 0. Periods are calendar days, ISO weeks, months
or quarters in the given IANA timezone (the sub-account's), or a custom [start, end) range; every figure
comes with the same figure for the period before as its baseline and a trend direction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Select, case, func, literal, select
from sqlalchemy.orm import Session

from models.performance import FinancialRecord, PerformanceMetric, ReportDailyRollup, SalesCall
from models.tenancy import SubAccount
from services.errors import InvalidInput

Period = Literal["day", "week", "month", "quarter"]
GroupBy = Literal["campaign", "sub_account", "agency"]
METRICS = ("show_rate", "close_rate", "revenue", "refunds", "ad_spend", "roi", "cost_per_booked_call",
           "cost_per_acquisition", "booked_calls")
FORMULAS = {
    "show_rate": "showed (completed + closed) / scheduled and due",
    "close_rate": "closed / showed",
    "revenue": "sum of paid payments",
    "refunds": "sum of paid refunds",
    "ad_spend": "sum of paid ad spend",
    "roi": "(revenue - refunds - ad spend) / ad spend",
    "cost_per_booked_call": "ad spend / calls scheduled in the period",
    "cost_per_acquisition": "ad spend / closed calls",
    "booked_calls": "calls scheduled in the period",
}
STABLE_WITHIN = Decimal("0.01")  # relative change under 1% reads as stable
RATIO_PLACES = Decimal("0.000001")
CENT = Decimal("0.01")


@dataclass
class Tally:
    """The raw counts and sums one group has in one period; the metrics derive from them."""

    booked: int = 0
    due: int = 0
    showed: int = 0
    closed: int = 0
    revenue: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)
    ad_spend: Decimal = Decimal(0)

    def value(self, metric: str) -> Decimal | None:
        """One metric of this tally (None when undefined)."""
        def ratio(num: Decimal | int, den: Decimal | int) -> Decimal | None:
            return (Decimal(num) / Decimal(den)).quantize(RATIO_PLACES) if den else None

        return {
            "show_rate": lambda: ratio(self.showed, self.due),
            "close_rate": lambda: ratio(self.closed, self.showed),
            "revenue": lambda: self.revenue.quantize(CENT),
            "refunds": lambda: self.refunds.quantize(CENT),
            "ad_spend": lambda: self.ad_spend.quantize(CENT),
            "roi": lambda: ratio(self.revenue - self.refunds - self.ad_spend, self.ad_spend),
            "cost_per_booked_call": lambda: _cents(ratio(self.ad_spend, self.booked)),
            "cost_per_acquisition": lambda: _cents(ratio(self.ad_spend, self.closed)),
            "booked_calls": lambda: Decimal(self.booked),
        }[metric]()


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT)


def trend(current: Decimal | None, baseline: Decimal | None) -> str | None:
    """up / down / stable (within 1% of the baseline); None when either side is undefined."""
    if current is None or baseline is None:
        return None
    if baseline == 0:
        return "stable" if current == 0 else "up" if current > 0 else "down"
    change = (current - baseline) / abs(baseline)
    return "stable" if abs(change) < STABLE_WITHIN else "up" if change > 0 else "down"


def period_bounds(period: Period, anchor: date, tz: str) -> tuple[datetime, datetime]:
    """The [start, end) in UTC of the day / ISO week / month / quarter holding `anchor`, in timezone `tz`."""
    if period == "day":
        first, nxt = anchor, anchor + timedelta(days=1)
    elif period == "week":
        first = anchor - timedelta(days=anchor.weekday())
        nxt = first + timedelta(days=7)
    elif period == "month":
        first = anchor.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
    elif period == "quarter":
        first = date(anchor.year, 3 * ((anchor.month - 1) // 3) + 1, 1)
        nxt = (first + timedelta(days=95)).replace(day=1)
    else:
        raise InvalidInput(f"Unknown period {period!r}.", field="period")
    zone = ZoneInfo(tz)
    return (datetime.combine(first, time(), tzinfo=zone).astimezone(UTC),
            datetime.combine(nxt, time(), tzinfo=zone).astimezone(UTC))


def previous_bounds(period: Period | None, start: datetime, end: datetime, tz: str) -> tuple[datetime, datetime]:
    """The period before [start, end): the previous calendar period, or a custom range of equal length."""
    if period is None:
        return start - (end - start), start
    local_start = start.astimezone(ZoneInfo(tz)).date()
    return period_bounds(period, local_start - timedelta(days=1), tz)


def _key(group_by: GroupBy, column_campaign: Any, column_sub: Any) -> Any:
    return {"campaign": column_campaign, "sub_account": column_sub, "agency": literal("agency")}[group_by]


def _bucket(grain: Period | None, column: Any, tz: str) -> Any:
    """The local calendar bucket (as a naive local timestamp) of `column`, or a constant when not bucketing."""
    if grain is None:
        return literal(None)
    return func.date_trunc(grain, func.timezone(tz, column))


def tallies(*, session: Session, start: datetime, end: datetime, group_by: GroupBy, now: datetime,
            campaign_ids: Iterable[uuid.UUID] | None = None, grain: Period | None = None, tz: str = "UTC",
            use_rollup: bool = True) -> dict[Any, Tally]:
    """Counts and sums per group over [start, end) (RLS decides which rows).

    With `grain`, keys are (group, local period start) pairs: every month (say) of the range at once. Whole
    local days that have ended are read from report_daily_rollups for the sub-accounts whose timezone is `tz`;
    the partial days at either end, today, the future and sub-accounts in other timezones from the raw rows.
    The two paths give identical results (tested); `use_rollup=False` forces the raw path.
    """
    ids = None if campaign_ids is None else list(campaign_ids)
    out: dict[Any, Tally] = {}
    day_lo, day_hi = _whole_days(start, min(end, now), tz)
    if not use_rollup or day_lo >= day_hi:
        _raw_tallies(out, session, start, end, group_by, now, ids, grain, tz, None)
        return out
    zones = session.execute(select(SubAccount.id, SubAccount.timezone)).all()  # the visible ones (RLS)
    same_tz = [sub for sub, zone in zones if zone == tz]
    other_tz = [sub for sub, zone in zones if zone != tz]
    if same_tz:
        _rollup_tallies(out, session, day_lo, day_hi, group_by, ids, grain, tz, same_tz)
    _raw_tallies(out, session, start, day_lo, group_by, now, ids, grain, tz, None)
    _raw_tallies(out, session, day_hi, end, group_by, now, ids, grain, tz, None)
    if other_tz:
        _raw_tallies(out, session, day_lo, day_hi, group_by, now, ids, grain, tz, other_tz)
    return out


def _whole_days(start: datetime, end: datetime, tz: str) -> tuple[datetime, datetime]:
    """The first local midnight at or after `start` and the last at or before `end` (UTC)."""
    zone = ZoneInfo(tz)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    lo = datetime.combine(local_start.date(), time(), tzinfo=zone)
    if lo.astimezone(UTC) < start:
        lo = datetime.combine(local_start.date() + timedelta(days=1), time(), tzinfo=zone)
    hi = datetime.combine(local_end.date(), time(), tzinfo=zone)
    return lo.astimezone(UTC), hi.astimezone(UTC)


def _add(out: dict[Any, Tally], key: Any, **parts: Any) -> None:
    if key not in out and not any(parts.values()):
        return  # only zero-amount rows: the same as no rows, whichever path read them
    tally = out.setdefault(key, Tally())
    for name, value in parts.items():
        setattr(tally, name, getattr(tally, name) + value)


def _rollup_tallies(out: dict[Any, Tally], session: Session, day_lo: datetime, day_hi: datetime, group_by: GroupBy,
                    ids: list[uuid.UUID] | None, grain: Period | None, tz: str, subs: list[uuid.UUID]) -> None:
    zone = ZoneInfo(tz)
    r = ReportDailyRollup
    key = _key(group_by, r.campaign_id, r.sub_account_id)
    bucket = literal(None) if grain is None else func.date_trunc(grain, func.cast(r.day, DateTime))
    query = (select(key, bucket, func.sum(r.booked), func.sum(r.showed), func.sum(r.closed), func.sum(r.revenue),
                    func.sum(r.refunds), func.sum(r.ad_spend))
             .where(r.day >= day_lo.astimezone(zone).date(), r.day < day_hi.astimezone(zone).date(),
                    r.sub_account_id.in_(subs))
             .group_by(key, bucket))
    if ids is not None:
        query = query.where(r.campaign_id.in_(ids))
    for group, at, booked, showed, closed, revenue, refunds, spend in session.execute(query).all():
        # every call of a day that has ended is due
        _add(out, (group, at) if grain else group, booked=int(booked), due=int(booked), showed=int(showed),
             closed=int(closed), revenue=Decimal(revenue), refunds=Decimal(refunds), ad_spend=Decimal(spend))


def _raw_tallies(out: dict[Any, Tally], session: Session, start: datetime, end: datetime, group_by: GroupBy,
                 now: datetime, ids: list[uuid.UUID] | None, grain: Period | None, tz: str,
                 only_subs: list[uuid.UUID] | None) -> None:
    if start >= end:
        return
    call_key = _key(group_by, SalesCall.campaign_id, SalesCall.sub_account_id)
    call_bucket = _bucket(grain, SalesCall.scheduled_date_time, tz)
    due = SalesCall.scheduled_date_time <= now  # a call not yet due has neither shown nor closed
    calls: Select[Any] = (
        select(call_key, call_bucket, func.count(),
               func.count(case((due, 1))),
               func.count(case((due & SalesCall.call_outcome.in_(("completed", "closed")), 1))),
               func.count(case((due & (SalesCall.call_outcome == "closed"), 1))))
        .where(SalesCall.scheduled_date_time >= start, SalesCall.scheduled_date_time < end,
               SalesCall.deleted_at.is_(None))
        .group_by(call_key, call_bucket))
    money_key = _key(group_by, FinancialRecord.campaign_id, FinancialRecord.sub_account_id)
    money_bucket = _bucket(grain, FinancialRecord.transaction_date, tz)
    amount = FinancialRecord.amount

    def total(kind: str) -> Any:
        return func.coalesce(func.sum(case((FinancialRecord.transaction_type == kind, amount))), 0)

    money = (select(money_key, money_bucket, total("payment"), total("refund"), total("ad_spend"))
             .where(FinancialRecord.transaction_date >= start, FinancialRecord.transaction_date < end,
                    FinancialRecord.payment_status == "paid")
             .group_by(money_key, money_bucket))
    if ids is not None:
        calls = calls.where(SalesCall.campaign_id.in_(ids))
        money = money.where(FinancialRecord.campaign_id.in_(ids))
    if only_subs is not None:  # the sub-accounts the rollup could not serve
        calls = calls.where(SalesCall.sub_account_id.in_(only_subs))
        money = money.where(FinancialRecord.sub_account_id.in_(only_subs))
    for key, bucket, booked, due_n, showed, closed in session.execute(calls).all():
        _add(out, (key, bucket) if grain else key, booked=booked, due=due_n, showed=showed, closed=closed)
    for key, bucket, revenue, refunds, spend in session.execute(money).all():
        _add(out, (key, bucket) if grain else key, revenue=Decimal(revenue), refunds=Decimal(refunds),
             ad_spend=Decimal(spend))


@dataclass(frozen=True)
class Figure:
    """One metric for one group: this period, the previous one, and the direction."""

    metric: str
    value: Decimal | None
    baseline: Decimal | None
    trend: str | None


@dataclass(frozen=True)
class GroupReport:
    """Every metric for one campaign, sub-account or the agency."""

    key: object
    figures: dict[str, Figure] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """A report for a period, grouped, with baselines."""

    start: datetime
    end: datetime
    baseline_start: datetime
    baseline_end: datetime
    timezone: str
    group_by: GroupBy
    groups: list[GroupReport]


def build_report(*, session: Session, group_by: GroupBy, tz: str, period: Period | None = None,
                 anchor: date | None = None, start: datetime | None = None, end: datetime | None = None,
                 now: datetime | None = None, metrics: Iterable[str] = METRICS) -> Report:
    """Every requested metric per group for a calendar period (or custom range), against the period before."""
    now = now or datetime.now(UTC)
    wanted = list(metrics)
    unknown = sorted(set(wanted) - set(METRICS))
    if unknown:
        raise InvalidInput(f"Unknown metric(s): {', '.join(unknown)}.", field="metrics")
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"Unknown timezone {tz!r}.", field="tz") from exc
    if period is not None:
        start, end = period_bounds(period, anchor or now.astimezone(ZoneInfo(tz)).date(), tz)
    elif start is None or end is None or start >= end or start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("Give a period, or a custom start < end with timezones.")
    base_start, base_end = previous_bounds(period, start, end, tz)
    current = tallies(session=session, start=start, end=end, group_by=group_by, now=now, tz=tz)
    before = tallies(session=session, start=base_start, end=base_end, group_by=group_by, now=now, tz=tz)
    groups = []
    for key in sorted(set(current) | set(before), key=str):
        now_t, was_t = current.get(key, Tally()), before.get(key, Tally())
        figures = {}
        for metric in wanted:
            value, baseline = now_t.value(metric), was_t.value(metric)
            figures[metric] = Figure(metric, value, baseline, trend(value, baseline))
        groups.append(GroupReport(key=key, figures=figures))
    return Report(start=start, end=end, baseline_start=base_start, baseline_end=base_end, timezone=tz,
                  group_by=group_by, groups=groups)


def sub_account_timezone(*, session: Session, sub_account_id: uuid.UUID) -> str:
    """The IANA timezone periods of this sub-account are cut in."""
    tz = session.scalar(select(SubAccount.timezone).where(SubAccount.id == sub_account_id))
    if tz is None:
        raise InvalidInput("No such sub-account.")
    return tz


def persist_report(*, session: Session, report: Report, agency_id: uuid.UUID,
                   sub_account_id: uuid.UUID | None = None, label: str | None = None) -> list[PerformanceMetric]:
    """Store a report's figures in performance_metrics, each with its calculation method."""
    rows = []
    for group in report.groups:
        scope = report.group_by
        campaign_id = group.key if scope == "campaign" else None
        if scope == "campaign" and campaign_id is None:
            continue  # calls and money not attributed to any campaign have no campaign row to hang on
        owner = group.key if scope == "sub_account" else sub_account_id
        for figure in group.figures.values():
            rows.append(PerformanceMetric(
                agency_id=agency_id, sub_account_id=None if scope == "agency" else owner, campaign_id=campaign_id,
                scope=scope, metric_type=figure.metric, calculation_method=FORMULAS[figure.metric],
                calculated_value=figure.value, comparison_baseline=figure.baseline, trend_direction=figure.trend,
                time_period=label or f"{report.start.isoformat()}/{report.end.isoformat()}",
                period_start=report.start, period_end=report.end))
    session.add_all(rows)
    session.flush()
    return rows
