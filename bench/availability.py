"""30 days of slots for a calendar holding 2,000 appointments: our engine vs a naive Python loop.

Ours: one indexed range query (RLS-scoped, as the application role) + merged busy timeline with bisect.
Baseline: load every appointment of the calendar, test each candidate slot against each row.
Offer: what check_availability runs for "3 PM on the fourth day?" over the same 30 days (the nearest free
slots and why 3 PM is not free), with the SQL statements it issues counted.
Prints one JSON line (see CONVENTIONS.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time as clock
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, event, insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench._db import percentile, scratch_database  # noqa: E402
from models.calendars import Appointment, AvailabilityRule, Calendar, Service  # noqa: E402
from models.crm import Contact  # noqa: E402
from models.db import TenantScope, tenant_session  # noqa: E402
from models.tenancy import Agency, SubAccount  # noqa: E402
from services.availability import BookingPolicy, available_slots, local_instant  # noqa: E402
from services.availability_offer import offer_slots  # noqa: E402

TZ = "America/New_York"


def seed(owner_url: str, appointments: int, rng: random.Random) -> dict[str, uuid.UUID]:
    """One calendar open 08:00-20:00 every day, holding `appointments` non-overlapping bookings over a year."""
    ids = {k: uuid.uuid4() for k in ("agency", "sub", "calendar", "service", "contact")}
    engine = create_engine(owner_url)
    with Session(engine) as s, s.begin():
        s.execute(text_set_replica())
        s.execute(insert(Agency), [{"id": ids["agency"], "name": "Bench", "slug": "bench"}])
        s.execute(insert(SubAccount), [{"id": ids["sub"], "agency_id": ids["agency"], "name": "B", "slug": "b",
                                        "timezone": TZ}])
        s.execute(insert(Contact), [{"id": ids["contact"], "agency_id": ids["agency"], "sub_account_id": ids["sub"],
                                     "first_name": "Lead"}])
        s.execute(insert(Calendar), [{"id": ids["calendar"], "sub_account_id": ids["sub"], "name": "Cal",
                                      "timezone": TZ, "booking_window_days": 400}])
        s.execute(insert(Service), [{"id": ids["service"], "sub_account_id": ids["sub"], "name": "Consult",
                                     "duration_minutes": 30, "buffer_before_minutes": 10, "buffer_after_minutes": 10,
                                     "slot_interval_minutes": 15, "booking_window_days": 400}])
        s.execute(insert(AvailabilityRule), [
            {"sub_account_id": ids["sub"], "calendar_id": ids["calendar"], "rule_type": "weekly", "day_of_week": d,
             "start_time": time(8), "end_time": time(20)} for d in range(7)])
        grid = [time(8 + h // 2, 30 * (h % 2)) for h in range(24)]
        first = date(2027, 1, 1) - timedelta(days=182)
        taken: set[tuple[date, time]] = set()
        while len(taken) < appointments:
            taken.add((first + timedelta(days=rng.randrange(365)), rng.choice(grid)))
        rows = []
        for day, at in sorted(taken):
            start = local_instant(day, at, ZoneInfo(TZ))
            rows.append({"sub_account_id": ids["sub"], "calendar_id": ids["calendar"], "contact_id": ids["contact"],
                         "service_id": ids["service"], "title": "Consult", "start_time": start,
                         "end_time": start + timedelta(minutes=30),
                         "status": rng.choice(["scheduled", "confirmed", "completed"])})
        s.execute(insert(Appointment), rows)
    engine.dispose()
    return ids


def text_set_replica():  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    # bulk load without the audit trigger: this is fixture data, not user activity
    return text("SET LOCAL session_replication_role = replica")


def naive_slots(session: Session, calendar_id: uuid.UUID, service_id: uuid.UUID, start: date, days: int,
                now: datetime) -> list[datetime]:
    """Baseline: every appointment row, every candidate, nested loops."""
    calendar = session.get(Calendar, calendar_id)
    service = session.get(Service, service_id)
    assert calendar is not None and service is not None
    policy = BookingPolicy.of(calendar, service)
    rules = session.scalars(select(AvailabilityRule).where(AvailabilityRule.calendar_id == calendar_id)).all()
    appts = session.execute(select(Appointment.start_time, Appointment.end_time, Appointment.status)
                            .where(Appointment.calendar_id == calendar_id)).all()
    zone = ZoneInfo(calendar.timezone)
    out = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for rule in rules:
            if rule.day_of_week != (day.weekday() + 1) % 7:
                continue
            slot = local_instant(day, rule.start_time, zone)
            close = local_instant(day, rule.end_time, zone)
            while slot + policy.duration <= close:
                end = slot + policy.duration
                clash = False
                for a_start, a_end, status in appts:
                    if status in ("scheduled", "confirmed") and slot < a_end + policy.buffer_after \
                            and end > a_start - policy.buffer_before:
                        clash = True
                if not clash and slot >= now + policy.min_notice:
                    out.append(slot)
                slot += policy.interval
    return out


@contextmanager
def timed(samples: list[float]) -> Iterator[None]:
    """Append the block's wall time in ms; as timeit does, GC is collected first and paused inside."""
    gc.collect()
    gc.disable()
    t0 = clock.perf_counter()
    try:
        yield
    finally:
        samples.append((clock.perf_counter() - t0) * 1000)
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appointments", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(7)
    with scratch_database("lp_bench_availability") as (owner_url, app_url):
        ids = seed(owner_url, args.appointments, rng)
        engine = create_engine(app_url)
        scope = TenantScope(agency_id=ids["agency"], sub_account_id=ids["sub"])
        now = datetime(2026, 12, 1, tzinfo=UTC)
        ours, base, offer, counts, queries = [], [], [], set(), set()
        statements: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        for run in range(args.runs):
            start = date(2026, 12, 1) + timedelta(days=run % 20)
            with tenant_session(scope, bind=engine) as session, timed(ours):
                slots = available_slots(session=session, calendar_id=ids["calendar"], service_id=ids["service"],
                                        start=start, end=start + timedelta(days=args.days - 1), now=now)
            with tenant_session(scope, bind=engine) as session, timed(base):
                naive = naive_slots(session, ids["calendar"], ids["service"], start, args.days, now)
            if [s.start for s in slots] != naive:
                raise SystemExit(f"engines disagree on run {run}: {len(slots)} vs {len(naive)} slots")
            counts.add(len(slots))
            asked = local_instant(start + timedelta(days=3), time(15), ZoneInfo(TZ))
            with tenant_session(scope, bind=engine) as session, timed(offer):
                statements.clear()
                offered = offer_slots(session=session, start=start, end=start + timedelta(days=args.days - 1),
                                      timezone=TZ, service_id=ids["service"], preferred=asked, now=now)
                queries.add(len(statements))
            if offered.requested is None or offered.requested.free != (asked in {s.start for s in slots}):
                raise SystemExit(f"the offer disagrees with the engine on run {run}")
        engine.dispose()
    print(json.dumps({
        "bench": "availability",
        "ours": {"p50_ms": percentile(ours, 50), "p95_ms": percentile(ours, 95)},
        "baseline": {"p50_ms": percentile(base, 50), "p95_ms": percentile(base, 95)},
        "offer": {"p50_ms": percentile(offer, 50), "p95_ms": percentile(offer, 95)},
        "params": {"appointments": args.appointments, "days": args.days, "runs": args.runs,
                   "slots_per_query": sorted(counts)[len(counts) // 2], "role": "leadpilot_app (RLS on)",
                   "queries_per_offer": max(queries)},
    }))


if __name__ == "__main__":
    main()
