"""External calendar sync that works offline: export a calendar as iCalendar, import busy times from one.

Imported busy times become closed availability overrides labelled with the event's UID, so the availability
engine subtracts them like any closure, and re-importing the same feed replaces them instead of piling up.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar as ICalendar
from icalendar import Event
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment, AvailabilityRule, Calendar
from services.errors import InvalidInput, NotFound
from services.storable import storable

PRODID = "-//LeadPilot//Calendar//EN"
IMPORT_PREFIX = "ical:"


def _calendar(session: Session, calendar_id: uuid.UUID) -> Calendar:
    calendar = session.get(Calendar, calendar_id)
    if calendar is None or calendar.deleted_at is not None:
        raise NotFound("No such calendar.")
    return calendar


def export_ics(*, session: Session, calendar_id: uuid.UUID, since: datetime | None = None) -> bytes:
    """The calendar's live appointments from `since` (default: 30 days ago) as an iCalendar feed."""
    calendar = _calendar(session, calendar_id)
    since = since or datetime.now(UTC) - timedelta(days=30)
    feed = ICalendar()
    feed.add("prodid", PRODID)
    feed.add("version", "2.0")
    feed.add("x-wr-calname", calendar.name)
    feed.add("x-wr-timezone", calendar.timezone)
    for appointment in session.scalars(select(Appointment).where(
            Appointment.calendar_id == calendar_id, Appointment.status.in_(LIVE_APPOINTMENT_STATUSES),
            Appointment.deleted_at.is_(None), Appointment.end_time >= since).order_by(Appointment.start_time)):
        event = Event()
        event.add("uid", f"{appointment.id}@leadpilot")
        event.add("dtstamp", appointment.updated_at)
        event.add("dtstart", appointment.start_time.astimezone(UTC))
        event.add("dtend", appointment.end_time.astimezone(UTC))
        event.add("summary", appointment.title)
        event.add("status", "CONFIRMED" if appointment.status == "confirmed" else "TENTATIVE")
        feed.add_component(event)
    return feed.to_ical()


def import_busy_ics(*, session: Session, calendar_id: uuid.UUID, ics: bytes) -> int:
    """Replace the calendar's imported busy times with the feed's events; returns how many closures now exist.
    Timed events close their hours (split per local day); all-day events close whole days; cancelled and
    transparent (free) events are skipped."""
    calendar = _calendar(session, calendar_id)
    zone = ZoneInfo(calendar.timezone)
    try:
        feed = ICalendar.from_ical(ics)
    except ValueError as exc:
        raise InvalidInput("That is not an iCalendar file.") from exc
    closures: list[AvailabilityRule] = []
    for event in feed.walk("VEVENT"):
        if str(event.get("status", "")).upper() == "CANCELLED" or str(event.get("transp", "")).upper() == "TRANSPARENT":
            continue
        uid = storable(str(event.get("uid", "")))[:200] or uuid.uuid4().hex  # a feed's id; stored in a label
        if event.get("dtstart") is None:
            raise InvalidInput("Every event of the file needs a DTSTART.")
        start = event.decoded("dtstart")
        end = event.decoded("dtend") if event.get("dtend") else None
        if not isinstance(start, datetime):  # all-day: [start, end) dates
            last = (end if isinstance(end, date) else start + timedelta(days=1)) - timedelta(days=1)
            day = start
            while day <= last:
                closures.append(_closure(calendar, uid, day))
                day += timedelta(days=1)
            continue
        start = (start if start.tzinfo else start.replace(tzinfo=zone)).astimezone(zone)
        end = (end if isinstance(end, datetime) else start + timedelta(hours=1))
        end = (end if end.tzinfo else end.replace(tzinfo=zone)).astimezone(zone)
        cursor = start
        while cursor < end:
            day_end = datetime.combine(cursor.date() + timedelta(days=1), time(), tzinfo=zone)
            stop = min(end, day_end)
            closures.append(_closure(calendar, uid, cursor.date(), cursor.time(),
                                     stop.time() if stop < day_end else time(23, 59, 59)))
            cursor = stop
    session.execute(delete(AvailabilityRule).where(AvailabilityRule.calendar_id == calendar.id,
                                                   AvailabilityRule.label.startswith(IMPORT_PREFIX)))
    session.add_all(closures)
    calendar.last_synced_at = datetime.now(UTC)
    session.flush()
    return len(closures)


def _closure(calendar: Calendar, uid: str, day: date, start: time | None = None,
             end: time | None = None) -> AvailabilityRule:
    return AvailabilityRule(sub_account_id=calendar.sub_account_id, calendar_id=calendar.id, rule_type="override",
                            valid_from=day, valid_to=day, is_active=False, start_time=start, end_time=end,
                            label=f"{IMPORT_PREFIX}{uid}")
