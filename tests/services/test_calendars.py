"""Booking through the availability engine: offered slots only, races lose gracefully, lifecycle stamped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.calendars import Appointment, AvailabilityRule, Calendar
from models.crm import Contact
from services.availability import available_slots
from services.calendars import BookingRequest, SlotTaken, book_appointment, reschedule_appointment, set_status
from services.errors import Conflict
from tests.factories import book, make_calendar, only_these_calendars

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)



@pytest.fixture
def calendar(a) -> Calendar:  # type: ignore[no-untyped-def]
    cal = a.scalars(select(Calendar).join(AvailabilityRule, AvailabilityRule.calendar_id == Calendar.id)
                    .where(AvailabilityRule.rule_type == "weekly").order_by(Calendar.id).limit(1)).one()
    return cal


@pytest.fixture
def contact(a) -> Contact:  # type: ignore[no-untyped-def]
    return a.scalars(select(Contact).order_by(Contact.id).limit(1)).one()


def _free(a, calendar: Calendar, days: int = 14):  # type: ignore[no-untyped-def]
    day = NOW.date() + timedelta(days=3)
    slots = available_slots(session=a, calendar_id=calendar.id, start=day, end=day + timedelta(days=days), now=NOW)
    assert slots, "demo calendar should have free slots"
    return slots


def test_booking_an_offered_slot_removes_it_from_availability(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    slot = _free(a, calendar)[0]
    booked = book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=calendar.id, contact_id=contact.id, start=slot.start, source="ai_agent"))
    assert (booked.start_time, booked.status) == (slot.start, "scheduled")
    assert booked.sub_account_id == calendar.sub_account_id
    assert slot.start not in {s.start for s in _free(a, calendar)}


def test_a_taken_time_is_refused_with_nearby_alternatives(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    slot = _free(a, calendar)[0]
    request = BookingRequest(calendar_id=calendar.id, contact_id=contact.id, start=slot.start,
                             timezone="America/Los_Angeles")
    book_appointment(session=a, now=NOW, request=request)
    with pytest.raises(SlotTaken) as taken:
        book_appointment(session=a, now=NOW, request=request)
    alternatives = taken.value.extra["alternatives"]
    assert alternatives and all(alt.endswith(("-08:00", "-07:00")) for alt in alternatives)


def test_a_retried_booking_with_the_same_key_returns_the_first(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    slot = _free(a, calendar)[0]
    request = BookingRequest(calendar_id=calendar.id, contact_id=contact.id, start=slot.start,
                             idempotency_key=f"turn-{uuid.uuid4()}")
    first = book_appointment(session=a, now=NOW, request=request)
    assert book_appointment(session=a, now=NOW, request=request).id == first.id


def test_outside_opening_hours_is_refused(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    slot = _free(a, calendar)[0]
    with pytest.raises(SlotTaken):
        book_appointment(session=a, now=NOW, request=BookingRequest(
            calendar_id=calendar.id, contact_id=contact.id, start=slot.start + timedelta(minutes=7)))


def test_reschedule_moves_the_booking_and_frees_the_old_time(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    first, later = _free(a, calendar)[0], _free(a, calendar)[5]
    booked = book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=calendar.id, contact_id=contact.id, start=first.start))
    moved = reschedule_appointment(session=a, appointment_id=booked.id, new_start=later.start, now=NOW)
    a.refresh(booked)
    assert (booked.status, moved.rescheduled_from_id, moved.start_time) == ("rescheduled", booked.id, later.start)
    assert first.start in {s.start for s in _free(a, calendar)}


def test_a_refused_reschedule_changes_nothing(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    slots = _free(a, calendar)
    mine = book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=calendar.id, contact_id=contact.id, start=slots[0].start))
    book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=calendar.id, contact_id=contact.id, start=slots[3].start))
    with pytest.raises(SlotTaken):
        reschedule_appointment(session=a, appointment_id=mine.id, new_start=slots[3].start, now=NOW)
    a.refresh(mine)
    assert mine.status == "scheduled"
    assert a.scalar(select(Appointment).where(Appointment.rescheduled_from_id == mine.id)) is None


def test_lifecycle_is_stamped_and_final_states_stay_final(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    booked = book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=calendar.id, contact_id=contact.id, start=_free(a, calendar)[0].start))
    set_status(session=a, appointment_id=booked.id, status="confirmed", now=NOW)
    set_status(session=a, appointment_id=booked.id, status="cancelled", reason="Sick", now=NOW)
    assert (booked.confirmed_at, booked.cancelled_at, booked.cancellation_reason) == (NOW, NOW, "Sick")
    with pytest.raises(Conflict):
        set_status(session=a, appointment_id=booked.id, status="completed")


def test_a_booking_queues_its_reminder_a_day_ahead_in_the_same_transaction(a, calendar, contact) -> None:  # type: ignore[no-untyped-def]
    from models.conversations import OutboxEvent

    slot = _free(a, calendar)[0]
    booked = book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=calendar.id, contact_id=contact.id, start=slot.start))
    reminder = a.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == booked.id)).one()
    assert (reminder.topic, reminder.available_at, reminder.status) == (
        "appointment.reminder", slot.start - timedelta(hours=24), "pending")


def test_reschedule_onto_the_team_member_the_slot_was_offered_on(a, demo, contact) -> None:  # type: ignore[no-untyped-def]
    only_these_calendars(a)
    ann = make_calendar(a, demo.a, name="Ann", team_key="desk")
    bob = make_calendar(a, demo.a, name="Bob", team_key="desk")
    day = (NOW + timedelta(days=2)).date()
    first = available_slots(session=a, calendar_id=ann.id, start=day, end=day, now=NOW)[0]
    mine = book_appointment(session=a, now=NOW, request=BookingRequest(
        calendar_id=ann.id, contact_id=contact.id, start=first.start))
    later = first.start + timedelta(hours=3)
    book(a, ann, later)  # Ann is busy then; Bob is free
    with pytest.raises(SlotTaken):
        reschedule_appointment(session=a, appointment_id=mine.id, new_start=later, now=NOW)
    moved = reschedule_appointment(session=a, appointment_id=mine.id, new_start=later, now=NOW, calendar_id=bob.id)
    assert (moved.calendar_id, moved.start_time, moved.rescheduled_from_id) == (bob.id, later, mine.id)
