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
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment, AvailabilityRule, Calendar, Service
from services.errors import InvalidInput, NotFound

Interval = tuple[datetime, datetime]
MAX_RANGE_DAYS = 92
# why a time is not free, in the order they are checked: a later reason means the time came closer to being free
REASONS = ("past", "closed_date", "closed", "outside_hours", "off_grid", "outside_window", "notice", "taken")


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

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The earliest and the latest bookable start as of `now` (minimum notice, booking window)."""
        return now + self.min_notice, now + self.booking_window


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


def _overrides(rules: Sequence[AvailabilityRule], day: date) -> list[AvailabilityRule]:
    return [r for r in rules if r.rule_type == "override" and r.valid_from and r.valid_from <= day
            <= (r.valid_to or r.valid_from)]


def closed_all_day(rules: Sequence[AvailabilityRule], day: date) -> bool:
    """Whether a dated override closes the whole of `day` (a holiday): weekly hours do not apply then."""
    return any(not r.is_active and r.start_time is None for r in _overrides(rules, day))


def is_timed_closure(rule: AvailabilityRule) -> bool:
    """A closed stretch of one day (what an imported busy time becomes), as opposed to a whole closed day."""
    return rule.rule_type == "override" and not rule.is_active and rule.start_time is not None


def opening_windows(rules: Sequence[AvailabilityRule], day: date, calendar_tz: ZoneInfo) -> list[Interval]:
    """The open [start, end) UTC windows of `day`: weekly rules plus extra hours, minus closures."""
    dow = (day.weekday() + 1) % 7  # 0 = Sunday, as the seed
    overrides = _overrides(rules, day)
    windows: list[Interval] = []
    if not closed_all_day(rules, day):
        windows += [_window(r, day, calendar_tz) for r in rules
                    if r.rule_type == "weekly" and r.is_active and r.day_of_week == dow]
    windows += [_window(r, day, calendar_tz) for r in overrides if r.is_active]
    closed = [_window(r, day, calendar_tz) for r in overrides if is_timed_closure(r)]
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
    earliest, latest = (int(bound.timestamp()) for bound in policy.bounds(now))
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


@dataclass(frozen=True)
class Schedule:
    """Everything one calendar's slots are computed from for a range of days, loaded once and then asked any
    number of questions (its free slots, why a given time is not one of them) without another query."""

    calendar: Calendar
    policy: BookingPolicy
    rules: Sequence[AvailabilityRule]
    busy: Sequence[Interval]

    def slots(self, start: date, end: date, *, now: datetime, timezone: str | None = None) -> list[Slot]:
        """The free slots of calendar-local days start..end, shown in `timezone`."""
        return compute_slots(rules=self.rules, calendar_tz=self.calendar.timezone, policy=self.policy,
                             busy=self.busy, range_start=start, range_end=end, now=now, display_tz=timezone)

    def closed_on(self, day: date) -> str | None:
        """"closed_date" when the calendar is closed all of `day` (a holiday), "closed" when it has no hours that
        weekday, None when it opens."""
        if closed_all_day(self.rules, day):
            return "closed_date"
        tz = ZoneInfo(self.calendar.timezone)
        return None if opening_windows([r for r in self.rules if not is_timed_closure(r)], day, tz) else "closed"

    def why_not_free(self, start: datetime, *, now: datetime) -> str | None:
        """None when `start` (aware) is a free slot, else the first rule it breaks, checked in REASONS order.

        The answers come from compute_slots itself (run with the rules that do not concern the question lifted)
        and the policy's bounds it applies, so a reason can never disagree with the slots that are offered.
        """
        tz = ZoneInfo(self.calendar.timezone)
        day = start.astimezone(tz).date()
        if start < now:
            return "past"
        if closed_all_day(self.rules, day):
            return "closed_date"
        hours_only = [r for r in self.rules if not is_timed_closure(r)]
        hours = opening_windows(hours_only, day, tz)
        if not hours:
            return "closed"
        # the day's slot grid, as if asked at `start` itself with no notice, no bookings and no daily cap
        grid = compute_slots(rules=hours_only, calendar_tz=self.calendar.timezone, busy=[], range_start=day,
                             range_end=day, now=start,
                             policy=replace(self.policy, min_notice=timedelta(0), max_per_day=None))
        if not any(s.start == start for s in grid):
            fits = any(open_ <= start and start + self.policy.duration <= close for open_, close in hours)
            return "off_grid" if fits else "outside_hours"
        earliest, latest = self.policy.bounds(now)
        if start > latest:
            return "outside_window"
        if start < earliest:
            return "notice"
        if any(s.start == start for s in self.slots(day, day, now=now)):
            return None
        return "taken"  # a booking (with its buffers), a busy block, or the day's cap


def check_range(start: date, end: date) -> None:
    """Refuse a reversed range or one longer than the engine serves at a time."""
    if end < start:
        raise InvalidInput("The end date is before the start date.")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidInput(f"Ask for at most {MAX_RANGE_DAYS} days of availability at a time.")


def check_timezone(timezone: str | None) -> None:
    """Refuse a name zoneinfo does not know."""
    if timezone:
        try:
            ZoneInfo(timezone)
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"Unknown timezone {timezone!r}.") from exc


def load_schedules(*, session: Session, calendars: Sequence[Calendar], service: Service | None, start: date,
                   end: date) -> dict[uuid.UUID, Schedule]:
    """The schedules of several calendars over calendar-local days start..end: two queries in all (rules,
    bookings), however many calendars and slots."""
    ids = [c.id for c in calendars]
    if not ids:
        return {}
    rules: dict[uuid.UUID, list[AvailabilityRule]] = {i: [] for i in ids}
    for rule in session.scalars(select(AvailabilityRule).where(
            AvailabilityRule.calendar_id.in_(ids), AvailabilityRule.deleted_at.is_(None))):
        rules[rule.calendar_id].append(rule)
    # a day before and after: every calendar-local day of the range lies inside, whatever the zone
    lo = datetime.combine(start, time.min, tzinfo=UTC) - timedelta(days=2)
    hi = datetime.combine(end, time.min, tzinfo=UTC) + timedelta(days=3)
    busy: dict[uuid.UUID, list[Interval]] = {i: [] for i in ids}
    for calendar_id, begins, ends in session.execute(
            select(Appointment.calendar_id, Appointment.start_time, Appointment.end_time).where(
                Appointment.calendar_id.in_(ids),
                Appointment.status.in_(LIVE_APPOINTMENT_STATUSES),
                Appointment.deleted_at.is_(None),
                Appointment.end_time > lo,
                Appointment.start_time < hi,
            )):
        busy[calendar_id].append((begins, ends))
    return {c.id: Schedule(calendar=c, policy=BookingPolicy.of(c, service), rules=rules[c.id], busy=busy[c.id])
            for c in calendars}


def _calendar_and_service(session: Session, calendar_id: uuid.UUID,
                          service_id: uuid.UUID | None) -> tuple[Calendar, Service | None]:
    # one round trip for both: this sits on the booking hot path
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
    return calendar, service


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
    check_range(start, end)
    calendar, service = _calendar_and_service(session, calendar_id, service_id)
    check_timezone(timezone)
    schedule = load_schedules(session=session, calendars=[calendar], service=service, start=start, end=end)
    return schedule[calendar.id].slots(start, end, now=now or datetime.now(UTC), timezone=timezone)


def why_not_free(
    *,
    session: Session,
    calendar_id: uuid.UUID,
    start: datetime,
    service_id: uuid.UUID | None = None,
    timezone: str | None = None,
    now: datetime | None = None,
) -> str | None:
    """None if `start` is a free slot of the calendar for the service, else why not (one of REASONS).

    A naive `start` is wall-clock time in `timezone` (default: the calendar's).
    """
    calendar, service = _calendar_and_service(session, calendar_id, service_id)
    check_timezone(timezone)
    start = aware(start, timezone or calendar.timezone)
    day = start.astimezone(ZoneInfo(calendar.timezone)).date()
    schedule = load_schedules(session=session, calendars=[calendar], service=service, start=day, end=day)
    return schedule[calendar.id].why_not_free(start.astimezone(UTC), now=now or datetime.now(UTC))


def aware(moment: datetime, timezone: str) -> datetime:
    """`moment` itself if it carries an offset, else that wall-clock time in `timezone` (fold=0, as local_instant)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(timezone))
