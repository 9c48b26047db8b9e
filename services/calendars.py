"""Calendar bookings: book (race-safe), reschedule, cancel, confirm, complete, no-show.

The exclusion constraint on appointments decides races; the loser gets `SlotTaken` carrying fresh
alternatives computed after the winner committed its row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment, Calendar, Service
from models.conversations import OutboxEvent
from models.crm import Contact
from services.availability import BookingPolicy, available_slots
from services.errors import Conflict, InvalidInput, NotFound

OVERLAP_CONSTRAINT = "ex_appointments_no_overlap"
DEADLOCK = "40P01"
DEADLOCK_RETRIES = 3
REMINDER_LEAD = timedelta(hours=24)
TRANSITIONS: dict[str, set[str]] = {
    "scheduled": {"confirmed", "cancelled", "completed", "no_show", "rescheduled"},
    "confirmed": {"cancelled", "completed", "no_show", "rescheduled"},
    "cancelled": set(),
    "completed": set(),
    "no_show": set(),
    "rescheduled": set(),
}
STAMP = {"confirmed": "confirmed_at", "cancelled": "cancelled_at", "completed": "completed_at",
         "no_show": "no_show_at"}


class SlotTaken(Conflict):
    """The requested time is no longer free; `alternatives` lists the nearest free starts."""


@dataclass(frozen=True)
class BookingRequest:
    """What a booking needs; `idempotency_key` makes a retried booking return the first one."""

    calendar_id: uuid.UUID
    contact_id: uuid.UUID
    start: datetime
    service_id: uuid.UUID | None = None
    title: str | None = None
    timezone: str | None = None
    source: str = "staff"
    notes: str | None = None
    idempotency_key: str | None = None


def get_appointment_or_raise(*, session: Session, appointment_id: uuid.UUID) -> Appointment:
    """The appointment, or NotFound (also when it belongs to another tenant)."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or appointment.deleted_at is not None:
        raise NotFound("No such appointment.")
    return appointment


def _alternatives(session: Session, calendar: Calendar, service_id: uuid.UUID | None, around: datetime,
                  timezone: str | None, now: datetime, limit: int = 3) -> list[str]:
    day = around.astimezone(UTC).date()
    slots = available_slots(session=session, calendar_id=calendar.id, service_id=service_id,
                            start=day - timedelta(days=1), end=day + timedelta(days=7), timezone=timezone, now=now)
    nearest = sorted(slots, key=lambda s: abs((s.start - around).total_seconds()))[:limit]
    return [s.local_start.isoformat() for s in sorted(nearest, key=lambda s: s.start)]


def _is_overlap(exc: IntegrityError) -> bool:
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == OVERLAP_CONSTRAINT


def _check_bookable(session: Session, calendar: Calendar, service: Service | None, start: datetime,
                    timezone: str | None, now: datetime) -> datetime:
    """Return the end of a booking at `start`, or raise SlotTaken if `start` is not an offered slot."""
    policy = BookingPolicy.of(calendar, service)
    day = start.astimezone(UTC).date()
    service_id = service.id if service else None
    free = available_slots(session=session, calendar_id=calendar.id, service_id=service_id,
                           start=day - timedelta(days=1), end=day + timedelta(days=1), timezone=timezone, now=now)
    if not any(s.start == start for s in free):
        raise SlotTaken("That time is not available.",
                        alternatives=_alternatives(session, calendar, service_id, start, timezone, now))
    return start + policy.duration


