"""What to offer a lead who asked for a time: the nearest free slots across the range, only inside the window
they gave, and why the time they asked for is not free."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.calendars import Calendar
from services.availability import why_not_free
from services.availability_offer import Offer, offer_slots
from tests.conftest import Demo
from tests.factories import book, make_calendar, make_service, only_these_calendars

pytestmark = pytest.mark.integration

CHI, NY = ZoneInfo("America/Chicago"), ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 09:00 in Chicago
MON, WED, SUN = date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 29)
HOLIDAY = date(2026, 12, 1)


def at(day: date, hour: int, minute: int = 0, tz: ZoneInfo = CHI) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def hm(offer: Offer) -> list[str]:
    return [s.local_start.strftime("%a %H:%M") for s in offer.slots]


@pytest.fixture
def shop(a, demo: Demo) -> Calendar:  # type: ignore[no-untyped-def]
    """Open Monday to Friday 09:00-20:00 in Chicago, 30-minute slots, 2 hours' notice, 30 days ahead."""
    only_these_calendars(a)
    return make_calendar(a, demo.a, name="Front desk", closed_dates=[HOLIDAY], min_notice_minutes=120,
                         booking_window_days=30)


def ask(a, **kwargs) -> Offer:  # type: ignore[no-untyped-def]
    args = {"start": WED, "end": WED + timedelta(days=6), "timezone": "America/Chicago", "now": NOW, **kwargs}
    return offer_slots(session=a, **args)


def test_a_free_3pm_is_offered_itself_with_its_neighbours_not_the_morning(a, shop) -> None:  # type: ignore[no-untyped-def]
    offer = ask(a, preferred=at(WED, 15), limit=4)
    assert offer.requested is not None
    assert (offer.requested.free, offer.requested.reason) == (True, None)
    assert offer.requested.start == at(WED, 15)
    # 14:30 and 15:30 are equally near: the later comes first, so the fourth place goes to 16:00, not 14:00
    assert hm(offer) == ["Wed 14:30", "Wed 15:00", "Wed 15:30", "Wed 16:00"]
    assert all(s.calendar_id == shop.id for s in offer.slots)
    assert offer.more_available


def test_a_taken_3pm_says_taken_and_offers_the_nearest_free_times(a, shop) -> None:  # type: ignore[no-untyped-def]
    book(a, shop, at(WED, 15))
    offer = ask(a, preferred=at(WED, 15), limit=4)
    assert offer.requested is not None
    assert (offer.requested.free, offer.requested.reason) == (False, "taken")
    assert hm(offer) == ["Wed 14:00", "Wed 14:30", "Wed 15:30", "Wed 16:00"]


