"""All metrics by campaign by month over 1,000,000 sales_calls and 1,000,000 financial_records.

ours:      the reporting service as a client's dashboard runs it: application role, RLS scoped to one of the
           sub-accounts, 12 months, whole past days from the trigger-kept daily rollup, the rest from the
           indexed tables. `agency_p95_ms`: the agency-wide roll-up over all rows and 24 months, the same way.
baseline:  the same aggregate for the same client over un-indexed copies of the two tables.
Prints one JSON line (see CONVENTIONS.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time as clock
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench._db import percentile, scratch_database  # noqa: E402
from models.db import TenantScope, tenant_session  # noqa: E402
from services import reporting  # noqa: E402

TZ = "America/New_York"
LOAD = """
-- fixture rows, not user activity: no audit trail
SET LOCAL session_replication_role = replica;
INSERT INTO agencies (id, name, slug) VALUES (:agency, 'Bench agency', 'bench');
INSERT INTO sub_accounts (id, agency_id, name, slug, timezone)
  SELECT gen_random_uuid(), :agency, 'Client ' || n, 'client-' || n, 'America/New_York'
  FROM generate_series(1, :subs) n;
INSERT INTO campaigns (id, agency_id, sub_account_id, name, start_date, campaign_status)
  SELECT gen_random_uuid(), :agency, s.id, 'Campaign ' || n, timestamptz '2025-01-01', 'active'
  FROM sub_accounts s, generate_series(1, :per_sub) n;
CREATE TEMP TABLE numbered AS
  SELECT id, sub_account_id, (row_number() OVER (ORDER BY id)) - 1 AS rn FROM campaigns;
INSERT INTO sales_calls (id, sub_account_id, campaign_id, scheduled_date_time, duration, call_outcome)
  SELECT gen_random_uuid(), c.sub_account_id, c.id,
         timestamptz '2025-01-01' + (g * 7919 % 63072000) * interval '1 second', 30,
         (ARRAY['completed', 'completed', 'no_show', 'closed', 'scheduled'])[1 + g % 5]
  FROM generate_series(0::bigint, :rows - 1) g JOIN numbered c ON c.rn = g % (SELECT count(*) FROM numbered);
INSERT INTO financial_records (id, agency_id, sub_account_id, campaign_id, transaction_date, amount,
                               transaction_type, payment_status, currency)
  SELECT gen_random_uuid(), :agency, c.sub_account_id, c.id,
         timestamptz '2025-01-01' + (g * 104729 % 63072000) * interval '1 second',
         round((10 + g % 990)::numeric, 2),
         (ARRAY['ad_spend', 'ad_spend', 'payment', 'payment', 'refund'])[1 + g % 5],
         CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'paid' END, 'USD'
  FROM generate_series(0::bigint, :rows - 1) g JOIN numbered c ON c.rn = g % (SELECT count(*) FROM numbered);
-- the load ran with triggers off, so the daily rollup is built in one pass, as after any bulk import
SELECT lp_rollup_rebuild(NULL);
"""
BASELINE = """
SELECT campaign_id, date_trunc('month', timezone(:tz, scheduled_date_time)), count(*),
       count(*) FILTER (WHERE scheduled_date_time <= :now),
       count(*) FILTER (WHERE scheduled_date_time <= :now AND call_outcome IN ('completed', 'closed')),
       count(*) FILTER (WHERE scheduled_date_time <= :now AND call_outcome = 'closed')
FROM noidx.sales_calls WHERE sub_account_id = :sub AND deleted_at IS NULL
  AND scheduled_date_time >= :start AND scheduled_date_time < :end GROUP BY 1, 2;
SELECT campaign_id, date_trunc('month', timezone(:tz, transaction_date)),
       sum(amount) FILTER (WHERE transaction_type = 'payment'), sum(amount) FILTER (WHERE transaction_type = 'refund'),
       sum(amount) FILTER (WHERE transaction_type = 'ad_spend')
