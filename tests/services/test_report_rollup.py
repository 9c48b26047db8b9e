"""The daily rollup that serves reports gives exactly what the raw rows give, through every kind of change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from models.db import TenantScope, apply_scope
from models.performance import Campaign, FinancialRecord, ReportDailyRollup, SalesCall
from models.tenancy import SubAccount
from services import reporting
from tests.conftest import Demo

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 24, 15, 7, tzinfo=UTC)
START, END = datetime(2026, 5, 1, 4, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)


def both(session: Any, **kw: Any) -> tuple[dict[Any, Any], dict[Any, Any]]:
    args = {"start": START, "end": END, "now": NOW, **kw}
    return (reporting.tallies(session=session, use_rollup=True, **args),
            reporting.tallies(session=session, use_rollup=False, **args))


@pytest.mark.parametrize("grain", ["day", "week", "month", None])
@pytest.mark.parametrize("group_by", ["campaign", "sub_account", "agency"])
def test_agency_wide_rollup_equals_raw_rows(scoped, demo: Demo, grain, group_by) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id))
    # New York matches sub-account A only: B (Chicago) must come from the raw rows
    fast, raw = both(session, group_by=group_by, grain=grain, tz="America/New_York")
    assert fast == raw
    assert sum(t.booked for t in raw.values()) > 500


@pytest.mark.parametrize("tz", ["America/New_York", "America/Chicago", "Asia/Kolkata"])
def test_ranges_that_cut_days_and_other_timezones(scoped, demo: Demo, tz) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    for start, end in ((datetime(2026, 6, 3, 17, 45, tzinfo=UTC), datetime(2026, 9, 9, 1, 5, tzinfo=UTC)),
                       (datetime(2026, 11, 1, 3, tzinfo=UTC), datetime(2026, 11, 25, 23, tzinfo=UTC))):
        fast, raw = both(session, start=start, end=end, group_by="campaign", grain="day", tz=tz)
        assert fast == raw and raw


def test_rollup_follows_inserts_edits_deletes_and_timezone_changes(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    campaign = Campaign(agency_id=demo.agency_id, sub_account_id=demo.a, name=f"Rollup {uuid.uuid4().hex[:6]}",
                        start_date=START)
    session.add(campaign)
    session.flush()
    calls = [SalesCall(sub_account_id=demo.a, campaign_id=campaign.id, call_outcome=outcome,
                       scheduled_date_time=datetime(2026, 10, 1, 3, 30, tzinfo=UTC) + timedelta(days=i))
             for i, outcome in enumerate(["closed", "completed", "no_show", "closed", "scheduled"])]
    money = [FinancialRecord(agency_id=demo.agency_id, sub_account_id=demo.a, campaign_id=campaign.id,
                             transaction_date=datetime(2026, 10, 2, 3, 59, tzinfo=UTC), transaction_type=kind,
                             amount=Decimal(amount), payment_status="paid")
             for kind, amount in (("payment", "500.00"), ("refund", "25.10"), ("ad_spend", "80.00"))]
    session.add_all(calls + money)
    session.flush()
    fast, raw = both(session, group_by="campaign", grain="day", tz="America/New_York")
    assert fast == raw
    assert fast[(campaign.id, datetime(2026, 9, 30))].closed == 1  # 03:30 UTC on Oct 1 is Sep 30 in New York
    assert fast[(campaign.id, datetime(2026, 10, 1))].revenue == Decimal("500.00")

    # every column the totals depend on changes, then rows go
    session.execute(update(SalesCall).where(SalesCall.id == calls[0].id).values(call_outcome="no_show"))
    session.execute(update(SalesCall).where(SalesCall.id == calls[1].id)
                    .values(scheduled_date_time=datetime(2026, 10, 20, 15, tzinfo=UTC), campaign_id=None))
    session.execute(update(SalesCall).where(SalesCall.id == calls[2].id).values(deleted_at=NOW))
    session.execute(delete(SalesCall).where(SalesCall.id == calls[3].id))
    session.execute(update(FinancialRecord).where(FinancialRecord.id == money[0].id).values(payment_status="failed"))
    session.execute(update(FinancialRecord).where(FinancialRecord.id == money[1].id).values(amount=Decimal("30.00")))
    session.execute(delete(FinancialRecord).where(FinancialRecord.id == money[2].id))
    fast, raw = both(session, group_by="campaign", grain="day", tz="America/New_York")
    assert fast == raw
    assert fast[(campaign.id, datetime(2026, 10, 1))].refunds == Decimal("30.00")

    # a move to another timezone re-cuts every day of the sub-account
    apply_scope(session, TenantScope(agency_id=demo.agency_id))
    session.execute(update(SubAccount).where(SubAccount.id == demo.a).values(timezone="Europe/Berlin"))
    apply_scope(session, TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    fast, raw = both(session, group_by="campaign", grain="day", tz="Europe/Berlin")
    assert fast == raw
    assert fast[(campaign.id, datetime(2026, 10, 2))].refunds == Decimal("30.00")


def test_the_application_cannot_write_the_rollup(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import ProgrammingError

    row = a.scalars(select(ReportDailyRollup).limit(1)).one()
    with pytest.raises(ProgrammingError, match="permission denied"):
        a.execute(update(ReportDailyRollup).where(ReportDailyRollup.id == row.id).values(booked=999))