def book_appointment(*, session: Session, request: BookingRequest, now: datetime | None = None) -> Appointment:
    """Book a slot offered by the availability engine; the database refuses a double booking."""
    now = now or datetime.now(UTC)
    if request.start.tzinfo is None:
        raise InvalidInput("The start time needs a timezone.")
    if request.idempotency_key:
        # retries of one request may arrive together: the first holds the key until it commits, the others then
        # find its appointment (a new statement sees the commit) instead of racing it into a 409
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(
            "appointment:" + request.idempotency_key, 0))))
        existing = session.scalar(select(Appointment).where(Appointment.idempotency_key == request.idempotency_key))
        if existing is not None:
            return existing
    calendar = session.get(Calendar, request.calendar_id)
    if calendar is None or calendar.deleted_at is not None or not calendar.is_active:
        raise NotFound("No such calendar.")
    contact = session.get(Contact, request.contact_id)
    if contact is None or contact.deleted_at is not None:
        raise NotFound("No such contact.")
    service = session.get(Service, request.service_id) if request.service_id else None
    if request.service_id and (service is None or service.deleted_at is not None):
        raise NotFound("No such service.")
    start = request.start.astimezone(UTC)
    end = _check_bookable(session, calendar, service, start, request.timezone, now)
    appointment = Appointment(
        sub_account_id=calendar.sub_account_id, calendar_id=calendar.id, contact_id=contact.id,
        service_id=service.id if service else None, assigned_user_id=calendar.user_id,
        title=request.title or (service.name if service else "Appointment"), start_time=start, end_time=end,
        timezone=request.timezone or contact.timezone, source=request.source, notes=request.notes,
        idempotency_key=request.idempotency_key,
    )
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            with session.begin_nested():
                session.add(appointment)
                session.flush()
            break
        except IntegrityError as exc:
            if not _is_overlap(exc):
                raise
            raise SlotTaken("That time was just taken.", alternatives=_alternatives(
                session, calendar, request.service_id, start, request.timezone, now)) from exc
        except OperationalError as exc:
            # Concurrent conflicting inserts can deadlock inside the exclusion check; Postgres aborts one of
            # them. Retrying settles it: the slot is ours, or the winner's row now refuses us as taken.
            if getattr(exc.orig, "sqlstate", None) != DEADLOCK or attempt == DEADLOCK_RETRIES:
                raise
            if appointment in session:  # rolling back the savepoint normally expunges it already
                session.expunge(appointment)
            appointment = make_transient_copy(appointment)
    schedule_reminder(session=session, appointment=appointment, now=now)
    from services import analytics, webhooks

    analytics.record(session, appointment.sub_account_id, "appointment_booked", contact_id=appointment.contact_id,
                     properties={"appointment_id": str(appointment.id), "calendar_id": str(appointment.calendar_id),
                                 "start": appointment.start_time.isoformat()}, source=appointment.source)
    from services import workflows

    workflows.fire(session, appointment.sub_account_id, "appointment_booked", appointment.contact_id,
                   {"calendar_id": str(appointment.calendar_id)})
    webhooks.emit(session, appointment.sub_account_id, "appointment.booked", {
        "appointment_id": str(appointment.id), "contact_id": str(appointment.contact_id),
        "calendar_id": str(appointment.calendar_id), "start": appointment.start_time.isoformat(),
        "end": appointment.end_time.isoformat(), "title": appointment.title})
    return appointment


def make_transient_copy(appointment: Appointment) -> Appointment:
    """A fresh, unsaved appointment with the same field values (for a retried insert)."""
    columns = {c.key: getattr(appointment, c.key) for c in Appointment.__mapper__.column_attrs
               if c.key not in ("created_at", "updated_at")}
    return Appointment(**columns)


def schedule_reminder(*, session: Session, appointment: Appointment, now: datetime,
                      before: timedelta = REMINDER_LEAD) -> OutboxEvent | None:
    """Queue the reminder for `before` the start, in the same transaction as the booking (the outbox); a
    booking made later than that gets none."""
    due = appointment.start_time - before
    if due <= now:
        return None
    event = OutboxEvent(sub_account_id=appointment.sub_account_id, topic="appointment.reminder",
                        aggregate_type="appointment", aggregate_id=appointment.id, available_at=due,
                        dedupe_key=f"appointment.reminder:{appointment.id}",
                        payload={"appointment_id": str(appointment.id)})
    session.add(event)
    session.flush()
    return event


