"""Availability engine: the free slots of a calendar for a service, exact across DST.

Rules are wall-clock times in the calendar's (or the rule's) IANA timezone; every instant is computed in
UTC with zoneinfo, so a 09:00-17:00 rule is 09:00-17:00 local on both sides of a DST change. Busy time is
every live appointment widened by the service's buffers; a slot must fit inside an opening, clear all busy
time, respect minimum notice, the booking window and the per-day cap.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment, AvailabilityRule, Calendar, Service
from services.errors import InvalidInput, NotFound

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class BookingPolicy:
    """The knobs that shape slots; a service's values win over its calendar's defaults."""

    duration: timedelta
    interval: timedelta
    buffer_before: timedelta
    buffer_after: timedelta
    min_notice: timedelta
    booking_window: timedelta
    max_per_day: int | None

    @classmethod
    def of(cls, calendar: Calendar, service: Service | None, *, default_minutes: int = 30) -> BookingPolicy:
        """Resolve the policy for booking `service` (or a default-length meeting) on `calendar`."""
        duration = service.duration_minutes if service else default_minutes

        def pick(attr: str) -> int | None:
            own = getattr(service, attr, None) if service else None
            return own if own not in (None, 0) else getattr(calendar, attr)

        return cls(
            duration=timedelta(minutes=duration),
            interval=timedelta(minutes=pick("slot_interval_minutes") or duration),
            buffer_before=timedelta(minutes=pick("buffer_before_minutes") or 0),
            buffer_after=timedelta(minutes=pick("buffer_after_minutes") or 0),
            min_notice=timedelta(minutes=pick("min_notice_minutes") or 0),
            booking_window=timedelta(days=pick("booking_window_days") or 60),
            max_per_day=pick("max_bookings_per_day"),
        )


class Slot(NamedTuple):
    """A bookable [start, end) in UTC; `local_start` shows it in the asker's timezone (a tuple: built by the
    thousand per query)."""

    start: datetime
    end: datetime
    display_tz: ZoneInfo

    @property
    def local_start(self) -> datetime:
        """The start in the asker's (or calendar's) timezone."""
        return self.start.astimezone(self.display_tz)


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `wall` on `day` in `tz`.

    fold=0 (PEP 495): a wall time skipped by spring-forward lands after the gap, a repeated one at fall-back
    takes its first occurrence.
    """
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def opening_windows(rules: Sequence[AvailabilityRule], day: date, calendar_tz: ZoneInfo) -> list[Interval]:
    """The open [start, end) UTC windows of `day`: weekly rules plus extra hours, minus closures."""
    dow = (day.weekday() + 1) % 7  # 0 = Sunday, as the seed
    overrides = [r for r in rules if r.rule_type == "override" and r.valid_from and r.valid_from <= day
                 <= (r.valid_to or r.valid_from)]
    windows: list[Interval] = []
    if not any(not r.is_active and r.start_time is None for r in overrides):
        windows += [_window(r, day, calendar_tz) for r in rules
                    if r.rule_type == "weekly" and r.is_active and r.day_of_week == dow]
    windows += [_window(r, day, calendar_tz) for r in overrides if r.is_active]
    closed = [_window(r, day, calendar_tz) for r in overrides if not r.is_active and r.start_time is not None]
    return _subtract(_merge(windows), closed)


def _window(rule: AvailabilityRule, day: date, calendar_tz: ZoneInfo) -> Interval:
    tz = ZoneInfo(rule.timezone) if rule.timezone else calendar_tz
    assert rule.start_time is not None and rule.end_time is not None
    return local_instant(day, rule.start_time, tz), local_instant(day, rule.end_time, tz)


