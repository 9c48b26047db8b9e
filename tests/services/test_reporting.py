"""Reporting figures against numbers computed by hand, and against the raw demo data."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models.db import TenantScope, apply_scope
from models.performance import Campaign, FinancialRecord, PerformanceMetric, SalesCall
from models.tenancy import SubAccount
from services import reporting
from tests.conftest import Demo

pytestmark = pytest.mark.integration
LA = "America/Los_Angeles"
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def la(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(LA))


@pytest.fixture
def bistro(scoped, demo: Demo):  # type: ignore[no-untyped-def]
    """A fresh sub-account in Los Angeles with a small, hand-checkable history."""
    session = scoped(TenantScope(agency_id=demo.agency_id))
    sub = SubAccount(agency_id=demo.agency_id, name="Test Bistro", slug=f"bistro-{uuid.uuid4().hex[:6]}",
                     timezone=LA)
    session.add(sub)
    session.flush()
    apply_scope(session, TenantScope(agency_id=demo.agency_id, sub_account_id=sub.id))
    c1, c2 = (Campaign(agency_id=demo.agency_id, sub_account_id=sub.id, name=n, start_date=la(2026, 8, 1))
              for n in ("Meta - Brunch", "Google - Brand"))
    session.add_all([c1, c2])
    session.flush()
    calls = [  # (when, outcome, campaign)
        (la(2026, 10, 3, 10), "completed", c1), (la(2026, 10, 10), "closed", c1), (la(2026, 10, 20), "no_show", c1),
        (la(2026, 10, 31, 23, 30), "closed", c1),   # Nov 1 06:30 UTC: October in Los Angeles
        (la(2026, 10, 1, 0, 30), "completed", c1),  # Oct 1 07:30 UTC
        (la(2026, 9, 30, 23, 30), "no_show", c1),   # Oct 1 06:30 UTC: September in Los Angeles
        (la(2026, 10, 2), "completed", c2), (la(2026, 11, 20), "scheduled", c2),
    ]
    session.add_all(SalesCall(sub_account_id=sub.id, campaign_id=c.id, scheduled_date_time=when, call_outcome=o)
                    for when, o, c in calls)
    money = [  # (when, type, amount, status, campaign)
        (la(2026, 10, 5), "ad_spend", "300.00", "paid", c1), (la(2026, 10, 31, 23), "ad_spend", "200.50", "paid", c1),
        (la(2026, 10, 11), "payment", "1200.00", "paid", c1),
        (la(2026, 10, 31, 23, 45), "payment", "800.00", "paid", c1),
        (la(2026, 10, 15), "refund", "100.00", "paid", c1), (la(2026, 10, 12), "payment", "999.00", "failed", c1),
        (la(2026, 9, 15), "ad_spend", "100.00", "paid", c1), (la(2026, 10, 9), "ad_spend", "50.00", "paid", c2),
    ]
    session.add_all(FinancialRecord(agency_id=demo.agency_id, sub_account_id=sub.id, campaign_id=c.id,
                                    transaction_date=when, transaction_type=kind, amount=Decimal(amount),
                                    payment_status=status) for when, kind, amount, status, c in money)
    session.flush()
    return session, sub, c1, c2


def test_month_by_campaign_matches_hand_computation(bistro) -> None:  # type: ignore[no-untyped-def]
    session, _, c1, c2 = bistro
    report = reporting.build_report(session=session, group_by="campaign", tz=LA, period="month",
                                    anchor=date(2026, 10, 1), now=NOW)
    assert report.start == datetime(2026, 10, 1, 7, tzinfo=UTC) and report.end == datetime(2026, 11, 1, 7, tzinfo=UTC)
    first = {m: f.value for m, f in next(g for g in report.groups if g.key == c1.id).figures.items()}
    assert first == {
        "booked_calls": Decimal(5), "show_rate": Decimal("0.800000"), "close_rate": Decimal("0.500000"),
        "revenue": Decimal("2000.00"), "refunds": Decimal("100.00"), "ad_spend": Decimal("500.50"),
        # (2000 - 100 - 500.50) / 500.50
        "roi": Decimal("2.796204"), "cost_per_booked_call": Decimal("100.10"),
        "cost_per_acquisition": Decimal("250.25"),
    }
    second = next(g for g in report.groups if g.key == c2.id).figures
    assert (second["show_rate"].value, second["close_rate"].value, second["roi"].value) == (
        Decimal("1.000000"), Decimal("0.000000"), Decimal("-1.000000"))
    assert second["cost_per_acquisition"].value is None  # no closed call: undefined, not zero


def test_baseline_is_the_previous_month_with_a_trend(bistro) -> None:  # type: ignore[no-untyped-def]
    session, _, c1, _ = bistro
    report = reporting.build_report(session=session, group_by="campaign", tz=LA, period="month",
                                    anchor=date(2026, 10, 20), now=NOW)
    figures = next(g for g in report.groups if g.key == c1.id).figures
    assert (figures["show_rate"].baseline, figures["show_rate"].trend) == (Decimal("0.000000"), "up")
    assert (figures["roi"].baseline, figures["roi"].trend) == (Decimal("-1.000000"), "up")
    assert figures["close_rate"].baseline is None and figures["close_rate"].trend is None


def test_calls_not_yet_due_do_not_count_as_shown_or_missed(bistro) -> None:  # type: ignore[no-untyped-def]
    session, sub, *_ = bistro
    mid_october = datetime(2026, 10, 15, tzinfo=UTC)
    report = reporting.build_report(session=session, group_by="sub_account", tz=LA, period="month",
                                    anchor=date(2026, 10, 1), now=mid_october)
    [group] = report.groups
    # due by Oct 15: Oct 1, 2, 3 (shown) and Oct 10 (closed)
    assert (group.key, group.figures["show_rate"].value, group.figures["close_rate"].value) == (
        sub.id, Decimal("1.000000"), Decimal("0.250000"))


def test_custom_range_and_quarter_and_week_bounds(bistro) -> None:  # type: ignore[no-untyped-def]
    session, *_ = bistro
    custom = reporting.build_report(session=session, group_by="agency", tz=LA, start=la(2026, 10, 1, 0),
                                    end=la(2026, 10, 8, 0), now=NOW, metrics=["booked_calls"])
    # Oct 1 00:30, Oct 2 and Oct 3; the Sep 30 23:30 call falls in the baseline week
    assert (custom.groups[0].figures["booked_calls"].value, custom.groups[0].figures["booked_calls"].baseline) == (
        Decimal(3), Decimal(1))
    assert (custom.baseline_start, custom.baseline_end) == (la(2026, 9, 24, 0), la(2026, 10, 1, 0))
    assert reporting.period_bounds("quarter", date(2026, 11, 3), LA)[0] == la(2026, 10, 1, 0)
    assert reporting.period_bounds("week", date(2026, 11, 5), LA) == (la(2026, 11, 2, 0), la(2026, 11, 9, 0))


def test_persisted_metrics_carry_their_formula(bistro, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    session, sub, c1, _ = bistro
    report = reporting.build_report(session=session, group_by="campaign", tz=LA, period="month",
                                    anchor=date(2026, 10, 1), now=NOW)
    reporting.persist_report(session=session, report=report, agency_id=demo.agency_id, sub_account_id=sub.id,
                             label="2026-10")
    roi = session.scalars(select(PerformanceMetric).where(PerformanceMetric.campaign_id == c1.id,
                                                          PerformanceMetric.metric_type == "roi")).one()
    assert (roi.calculated_value, roi.calculation_method, roi.time_period, roi.trend_direction) == (
        Decimal("2.796204"), "(revenue - refunds - ad spend) / ad spend", "2026-10", "up")


def test_demo_show_rates_match_an_independent_count(scoped, db, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """The service's October show rate per campaign equals a plain Python count over the raw demo rows."""
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    ny = ZoneInfo("America/New_York")
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    report = reporting.build_report(session=session, group_by="campaign", tz="America/New_York", period="month",
                                    anchor=date(2026, 10, 1), now=now)
    rows = db.execute(select(SalesCall.campaign_id, SalesCall.scheduled_date_time, SalesCall.call_outcome)
                      .where(SalesCall.sub_account_id == demo.a)).all()
    expected: dict[object, tuple[int, int]] = {}
    for campaign, when, outcome in rows:
        local = when.astimezone(ny)
        if (local.year, local.month) == (2026, 10) and when <= now:
            due, shown = expected.get(campaign, (0, 0))
            expected[campaign] = (due + 1, shown + (outcome in ("completed", "closed")))
    got = {g.key: g.figures["show_rate"].value for g in report.groups}
    assert got == {k: (Decimal(s) / Decimal(d)).quantize(Decimal("0.000001")) for k, (d, s) in expected.items()}
    assert len(got) >= 3


def test_monthly_buckets_cut_at_local_midnight(bistro) -> None:  # type: ignore[no-untyped-def]
    session, _, c1, _ = bistro
    by_month = reporting.tallies(session=session, start=la(2026, 9, 1, 0), end=la(2026, 11, 1, 0),
                                 group_by="campaign", now=NOW, grain="month", tz=LA)
    september, october = by_month[(c1.id, datetime(2026, 9, 1))], by_month[(c1.id, datetime(2026, 10, 1))]
    assert (september.booked, september.ad_spend) == (1, Decimal("100.00"))
    assert (october.booked, october.closed, october.value("roi")) == (5, 2, Decimal("2.796204"))