FROM noidx.financial_records WHERE sub_account_id = :sub AND payment_status = 'paid'
  AND transaction_date >= :start AND transaction_date < :end GROUP BY 1, 2;
"""


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """Wall times in ms; GC collected before and paused during each run, as timeit does."""
    samples = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        t0 = clock.perf_counter()
        fn()
        samples.append((clock.perf_counter() - t0) * 1000)
        gc.enable()
    return samples


def all_metrics(session: Session, start: datetime, end: datetime, now: datetime) -> int:
    """Every metric for every (campaign, month): what a dashboard renders."""
    buckets = reporting.tallies(session=session, start=start, end=end, group_by="campaign", now=now, grain="month",
                                tz=TZ)
    return len([{m: t.value(m) for m in reporting.METRICS} for t in buckets.values()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in each of the two tables")
    parser.add_argument("--sub-accounts", type=int, default=20)
    parser.add_argument("--campaigns-per-sub-account", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import uuid

    agency = uuid.uuid4()
    with scratch_database("lp_bench_reporting") as (owner_url, app_url):
        owner = create_engine(owner_url)
        t0 = clock.perf_counter()
        with owner.begin() as conn:
            for statement in filter(str.strip, LOAD.split(";\n")):
                conn.execute(text(statement), {"agency": agency, "subs": args.sub_accounts,
                                               "per_sub": args.campaigns_per_sub_account, "rows": args.rows})
        with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE SCHEMA noidx"))
            conn.execute(text("CREATE TABLE noidx.sales_calls AS SELECT * FROM sales_calls"))
            conn.execute(text("CREATE TABLE noidx.financial_records AS SELECT * FROM financial_records"))
            conn.execute(text("VACUUM ANALYZE"))
            sub = conn.execute(text("SELECT id FROM sub_accounts ORDER BY slug LIMIT 1")).scalar_one()
        load_s = clock.perf_counter() - t0
        now = datetime(2026, 12, 31, tzinfo=UTC)
        start, _ = reporting.period_bounds("month", date(2026, 1, 1), TZ)
        end, _ = reporting.period_bounds("month", date(2027, 1, 1), TZ)
        agency_start, _ = reporting.period_bounds("month", date(2025, 1, 1), TZ)
        app = create_engine(app_url)
        groups: list[int] = []

        def ours() -> None:
            with tenant_session(TenantScope(agency_id=agency, sub_account_id=sub), bind=app) as session:
                groups.append(all_metrics(session, start, end, now))

        def agency_wide() -> None:
            with tenant_session(TenantScope(agency_id=agency), bind=app) as session:
                all_metrics(session, agency_start, end, now)

        def baseline() -> None:
            with owner.connect() as conn:
                for statement in filter(str.strip, BASELINE.split(";\n")):
                    conn.execute(text(statement), {"tz": TZ, "now": now, "sub": sub, "start": start, "end": end}).all()

        ours_ms, base_ms = timed(ours, args.runs), timed(baseline, args.runs)
        agency_ms = timed(agency_wide, max(3, args.runs // 4))
        app.dispose()
        owner.dispose()
    print(json.dumps({
        "bench": "reporting",
        "ours": {"p50_ms": percentile(ours_ms, 50), "p95_ms": percentile(ours_ms, 95),
                 "agency_p50_ms": percentile(agency_ms, 50), "agency_p95_ms": percentile(agency_ms, 95)},
        "baseline": {"p50_ms": percentile(base_ms, 50), "p95_ms": percentile(base_ms, 95)},
        "params": {"sales_calls": args.rows, "financial_records": args.rows, "sub_accounts": args.sub_accounts,
                   "campaigns": args.sub_accounts * args.campaigns_per_sub_account, "months": 12,
                   "agency_months": 24, "campaign_month_groups": groups[0] if groups else 0,
                   "load_s": round(load_s, 1), "role": "leadpilot_app (RLS on)"},
    }))


if __name__ == "__main__":
    main()