def _merge(windows: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(w for w in windows if w[0] < w[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(windows: list[Interval], holes: list[Interval]) -> list[Interval]:
    for hole_start, hole_end in holes:
        out: list[Interval] = []
        for start, end in windows:
            if hole_end <= start or hole_start >= end:
                out.append((start, end))
                continue
            if start < hole_start:
                out.append((start, hole_start))
            if hole_end < end:
                out.append((hole_end, end))
        windows = out
    return windows


def compute_slots(
    *,
    rules: Sequence[AvailabilityRule],
    calendar_tz: str,
    policy: BookingPolicy,
    busy: Sequence[Interval],
    range_start: date,
    range_end: date,
    now: datetime,
    display_tz: str | None = None,
) -> list[Slot]:
    """Pure slot computation over already-loaded rules and busy appointments (UTC, unwidened).

    The inner loop runs on integer epoch seconds with one forward sweep over the merged busy list per
    opening window: thousands of candidates cost a few hundred microseconds.
    """
    cal_tz, show_tz = ZoneInfo(calendar_tz), ZoneInfo(display_tz or calendar_tz)
    blocked = _merge((s - policy.buffer_before, e + policy.buffer_after) for s, e in busy)
    b_start = [int(s.timestamp()) for s, _ in blocked]
    b_end = [int(e.timestamp()) for _, e in blocked]
    duration, step = int(policy.duration.total_seconds()), int(policy.interval.total_seconds())
    earliest = int((now + policy.min_notice).timestamp())
    latest = int((now + policy.booking_window).timestamp())
    per_day: dict[date, int] = {}
    for s, _ in busy:
        local_day = s.astimezone(cal_tz).date()
        per_day[local_day] = per_day.get(local_day, 0) + 1

    slots: list[Slot] = []
    day = range_start
    while day <= range_end:
        if policy.max_per_day is None or per_day.get(day, 0) < policy.max_per_day:
            for open_start, open_end in opening_windows(rules, day, cal_tz):
                start, close = int(open_start.timestamp()), int(open_end.timestamp())
                begins = open_start  # the same instant as `start`, advanced in lockstep (cheaper than converting)
                j = bisect.bisect_right(b_end, start)
                while start + duration <= close:
                    while j < len(b_end) and b_end[j] <= start:
                        j += 1
                    free = j == len(b_start) or b_start[j] >= start + duration
                    if free and earliest <= start <= latest:
                        slots.append(Slot(start=begins, end=begins + policy.duration, display_tz=show_tz))
                    start += step
                    begins += policy.interval
        day += timedelta(days=1)
    return slots


def available_slots(
    *,
    session: Session,
    calendar_id: uuid.UUID,
    start: date,
    end: date,
    service_id: uuid.UUID | None = None,
    timezone: str | None = None,
    now: datetime | None = None,
) -> list[Slot]:
    """Free slots of a calendar between two dates (calendar-local, inclusive), shown in `timezone`."""
    if end < start:
        raise InvalidInput("The end date is before the start date.")
    if (end - start).days > 92:
        raise InvalidInput("Ask for at most 92 days of availability at a time.")
    # one round trip for both: this function sits on the booking hot path
    found = session.execute(
        select(Calendar, Service)
        .outerjoin(Service, and_(Service.id == service_id, Service.deleted_at.is_(None)))
        .where(Calendar.id == calendar_id, Calendar.deleted_at.is_(None))
    ).first()
    if found is None:
        raise NotFound("No such calendar.")
    calendar, service = found
    if service_id and service is None:
        raise NotFound("No such service.")
    if timezone:
        try:
            ZoneInfo(timezone)
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"Unknown timezone {timezone!r}.") from exc
    policy = BookingPolicy.of(calendar, service)
    rules = session.scalars(select(AvailabilityRule).where(
        AvailabilityRule.calendar_id == calendar_id, AvailabilityRule.deleted_at.is_(None))).all()
    cal_tz = ZoneInfo(calendar.timezone)
    lo = local_instant(start, time.min, cal_tz) - timedelta(days=1)
    hi = local_instant(end, time.min, cal_tz) + timedelta(days=2)
    busy = session.execute(select(Appointment.start_time, Appointment.end_time).where(
        Appointment.calendar_id == calendar_id,
        Appointment.status.in_(LIVE_APPOINTMENT_STATUSES),
        Appointment.deleted_at.is_(None),
        Appointment.end_time > lo,
        Appointment.start_time < hi,
    )).all()
    return compute_slots(
        rules=rules, calendar_tz=calendar.timezone, policy=policy, busy=[(s, e) for s, e in busy],
        range_start=start, range_end=end, now=now or datetime.now(UTC), display_tz=timezone,
    )