def set_status(*, session: Session, appointment_id: uuid.UUID, status: str, reason: str | None = None,
               now: datetime | None = None) -> Appointment:
    """Move an appointment along its lifecycle, stamping when it happened."""
    appointment = get_appointment_or_raise(session=session, appointment_id=appointment_id)
    if status not in TRANSITIONS.get(appointment.status, set()):
        raise Conflict(f"An appointment that is {appointment.status} cannot become {status}.")
    appointment.status = status
    if status in STAMP:
        setattr(appointment, STAMP[status], now or datetime.now(UTC))
    if status == "cancelled":
        appointment.cancellation_reason = reason
    session.flush()
    if status in ("cancelled", "no_show"):
        from services import webhooks, workflows

        event = {"appointment_id": str(appointment.id), "calendar_id": str(appointment.calendar_id),
                 "start": appointment.start_time.isoformat(), "reason": reason}
        workflows.fire(session, appointment.sub_account_id, f"appointment_{status}", appointment.contact_id, event)
        if status == "cancelled":
            webhooks.emit(session, appointment.sub_account_id, "appointment.cancelled",
                          {**event, "contact_id": str(appointment.contact_id)})
    return appointment


def reschedule_appointment(*, session: Session, appointment_id: uuid.UUID, new_start: datetime,
                           timezone: str | None = None, now: datetime | None = None,
                           calendar_id: uuid.UUID | None = None) -> Appointment:
    """Move a live appointment to another offered slot: the old row becomes `rescheduled`, a new one is booked
    on `calendar_id` (the calendar the slot was offered on, e.g. another team member's; default the same one);
    if the new time is refused, nothing changes."""
    old = get_appointment_or_raise(session=session, appointment_id=appointment_id)
    if old.status not in LIVE_APPOINTMENT_STATUSES:
        raise Conflict(f"An appointment that is {old.status} cannot be rescheduled.")
    savepoint = session.begin_nested()
    try:
        old.status = "rescheduled"
        session.flush()
        new = book_appointment(session=session, now=now, request=BookingRequest(
            calendar_id=calendar_id or old.calendar_id, contact_id=old.contact_id, start=new_start,
            service_id=old.service_id,
            title=old.title, timezone=timezone or old.timezone, source=old.source, notes=old.notes,
        ))
        new.rescheduled_from_id = old.id
        session.flush()
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return new


def book_round_robin(*, session: Session, team_key: str, request: BookingRequest, now: datetime | None = None
                     ) -> Appointment:
    """Book the team member who is free at the time and has the fewest live bookings that week (ties by
    calendar order, so the choice is deterministic); if a race takes that slot, try the next one."""
    now = now or datetime.now(UTC)
    start = request.start.astimezone(UTC)
    team = session.scalars(select(Calendar).where(Calendar.team_key == team_key, Calendar.is_active,
                                                  Calendar.deleted_at.is_(None)).order_by(Calendar.id)).all()
    if not team:
        raise NotFound("No such team.")
    week = (start - timedelta(days=start.weekday()), start + timedelta(days=7 - start.weekday()))
    load: dict[uuid.UUID, int] = {cal_id: n for cal_id, n in session.execute(
        select(Appointment.calendar_id, func.count()).where(
            Appointment.calendar_id.in_([c.id for c in team]), Appointment.status.in_(LIVE_APPOINTMENT_STATUSES),
            Appointment.deleted_at.is_(None), Appointment.start_time >= week[0], Appointment.start_time < week[1])
        .group_by(Appointment.calendar_id))}
    for calendar in sorted(team, key=lambda c: load.get(c.id, 0)):
        try:
            return book_appointment(session=session, now=now,
                                    request=replace(request, calendar_id=calendar.id, start=start))
        except SlotTaken:
            continue
    raise SlotTaken("Nobody on the team is free then.", alternatives=_alternatives(
        session, team[0], request.service_id, start, request.timezone, now))
