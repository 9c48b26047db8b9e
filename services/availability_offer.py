"""Which free slots to offer a lead: the ones nearest the time they asked for, only inside the daily window they
gave, else a few a day over several days; and, for the time they asked for, whether it is free and why not.

A business offers every active calendar's slots as its own (a round-robin team: any free member's slot is the
business's slot); a service with calendars of its own is offered only on those. The lead's dates and window
are read in the lead's timezone, whatever the calendars' zones.

Ordering rules:
- `preferred`: the `limit` free slots nearest to it over the whole range, equal distances going to the later
  slot (a lead who names 3 PM is more often busy before it than after); shown in chronological order.
- otherwise (a window `after` / `before`, or nothing): only slots inside the window, earliest first, at most
  PER_DAY a day so the offer spans several days; places the cap leaves empty go to the earliest slots left.
  (A day's earliest, not spread over the day: the lead who wants an afternoon says so with `after`, and the
  offline agent's scripted evals count on "the first offer" being the day's first slot.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.calendars import Calendar, Service
from services.availability import (
    MAX_RANGE_DAYS,
    REASONS,
    Slot,
    aware,
    check_range,
    check_timezone,
    load_schedules,
)
from services.errors import InvalidInput, NotFound

PER_DAY = 3
# the `settings` key of a calendar that serves only some services (a list of service ids)
SERVICE_IDS = "service_ids"


class NoCalendar(NotFound):
    """The business has no active calendar at all."""


@dataclass(frozen=True)
class OfferedSlot:
    """A free start (UTC), shown in the lead's timezone, and the calendar to book it on."""

    start: datetime
    local_start: datetime
    calendar_id: uuid.UUID


@dataclass(frozen=True)
class Requested:
    """The time the lead asked for, in their timezone: free, or the reason it is not (REASONS, or
    "no_service_calendar" when no calendar offers the service)."""

    start: datetime
    free: bool
    reason: str | None


@dataclass(frozen=True)
class Offer:
    """What to offer: `slots` in chronological order, whether there are more, and the requested time's answer."""

    slots: list[OfferedSlot]
    more_available: bool
    requested: Requested | None
    closed: str | None = None  # one day asked, nothing free, and every calendar closed that day: why


def service_calendars(calendars: Sequence[Calendar], service_id: uuid.UUID | None) -> list[Calendar]:
    """The calendars a service is booked on: those whose settings list it; when none does, those that list no
    services at all (a calendar with a list serves only what it lists). Any calendar without a service."""
    if service_id is None:
        return list(calendars)
    own = [c for c in calendars if str(service_id) in (c.settings or {}).get(SERVICE_IDS, ())]
    return own or [c for c in calendars if SERVICE_IDS not in (c.settings or {})]


def team_reason(reasons: Sequence[str | None]) -> str | None:
    """The business's answer over its calendars: free if any one is, else the reason of the calendar that came
    closest (the latest check that failed, in REASONS order)."""
    if not reasons or any(r is None for r in reasons):
        return None
    return max((r for r in reasons if r is not None), key=REASONS.index)


def in_window(slot: Slot, duration: timedelta, after: time | None, before: time | None) -> bool:
    """Whether the slot starts at or after `after` and ends by `before`, on the lead's clock."""
    local = slot.local_start
    if after is not None and local.time() < after:
        return False
    if before is not None:
        ends = (slot.start + duration).astimezone(local.tzinfo)
        if ends.date() != local.date() or ends.time() > before:
            return False
    return True


def nearest(slots: Sequence[OfferedSlot], preferred: datetime, limit: int) -> list[OfferedSlot]:
    """The `limit` slots nearest `preferred`; a tie goes to the later one."""
    return sorted(slots, key=lambda s: (abs((s.start - preferred).total_seconds()), -s.start.timestamp()))[:limit]


def spread(slots: Sequence[OfferedSlot], limit: int) -> list[OfferedSlot]:
    """A day's PER_DAY earliest slots, day after day (`slots` in order), topped up from the earliest slots left
    when the cap leaves places empty."""
    days: dict[date, list[OfferedSlot]] = {}
    for slot in slots:
        days.setdefault(slot.local_start.date(), []).append(slot)
    picked: list[OfferedSlot] = []
    for day in days.values():
        picked += day[:PER_DAY]
        if len(picked) >= limit:
            break
    chosen = set(picked[:limit])
    chosen.update([s for s in slots if s not in chosen][:limit - len(chosen)])
    return list(chosen)


def offer_slots(
    *,
    session: Session,
    start: date,
    end: date,
    timezone: str,
    service_id: uuid.UUID | None = None,
    preferred: datetime | None = None,
    after: time | None = None,
    before: time | None = None,
    limit: int = 8,
    now: datetime | None = None,
) -> Offer:
    """The slots to offer a lead over their days start..end, widened to the preferred day when that keeps the range
    within MAX_RANGE_DAYS; see the module doc for the order.

    A naive `preferred` is wall-clock time in `timezone`, the lead's.
    """
    check_timezone(timezone)
    lead_tz, now = ZoneInfo(timezone), now or datetime.now(UTC)
    if after is not None and before is not None and after >= before:
        raise InvalidInput("`after` must be earlier than `before`.")
    asked = aware(preferred, timezone).astimezone(lead_tz) if preferred is not None else None
    if asked is not None and (max(end, asked.date()) - min(start, asked.date())).days <= MAX_RANGE_DAYS:
        start, end = min(start, asked.date()), max(end, asked.date())
    check_range(start, end)
    service = session.get(Service, service_id) if service_id else None
    if service_id and (service is None or service.deleted_at is not None):
        raise NotFound("No such service.")
    active = session.scalars(select(Calendar).where(Calendar.is_active, Calendar.deleted_at.is_(None))
                             .order_by(Calendar.name, Calendar.id)).all()
    if not active:
        raise NoCalendar("This business has no bookable calendar.")
    calendars = service_calendars(active, service_id)
    # the lead's day D is D-1..D+1 somewhere on Earth: compute those calendar days, keep the lead's
    schedules = load_schedules(session=session, calendars=calendars, service=service,
                               start=start - timedelta(days=1), end=end + timedelta(days=1))
    free: dict[datetime, OfferedSlot] = {}
    for calendar in calendars:  # in name order: the first free member gets the slot
        schedule = schedules[calendar.id]
        for slot in schedule.slots(start - timedelta(days=1), end + timedelta(days=1), now=now, timezone=timezone):
            if start <= slot.local_start.date() <= end and in_window(slot, schedule.policy.duration, after, before):
                free.setdefault(slot.start, OfferedSlot(slot.start, slot.local_start, calendar.id))
    candidates = [free[k] for k in sorted(free)]
    chosen = nearest(candidates, asked, limit) if asked is not None else spread(candidates, limit)
    requested = None
    if asked is not None:
        day = asked.date()
        if not start <= day <= end:  # too far from the range to widen it: that day's schedules alone
            schedules = load_schedules(session=session, calendars=calendars, service=service,
                                       start=day - timedelta(days=1), end=day + timedelta(days=1))
        reason = (team_reason([schedules[c.id].why_not_free(asked.astimezone(UTC), now=now) for c in calendars])
                  if calendars else "no_service_calendar")
        requested = Requested(start=asked, free=reason is None, reason=reason)
    closed = None
    if asked is None and start == end and not candidates and calendars:
        reasons = {schedules[c.id].closed_on(start) for c in calendars}
        closed = reasons.pop() if len(reasons) == 1 else None
    return Offer(slots=sorted(chosen, key=lambda s: s.start), more_available=len(candidates) > len(chosen),
                 requested=requested, closed=closed)
