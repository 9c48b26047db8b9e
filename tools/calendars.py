"""Calendar tools: availability in the lead's timezone, and booking, moving, cancelling the lead's own
appointments. An appointment of another contact is 'not found' to the lead agent."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment, Service
from services import calendars as booking
from services.availability import aware
from services.availability_offer import NoCalendar, offer_slots
from services.errors import NotFound
from services.reporting import sub_account_timezone
from tools.base import contact_of, failure, guarded
from tools.context import AgentContext, session_for


def _zone(ctx: AgentContext, session: Session) -> str:
    if ctx.timezone:
        return ctx.timezone
    assert ctx.sub_account_id is not None
    return sub_account_timezone(session=session, sub_account_id=ctx.sub_account_id)


def _own_appointment(session: Session, ctx: AgentContext, appointment_id: uuid.UUID) -> Appointment:
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or appointment.deleted_at is not None or appointment.contact_id != ctx.contact_id:
        raise NotFound("No such appointment for this lead.")
    return appointment


class AvailabilityArgs(BaseModel):
    from_date: date | None = Field(default=None, description=(
        "First day to look at, in the lead's timezone (YYYY-MM-DD); defaults to the preferred day, else today"))
    to_date: date | None = Field(default=None, description="Last day to look at; defaults to from_date + 6 days")
    service_id: uuid.UUID | None = Field(default=None, description="Service the lead wants, from list_services")
    limit: int = Field(default=8, ge=1, le=30, description="How many slots to offer")
    preferred: datetime | None = Field(default=None, description=(
        "The exact time the lead asked for, e.g. 2026-11-27T15:00:00 (the lead's local time) or with its offset. "
        "The answer says whether it is free and why not, and offers the free times nearest to it"))
    after: time | None = Field(default=None, description=(
        "Only slots starting at or after this time of day, on the lead's clock (HH:MM), e.g. 17:00 for 'after 5'"))
    before: time | None = Field(default=None, description=(
        "Only slots ending by this time of day, on the lead's clock (HH:MM); with after: a window such as "
        "13:00-17:00"))


@tool(args_schema=AvailabilityArgs)
@guarded("book_appointments")
def check_availability(from_date: date | None = None, to_date: date | None = None,
                       service_id: uuid.UUID | None = None, limit: int = 8, preferred: datetime | None = None,
                       after: time | None = None, before: time | None = None, *,
                       config: RunnableConfig) -> dict[str, Any]:
    """Free appointment slots in the lead's timezone, nearest the time the lead asked for (`preferred`) or inside
    their window (`after`/`before`); says whether the requested time is free and why not. Offer only these."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        tz = _zone(ctx, session)
        first = from_date or (aware(preferred, tz).astimezone(ZoneInfo(tz)).date() if preferred
                              else datetime.now(ZoneInfo(tz)).date())
        try:
            offer = offer_slots(session=session, start=first, end=to_date or first + timedelta(days=6), timezone=tz,
                                service_id=service_id, preferred=preferred, after=after, before=before, limit=limit)
        except NoCalendar as exc:
            return failure("no_calendar", exc.detail)
        requested = offer.requested
        return {"timezone": tz,
                "slots": [{"start": s.local_start, "calendar_id": s.calendar_id} for s in offer.slots],
                "more_available": offer.more_available, "closed": offer.closed,
                "requested": None if requested is None else {"start": requested.start, "free": requested.free,
                                                             "reason": requested.reason}}


class ListServicesArgs(BaseModel):
    pass


