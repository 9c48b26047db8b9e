"""iCalendar export and busy-time import, and round-robin booking across a team."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar as ICalendar
from sqlalchemy import select

from models.calendars import Calendar
from models.crm import Contact
from services import calendar_sync
from services.availability import available_slots
from services.calendars import BookingRequest, SlotTaken, book_appointment, book_round_robin

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
NY = ZoneInfo("America/New_York")
DAY = date(2027, 1, 12)  # a Tuesday: open 10:00-18:00 in sub-account A



@pytest.fixture
def team(a) -> list[Calendar]:  # type: ignore[no-untyped-def]
    return list(a.scalars(select(Calendar).where(Calendar.team_key == "events").order_by(Calendar.id)))


@pytest.fixture
def contact(a) -> Contact:  # type: ignore[no-untyped-def]
    return a.scalars(select(Contact).order_by(Contact.id).limit(1)).one()


def _local_starts(a, calendar: Calendar, day: date) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.start.astimezone(NY).strftime("%H:%M")
            for s in available_slots(session=a, calendar_id=calendar.id, start=day, end=day, now=NOW)]


def test_export_is_a_valid_feed_with_each_live_appointment(a, team, contact) -> None:  # type: ignore[no-untyped-def]
    start = datetime.combine(DAY, time(11), tzinfo=NY)
    booked = book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=team[0].id, contact_id=contact.id, start=start, title="Tasting"))
    feed = ICalendar.from_ical(calendar_sync.export_ics(session=a, calendar_id=team[0].id, since=NOW))
    events = {str(e["uid"]): e for e in feed.walk("VEVENT")}
    mine = events[f"{booked.id}@leadpilot"]
    assert mine.decoded("dtstart") == start.astimezone(UTC) and str(mine["summary"]) == "Tasting"


def test_imported_busy_times_close_slots_and_reimport_replaces_them(a, team) -> None:  # type: ignore[no-untyped-def]
    calendar = team[0]
    assert _local_starts(a, calendar, DAY)[:4] == ["10:00", "10:30", "11:00", "11:30"]
    feed = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
            b"BEGIN:VEVENT\r\nUID:dentist\r\nDTSTART;TZID=America/New_York:20270112T100000\r\n"
            b"DTEND;TZID=America/New_York:20270112T120000\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\n"
            b"BEGIN:VEVENT\r\nUID:offsite\r\nDTSTART;VALUE=DATE:20270113\r\nDTEND;VALUE=DATE:20270115\r\n"
            b"SUMMARY:Offsite\r\nEND:VEVENT\r\n"
            b"BEGIN:VEVENT\r\nUID:cancelled\r\nDTSTART:20270112T170000Z\r\nDTEND:20270112T230000Z\r\n"
            b"STATUS:CANCELLED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    assert calendar_sync.import_busy_ics(session=a, calendar_id=calendar.id, ics=feed) == 3
    assert _local_starts(a, calendar, DAY)[0] == "12:00"
    assert _local_starts(a, calendar, DAY + timedelta(days=1)) == []
    assert _local_starts(a, calendar, DAY + timedelta(days=2)) == []
    assert "17:00" in _local_starts(a, calendar, DAY)  # the cancelled event blocks nothing
    only_dentist = feed.split(b"BEGIN:VEVENT\r\nUID:offsite")[0] + b"END:VCALENDAR\r\n"
    assert calendar_sync.import_busy_ics(session=a, calendar_id=calendar.id, ics=only_dentist) == 1
    assert _local_starts(a, calendar, DAY + timedelta(days=1))[0] == "10:00"


def test_round_robin_spreads_bookings_and_then_reports_the_team_full(a, team, contact) -> None:  # type: ignore[no-untyped-def]
    assert len(team) == 2
    free = [{s.start for s in available_slots(session=a, calendar_id=c.id, start=DAY, end=DAY, now=NOW)} for c in team]
    start = min(free[0] & free[1])  # the demo already books this week: take a time both are free
    request = BookingRequest(calendar_id=team[0].id, contact_id=contact.id, start=start)
    first = book_round_robin(session=a, team_key="events", request=request, now=NOW)
    second = book_round_robin(session=a, team_key="events", request=request, now=NOW)
    assert {first.calendar_id, second.calendar_id} == {c.id for c in team}
    with pytest.raises(SlotTaken):
        book_round_robin(session=a, team_key="events", request=request, now=NOW)
