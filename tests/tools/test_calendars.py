"""check_availability as the model calls it: the time the lead asked for, the window they gave, and why not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import Any

import pytest
import time_machine

from models.calendars import Calendar
from tests.conftest import Demo
from tests.factories import book, make_calendar, only_these_calendars
from tests.services.test_availability_nearest import CHI, SUN, WED, at
from tools import calendars

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 09:00 in Chicago, the lead's timezone in `run`
KEYS = {"ok", "timezone", "slots", "more_available", "closed", "requested"}


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def desk(run, demo: Demo, clock) -> Calendar:  # type: ignore[no-untyped-def]
    only_these_calendars(run.session)
    return make_calendar(run.session, demo.a, name="Front desk", min_notice_minutes=120, booking_window_days=30)


def starts(result: dict[str, Any]) -> list[str]:
    return [s["start"] for s in result["slots"]]


def test_a_free_3pm_comes_back_itself(run, desk) -> None:  # type: ignore[no-untyped-def]
    result = run(calendars.check_availability, {"from_date": "2026-11-25", "preferred": "2026-11-25T15:00:00",
                                                "limit": 3})
    assert set(result) == KEYS, result
    assert result["requested"] == {"start": "2026-11-25T15:00:00-06:00", "free": True, "reason": None}
    assert starts(result) == ["2026-11-25T14:30:00-06:00", "2026-11-25T15:00:00-06:00", "2026-11-25T15:30:00-06:00"]
    assert result["slots"][1]["calendar_id"] == str(desk.id)


def test_a_taken_3pm_gets_taken_and_the_nearest_times(run, desk) -> None:  # type: ignore[no-untyped-def]
    book(run.session, desk, at(WED, 15))
    result = run(calendars.check_availability, {"from_date": "2026-11-25", "preferred": "2026-11-25T15:00:00-06:00",
                                                "limit": 2})
    assert result["requested"] == {"start": "2026-11-25T15:00:00-06:00", "free": False, "reason": "taken"}
    assert starts(result) == ["2026-11-25T14:30:00-06:00", "2026-11-25T15:30:00-06:00"]


@pytest.mark.parametrize(("preferred", "reason"), [
    (at(SUN, 15).isoformat(), "closed"),
    ("2026-11-23T10:00:00", "notice"),
    ("2027-01-05T15:00:00", "outside_window"),
])
def test_the_reason_a_time_is_not_free(run, desk, preferred: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    result = run(calendars.check_availability, {"from_date": "2026-11-25", "preferred": preferred})
    assert result["ok"] and result["requested"]["reason"] == reason and result["requested"]["free"] is False
    assert result["slots"]


def test_after_five_in_the_leads_timezone_over_several_days(run, desk) -> None:  # type: ignore[no-untyped-def]
    result = run(calendars.check_availability, {"from_date": "2026-11-25", "to_date": "2026-11-30",
                                                "after": "17:00"}, timezone="America/New_York")
    assert result["timezone"] == "America/New_York" and result["requested"] is None
    local = [datetime.fromisoformat(s) for s in starts(result)]
    assert local and all(t.time() >= time(17) and t.utcoffset().total_seconds() == -5 * 3600 for t in local)
    assert local[0].astimezone(CHI).time() == time(16)  # the desk's 16:00 is the lead's 17:00
    assert len({t.date() for t in local}) >= 3


def test_dates_alone_still_work_as_the_offline_agent_calls_it(run, desk) -> None:  # type: ignore[no-untyped-def]
    result = run(calendars.check_availability, {"from_date": "2026-11-25", "to_date": "2026-12-01"})
    assert set(result) == KEYS and result["requested"] is None and len(result["slots"]) == 8
    assert result["more_available"] is True