def test_nearest_looks_across_the_whole_range_not_only_the_first_day(a, shop, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    for half_hour in range(22):  # Wednesday fully booked
        book(a, shop, at(WED, 9) + timedelta(minutes=30 * half_hour))
    offer = ask(a, preferred=at(WED, 19, 30), limit=3)
    assert offer.requested is not None and offer.requested.reason == "taken"
    assert hm(offer) == ["Thu 09:00", "Thu 09:30", "Thu 10:00"]


def test_after_17_offers_only_evening_slots_spread_over_several_days(a, shop) -> None:  # type: ignore[no-untyped-def]
    offer = ask(a, after=time(17), limit=8)
    assert len(offer.slots) == 8 and offer.requested is None
    assert all(s.local_start.time() >= time(17) for s in offer.slots)
    assert len({s.local_start.date() for s in offer.slots}) >= 3
    assert offer.slots[0].local_start == at(WED, 17)
    assert [s.start for s in offer.slots] == sorted(s.start for s in offer.slots)


def test_a_window_keeps_each_slot_inside_it(a, shop) -> None:  # type: ignore[no-untyped-def]
    offer = ask(a, after=time(13), before=time(15), limit=30)
    assert offer.slots
    assert {s.local_start.strftime("%H:%M") for s in offer.slots} == {"13:00", "13:30", "14:00", "14:30"}


def test_the_window_is_read_in_the_leads_timezone(a, shop) -> None:  # type: ignore[no-untyped-def]
    offer = ask(a, timezone="America/New_York", after=time(17), before=time(19), limit=30)
    assert offer.slots
    # 17:00 in New York is 16:00 at the Chicago desk: offered; 19:00 New York closes the window at 18:00 Chicago
    assert offer.slots[0].local_start == at(WED, 17, tz=NY)
    assert all(time(17) <= s.local_start.time() <= time(18, 30) for s in offer.slots)
    assert all(s.local_start.utcoffset() == timedelta(hours=-5) for s in offer.slots)


def test_with_neither_the_offer_covers_several_days(a, shop) -> None:  # type: ignore[no-untyped-def]
    offer = ask(a, limit=8)
    assert hm(offer) == ["Wed 09:00", "Wed 09:30", "Wed 10:00", "Thu 09:00", "Thu 09:30", "Thu 10:00",
                         "Fri 09:00", "Fri 09:30"]
    assert offer.more_available


def test_a_short_range_fills_the_offer_past_the_daily_cap(a, shop) -> None:  # type: ignore[no-untyped-def]
    offer = ask(a, end=WED, limit=5)
    assert hm(offer) == ["Wed 09:00", "Wed 09:30", "Wed 10:00", "Wed 10:30", "Wed 11:00"]


@pytest.mark.parametrize(("asked", "reason"), [
    (at(SUN, 15), "closed"),
    (at(WED, 21), "outside_hours"),
    (at(WED, 15, 10), "off_grid"),
    (at(MON, 10), "notice"),
    (at(date(2027, 1, 5), 15), "outside_window"),
    (at(date(2027, 6, 1), 15), "outside_window"),  # too far to widen the range to: its day is read alone
    (at(HOLIDAY, 15), "closed_date"),
    (at(date(2026, 11, 20), 15), "past"),
    (at(WED, 15), None),
])
def test_why_a_time_is_not_free(a, shop, asked: datetime, reason: str | None) -> None:  # type: ignore[no-untyped-def]
    assert why_not_free(session=a, calendar_id=shop.id, start=asked, now=NOW) == reason
    offer = ask(a, preferred=asked)
    assert offer.requested is not None
    assert (offer.requested.free, offer.requested.reason) == (reason is None, reason)


def test_a_naive_time_is_read_in_the_given_timezone(a, shop) -> None:  # type: ignore[no-untyped-def]
    naive = datetime(2026, 11, 25, 16, 0)
    book(a, shop, at(WED, 15))  # 16:00 in New York
    assert why_not_free(session=a, calendar_id=shop.id, start=naive, timezone="America/New_York", now=NOW) == "taken"
    assert why_not_free(session=a, calendar_id=shop.id, start=naive, timezone="America/Chicago", now=NOW) is None


def test_a_busy_block_from_a_synced_calendar_is_taken(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    only_these_calendars(a)
    cal = make_calendar(a, demo.a, busy_blocks=[(WED, time(15), time(16))])
    assert why_not_free(session=a, calendar_id=cal.id, start=at(WED, 15, 30), now=NOW) == "taken"
    assert why_not_free(session=a, calendar_id=cal.id, start=at(WED, 16), now=NOW) is None


def test_a_full_day_is_taken(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    only_these_calendars(a)
    cal = make_calendar(a, demo.a, max_bookings_per_day=1)
    book(a, cal, at(WED, 9))
    assert why_not_free(session=a, calendar_id=cal.id, start=at(WED, 15), now=NOW) == "taken"


def test_a_team_offers_the_slot_while_one_member_is_busy(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    only_these_calendars(a)
    ann = make_calendar(a, demo.a, name="Desk - Ann", team_key="desk")
    bob = make_calendar(a, demo.a, name="Desk - Bob", team_key="desk")
    book(a, ann, at(WED, 15))
    offer = ask(a, preferred=at(WED, 15), limit=3)
    assert offer.requested is not None and offer.requested.free
    three = next(s for s in offer.slots if s.local_start == at(WED, 15))
    assert three.calendar_id == bob.id
    book(a, bob, at(WED, 15))
    offer = ask(a, preferred=at(WED, 15), limit=3)
    assert offer.requested is not None and offer.requested.reason == "taken"
    assert at(WED, 15) not in {s.local_start for s in offer.slots}


def test_a_members_closer_reason_wins(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    only_these_calendars(a)
    ann = make_calendar(a, demo.a, name="Ann", team_key="desk")
    make_calendar(a, demo.a, name="Bob", team_key="desk", hours=[(1, time(9), time(12))])  # Mondays only
    book(a, ann, at(WED, 15))
    offer = ask(a, preferred=at(WED, 15))
    assert offer.requested is not None and offer.requested.reason == "taken"


def test_a_service_with_its_own_calendars_is_offered_only_there(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    only_these_calendars(a)
    facial = make_service(a, demo.a, name="Facial", minutes=60)
    general = make_calendar(a, demo.a, name="General")
    spa = make_calendar(a, demo.a, name="Spa", settings={"service_ids": [str(facial.id)]})
    book(a, spa, at(WED, 15))
    offer = ask(a, service_id=facial.id, preferred=at(WED, 15))
    assert offer.requested is not None and offer.requested.reason == "taken"  # General is free, but not for a facial
    assert offer.slots and {s.calendar_id for s in offer.slots} == {spa.id}
    plain = ask(a, preferred=at(WED, 15))
    assert plain.requested is not None and plain.requested.free
    assert next(s for s in plain.slots if s.local_start == at(WED, 15)).calendar_id == general.id


def test_a_service_no_calendar_offers_says_so(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    only_these_calendars(a)
    facial = make_service(a, demo.a, name="Facial")
    massage = make_service(a, demo.a, name="Massage")
    make_calendar(a, demo.a, name="Spa", settings={"service_ids": [str(facial.id)]})
    offer = ask(a, service_id=massage.id, preferred=at(WED, 15))
    assert offer.slots == [] and offer.requested is not None
    assert (offer.requested.free, offer.requested.reason) == (False, "no_service_calendar")


@pytest.mark.parametrize(("day", "closed"), [(HOLIDAY, "closed_date"), (SUN, "closed"), (WED, None)])
def test_a_day_asked_alone_says_why_it_has_nothing(a, shop, day: date, closed: str | None) -> None:  # type: ignore[no-untyped-def]
    offer = ask(a, start=day, end=day)
    assert offer.closed == closed
    assert bool(offer.slots) == (closed is None)


def test_a_full_day_is_not_called_closed(a, shop) -> None:  # type: ignore[no-untyped-def]
    thursday = WED + timedelta(days=1)
    for hour in range(9, 20):
        for minute in (0, 30):
            book(a, shop, at(thursday, hour, minute))
    offer = ask(a, start=thursday, end=thursday)
    assert (offer.slots, offer.closed) == ([], None)
