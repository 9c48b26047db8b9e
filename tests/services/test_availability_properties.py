"""Properties of the availability engine, over generated rules, appointments and policies."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from models.calendars import AvailabilityRule
from services.availability import BookingPolicy, compute_slots

TZS = ("America/New_York", "Europe/Berlin")
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # before every day below, within the booking window
# 2026 DST transitions: New York Mar 8 / Nov 1, Berlin Mar 29 / Oct 25
DST_DAYS = {
    "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),
    "Europe/Berlin": (date(2026, 3, 29), date(2026, 10, 25)),
}


def weekly(dow: int, start: time, end: time) -> AvailabilityRule:
    return AvailabilityRule(rule_type="weekly", day_of_week=dow, start_time=start, end_time=end, is_active=True)


def policy(
    duration: int = 30,
    interval: int | None = None,
    before: int = 0,
    after: int = 0,
    notice: int = 0,
    window_days: int = 400,
    max_per_day: int | None = None,
) -> BookingPolicy:
    return BookingPolicy(
        duration=timedelta(minutes=duration),
        interval=timedelta(minutes=interval or duration),
        buffer_before=timedelta(minutes=before),
        buffer_after=timedelta(minutes=after),
        min_notice=timedelta(minutes=notice),
        booking_window=timedelta(days=window_days),
        max_per_day=max_per_day,
    )


hours = st.integers(min_value=0, max_value=22)
rule_st = st.builds(
    lambda dow, h, span: weekly(dow, time(h), time(min(h + span, 23), 59 if h + span >= 23 else 0)),
    st.integers(0, 6),
    hours,
    st.integers(1, 10),
)
policy_st = st.builds(
    policy,
    duration=st.sampled_from([15, 30, 45, 60, 90]),
    interval=st.sampled_from([None, 10, 15, 30]),
    before=st.sampled_from([0, 5, 15]),
    after=st.sampled_from([0, 10, 30]),
)


@st.composite
def scenario(draw):  # type: ignore[no-untyped-def]
    tz = draw(st.sampled_from(TZS))
    day = draw(st.sampled_from(DST_DAYS[tz])) + timedelta(days=draw(st.integers(-3, 3)))
    base = datetime.combine(day, time(0), tzinfo=UTC)
    busy = []
    for _ in range(draw(st.integers(0, 12))):
        start = base + timedelta(minutes=draw(st.integers(-600, 6 * 24 * 60)) // 5 * 5)
        busy.append((start, start + timedelta(minutes=draw(st.sampled_from([15, 30, 60, 120])))))
    return tz, day, draw(st.lists(rule_st, min_size=1, max_size=6)), busy, draw(policy_st)


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_no_slot_touches_an_appointment_plus_buffers(case) -> None:  # type: ignore[no-untyped-def]
    tz, day, rules, busy, pol = case
    slots = compute_slots(
        rules=rules, calendar_tz=tz, policy=pol, busy=busy, range_start=day, range_end=day + timedelta(days=3), now=NOW
    )
    SEEN["slots"] += len(slots)
    for slot in slots:
        for start, end in busy:
            assert slot.end <= start - pol.buffer_before or slot.start >= end + pol.buffer_after


SEEN = {"slots": 0}


def test_the_properties_above_saw_real_slots() -> None:
    assert SEEN["slots"] > 1000


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_every_slot_lies_inside_a_rule_in_local_wall_time(case) -> None:  # type: ignore[no-untyped-def]
    tz, day, rules, busy, pol = case
    zone = ZoneInfo(tz)
    slots = compute_slots(
        rules=rules, calendar_tz=tz, policy=pol, busy=busy, range_start=day, range_end=day + timedelta(days=3), now=NOW
    )
    for slot in slots:
        assert slot.end - slot.start == pol.duration
        day = slot.start.astimezone(zone).date()
        dow = (day.weekday() + 1) % 7
        # instants, not wall readings: a rule ending at 02:00 on spring-forward day ends at the instant shown 03:00;
        # touching rules form one opening, so containment is checked against their union
        union: list[list[datetime]] = []
        openings = sorted(
            (datetime.combine(day, r.start_time, tzinfo=zone), datetime.combine(day, r.end_time, tzinfo=zone))
            for r in rules
            if r.day_of_week == dow
        )
        for start, end in openings:
            if union and start <= union[-1][1]:
                union[-1][1] = max(union[-1][1], end)
            else:
                union.append([start, end])
        assert any(start <= slot.start and slot.end <= end for start, end in union), (slot, rules)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TZS), st.integers(0, 1))
def test_business_hours_stay_local_across_dst(tz: str, which: int) -> None:
    transition = DST_DAYS[tz][which]
    rules = [weekly(d, time(9), time(17)) for d in range(7)]
    slots = compute_slots(
        rules=rules,
        calendar_tz=tz,
        policy=policy(60),
        busy=[],
        range_start=transition - timedelta(days=1),
        range_end=transition + timedelta(days=1),
        now=NOW,
    )
    by_day: dict[date, list[int]] = {}
    for slot in slots:
        local = slot.start.astimezone(ZoneInfo(tz))
        by_day.setdefault(local.date(), []).append(local.hour)
    assert list(by_day.values()) == [list(range(9, 17))] * 3
    utc_hours = {
        d: sorted({s.start.hour for s in slots if s.start.astimezone(ZoneInfo(tz)).date() == d})[0] for d in by_day
    }
    before, after = utc_hours[transition - timedelta(days=1)], utc_hours[transition + timedelta(days=1)]
    assert abs(before - after) == 1  # the same local 09:00 is a different UTC hour after the change


def test_a_rule_inside_the_spring_forward_gap_starts_after_the_gap() -> None:
    day = date(2026, 3, 8)  # New York: 02:00 -> 03:00
    slots = compute_slots(
        rules=[weekly(0, time(2, 0), time(5, 0))],
        calendar_tz="America/New_York",
        policy=policy(60),
        busy=[],
        range_start=day,
        range_end=day,
        now=NOW,
    )
    local = [s.start.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") for s in slots]
    assert local == ["03:00", "04:00"]


def test_closed_override_removes_the_day_and_extra_hours_add_to_it() -> None:
    monday, tuesday = date(2026, 12, 21), date(2026, 12, 22)
    rules = [
        weekly(1, time(9), time(12)),
        weekly(2, time(9), time(12)),
        AvailabilityRule(rule_type="override", valid_from=monday, valid_to=monday, is_active=False),
        AvailabilityRule(
            rule_type="override",
            valid_from=tuesday,
            valid_to=tuesday,
            is_active=True,
            start_time=time(18),
            end_time=time(20),
        ),
    ]
    slots = compute_slots(
        rules=rules,
        calendar_tz="America/New_York",
        policy=policy(60),
        busy=[],
        range_start=monday,
        range_end=tuesday,
        now=NOW,
    )
    local = [s.start.astimezone(ZoneInfo("America/New_York")).strftime("%a %H") for s in slots]
    assert local == ["Tue 09", "Tue 10", "Tue 11", "Tue 18", "Tue 19"]


def test_notice_window_and_daily_cap() -> None:
    day = date(2026, 12, 1)
    rules = [weekly(d, time(9), time(17)) for d in range(7)]
    now = datetime(2026, 12, 1, 14, 10, tzinfo=UTC)  # 09:10 in New York
    slots = compute_slots(
        rules=rules,
        calendar_tz="America/New_York",
        policy=policy(60, notice=120, window_days=1),
        busy=[],
        range_start=day,
        range_end=day + timedelta(days=3),
        now=now,
    )
    local = [s.start.astimezone(ZoneInfo("America/New_York")) for s in slots]
    assert local[0].strftime("%d %H") == "01 12" and local[-1] <= now + timedelta(days=1)
    busy = [(datetime(2026, 12, 2, 15, tzinfo=UTC), datetime(2026, 12, 2, 16, tzinfo=UTC))] * 2
    capped = compute_slots(
        rules=rules,
        calendar_tz="America/New_York",
        policy=policy(60, max_per_day=2),
        busy=busy,
        range_start=day,
        range_end=day + timedelta(days=1),
        now=NOW,
    )
    assert {s.start.astimezone(ZoneInfo("America/New_York")).day for s in capped} == {1}