@tool(args_schema=ListServicesArgs)
@guarded("book_appointments")
def list_services(*, config: RunnableConfig) -> dict[str, Any]:
    """The services a lead can book, with their length and price."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        services = session.scalars(select(Service).where(Service.is_active, Service.deleted_at.is_(None))
                                   .order_by(Service.name)).all()
        return {"services": [{"id": s.id, "name": s.name, "minutes": s.duration_minutes, "price": s.price}
                             for s in services]}


class BookArgs(BaseModel):
    slot_start: datetime = Field(description="Start of a slot returned by check_availability, with its offset")
    calendar_id: uuid.UUID = Field(description="calendar_id that check_availability returned with the slot")
    service_id: uuid.UUID | None = Field(default=None, description="Service the lead chose")


@tool(args_schema=BookArgs)
@guarded("book_appointments")
def book_appointment(slot_start: datetime, calendar_id: uuid.UUID, service_id: uuid.UUID | None = None, *,
                     config: RunnableConfig) -> dict[str, Any]:
    """Book the lead into a free slot. Call check_availability first; if the slot was just taken, offer the
    alternatives returned."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    key = (config.get("configurable", {}).get("turn_id") or None)
    with session_for(ctx, config) as session:
        tz = _zone(ctx, session)
        appointment = booking.book_appointment(session=session, request=booking.BookingRequest(
            calendar_id=calendar_id, contact_id=contact_id, start=slot_start, service_id=service_id,
            timezone=tz, source="ai_agent", idempotency_key=f"book:{ctx.conversation_id}:{key}" if key else None))
        return {"appointment_id": appointment.id, "status": appointment.status,
                "start": appointment.start_time.astimezone(ZoneInfo(tz)), "title": appointment.title}


class RescheduleArgs(BaseModel):
    appointment_id: uuid.UUID = Field(description="One of the lead's appointments, from list_appointments")
    new_start: datetime = Field(description="Start of a free slot from check_availability, with its offset")
    calendar_id: uuid.UUID | None = Field(default=None, description=(
        "calendar_id that check_availability returned with the slot; defaults to the appointment's calendar"))


@tool(args_schema=RescheduleArgs)
@guarded("book_appointments")
def reschedule_appointment(appointment_id: uuid.UUID, new_start: datetime, calendar_id: uuid.UUID | None = None, *,
                           config: RunnableConfig) -> dict[str, Any]:
    """Move one of the lead's appointments to another free slot."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        _own_appointment(session, ctx, appointment_id)
        tz = _zone(ctx, session)
        moved = booking.reschedule_appointment(session=session, appointment_id=appointment_id, new_start=new_start,
                                               timezone=tz, calendar_id=calendar_id)
        return {"appointment_id": moved.id, "start": moved.start_time.astimezone(ZoneInfo(tz)),
                "replaces": appointment_id}


class CancelArgs(BaseModel):
    appointment_id: uuid.UUID = Field(description="One of the lead's appointments, from list_appointments")
    reason: str | None = Field(default=None, description="Why, in the lead's words")


@tool(args_schema=CancelArgs)
@guarded("book_appointments")
def cancel_appointment(appointment_id: uuid.UUID, reason: str | None = None, *,
                       config: RunnableConfig) -> dict[str, Any]:
    """Cancel one of the lead's appointments."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        _own_appointment(session, ctx, appointment_id)
        cancelled = booking.set_status(session=session, appointment_id=appointment_id, status="cancelled",
                                       reason=reason)
        return {"appointment_id": cancelled.id, "status": cancelled.status}


@tool(args_schema=ListServicesArgs)
@guarded("book_appointments")
def list_appointments(*, config: RunnableConfig) -> dict[str, Any]:
    """The lead's upcoming appointments, in their timezone."""
    ctx = AgentContext.from_config(config)
    if ctx.contact_id is None:
        return {"appointments": []}
    with session_for(ctx, config) as session:
        tz = ZoneInfo(_zone(ctx, session))
        rows = session.scalars(select(Appointment).where(
            Appointment.contact_id == ctx.contact_id, Appointment.status.in_(LIVE_APPOINTMENT_STATUSES),
            Appointment.deleted_at.is_(None), Appointment.start_time >= datetime.now(UTC))
            .order_by(Appointment.start_time)).all()
        return {"appointments": [{"id": a.id, "title": a.title, "start": a.start_time.astimezone(tz),
                                  "status": a.status} for a in rows]}
