"""Availability, booking (race-safe), the appointment lifecycle, round robin and iCalendar sync."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import Tenant, sub_account
from api.params import Day, Moment, TimeZone
from api.schemas import row
from services import availability, calendar_sync, calendars
from services.errors import InvalidInput

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["Calendars"])
Read = Annotated[Tenant, Depends(sub_account("calendars.read"))]
Write = Annotated[Tenant, Depends(sub_account("calendars.write"))]


class BookIn(BaseModel):
    calendar_id: uuid.UUID
    contact_id: uuid.UUID
    start: AwareDatetime = Field(description="An offered slot start, with its UTC offset.")
    service_id: uuid.UUID | None = None
    title: str | None = Field(None, max_length=255)
    timezone: TimeZone | None = Field(None, description="The lead's IANA timezone, for confirmations.")
    notes: str | None = None
    idempotency_key: str | None = Field(None, max_length=255, description="A retry with the same key books once.")


class TeamBookIn(BookIn):
    calendar_id: uuid.UUID | None = None  # type: ignore[assignment]  # chosen by the round robin


class RescheduleIn(BaseModel):
    new_start: AwareDatetime
    timezone: TimeZone | None = None


class StatusIn(BaseModel):
    status: Literal["confirmed", "cancelled", "completed", "no_show"]
    reason: str | None = None


def _request(body: BookIn, calendar_id: uuid.UUID) -> calendars.BookingRequest:
    return calendars.BookingRequest(calendar_id=calendar_id, contact_id=body.contact_id, start=body.start,
                                    service_id=body.service_id, title=body.title, timezone=body.timezone,
                                    source="api", notes=body.notes, idempotency_key=body.idempotency_key)


@router.get("/calendars", summary="Calendars of the sub-account")
def list_calendars(t: Read) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from models.calendars import Calendar

    with t.session() as s:
        rows = s.scalars(select(Calendar).where(Calendar.deleted_at.is_(None)).order_by(Calendar.name))
        return [{"id": str(c.id), "name": c.name, "timezone": c.timezone, "kind": c.calendar_kind,
                 "team_key": c.team_key} for c in rows]


@router.get("/calendars/{calendar_id}/slots", summary="Free slots")
def slots(t: Read, calendar_id: uuid.UUID, start: Day, end: Day, service_id: uuid.UUID | None = None,
          timezone: Annotated[TimeZone | None, Query(description="Show slots in this IANA timezone")] = None
          ) -> dict[str, Any]:
    """Free slots between two calendar-local dates (inclusive, at most 92 days): weekly rules, date overrides,
    duration, buffers, interval, minimum notice, booking window and daily cap, minus live appointments."""
    with t.session() as s:
        found = availability.available_slots(session=s, calendar_id=calendar_id, start=start, end=end,
                                             service_id=service_id, timezone=timezone)
        return {"slots": [{"start": x.local_start.isoformat(), "end": x.end.astimezone(x.display_tz).isoformat()}
                          for x in found]}


@router.post("/appointments", status_code=201, summary="Book an appointment")
def book(t: Write, body: BookIn) -> dict[str, Any]:
    """Only an offered slot can be booked. When another booking wins the slot first, the answer is 409 with
    `alternatives`: the nearest free starts."""
    with t.session() as s:
        return row(calendars.book_appointment(session=s, request=_request(body, body.calendar_id)))


@router.post("/teams/{team_key}/appointments", status_code=201, summary="Book with a team (round robin)")
def book_team(t: Write, team_key: str, body: TeamBookIn) -> dict[str, Any]:
    """The free member with the fewest bookings that week gets it."""
    with t.session() as s:
        request = _request(body, uuid.UUID(int=0))
        return row(calendars.book_round_robin(session=s, team_key=team_key, request=request))


@router.get("/appointments", summary="Appointments in a time range (the calendar's week view)")
def list_appointments(t: Read, start: Moment, end: Moment,
                      calendar_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Every appointment starting in [start, end), with its lead's name, oldest first (at most 500)."""
    from sqlalchemy import select

    from models.calendars import Appointment, Calendar
    from models.crm import Contact

    if end <= start or (end - start).days > 62:
        raise InvalidInput("end must be after start, at most 62 days later.", field="end")
    with t.session() as s:
        query = (select(Appointment, Contact.name, Calendar.name).join(Contact, Contact.id == Appointment.contact_id)
                 .join(Calendar, Calendar.id == Appointment.calendar_id)
                 .where(Appointment.start_time >= start, Appointment.start_time < end))
        if calendar_id:
            query = query.where(Appointment.calendar_id == calendar_id)
        return [{"id": str(a.id), "title": a.title, "start": a.start_time.isoformat(), "end": a.end_time.isoformat(),
                 "status": a.status, "contact": contact, "calendar": calendar}
                for a, contact, calendar in s.execute(query.order_by(Appointment.start_time).limit(500))]


@router.get("/appointments/{appointment_id}", summary="Get an appointment")
def get_appointment(t: Read, appointment_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return row(calendars.get_appointment_or_raise(session=s, appointment_id=appointment_id))


@router.post("/appointments/{appointment_id}/reschedule", status_code=201, summary="Reschedule")
def reschedule(t: Write, appointment_id: uuid.UUID, body: RescheduleIn) -> dict[str, Any]:
    """The old appointment becomes `rescheduled`; the new one is returned."""
    with t.session() as s:
        return row(calendars.reschedule_appointment(session=s, appointment_id=appointment_id,
                                                             new_start=body.new_start, timezone=body.timezone))


@router.post("/appointments/{appointment_id}/status", summary="Confirm, cancel, complete or mark no-show")
def set_status(t: Write, appointment_id: uuid.UUID, body: StatusIn) -> dict[str, Any]:
    with t.session() as s:
        return row(calendars.set_status(session=s, appointment_id=appointment_id, status=body.status,
                                                 reason=body.reason))


@router.get("/calendars/{calendar_id}/export.ics", summary="Export as iCalendar",
            response_class=Response, responses={200: {"content": {"text/calendar": {}}}})
def export(t: Read, calendar_id: uuid.UUID, since: Moment | None = None) -> Response:
    with t.session() as s:
        body = calendar_sync.export_ics(session=s, calendar_id=calendar_id, since=since)
    return Response(body, media_type="text/calendar")


@router.post("/calendars/{calendar_id}/busy", summary="Import busy times from an .ics file")
def import_busy(t: Write, calendar_id: uuid.UUID,
                ics: Annotated[bytes, Body(media_type="text/calendar")]) -> dict[str, Any]:
    """Each busy event closes that time on the calendar (re-importing the same events changes nothing)."""
    with t.session() as s:
        return {"imported": calendar_sync.import_busy_ics(session=s, calendar_id=calendar_id, ics=ics)}
