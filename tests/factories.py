"""Small builders for rows a test needs in the rolled-back session (calendars with hours, services, bookings)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.calendars import Appointment, AvailabilityRule, Calendar, Service
from models.crm import Contact

WEEKDAYS = (1, 2, 3, 4, 5)  # Monday..Friday, with 0 = Sunday as the seed numbers days


def only_these_calendars(session: Session) -> None:
    """Switch off the sub-account's existing calendars, so a test sees only the ones it builds."""
    session.execute(update(Calendar).values(is_active=False))
    session.flush()


def make_calendar(session: Session, sub_account_id: uuid.UUID, *, name: str = "Cal", timezone: str = "America/Chicago",
                  hours: Iterable[tuple[int, time, time]] = tuple((d, time(9), time(20)) for d in WEEKDAYS),
                  closed_dates: Iterable[date] = (), busy_blocks: Iterable[tuple[date, time, time]] = (),
                  team_key: str | None = None, settings: dict[str, Any] | None = None,
                  **policy: Any) -> Calendar:
    """An active calendar open `hours` ((day_of_week, opens, closes) in its timezone), with whole closed days and
    timed closures (what an imported busy feed becomes); 30-minute slots unless `policy` says otherwise."""
    calendar = Calendar(sub_account_id=sub_account_id, name=name, timezone=timezone, team_key=team_key,
                        calendar_kind="round_robin" if team_key else "personal", settings=settings or {},
                        slot_interval_minutes=policy.pop("slot_interval_minutes", 30), **policy)
    session.add(calendar)
    session.flush()
    session.add_all(AvailabilityRule(sub_account_id=sub_account_id, calendar_id=calendar.id, rule_type="weekly",
                                     day_of_week=dow, start_time=opens, end_time=closes)
                    for dow, opens, closes in hours)
    session.add_all(AvailabilityRule(sub_account_id=sub_account_id, calendar_id=calendar.id, rule_type="override",
                                     valid_from=day, valid_to=day, is_active=False, label="Holiday")
                    for day in closed_dates)
    session.add_all(AvailabilityRule(sub_account_id=sub_account_id, calendar_id=calendar.id, rule_type="override",
                                     valid_from=day, valid_to=day, start_time=start, end_time=end, is_active=False,
                                     label="busy") for day, start, end in busy_blocks)
    session.flush()
    return calendar


def make_service(session: Session, sub_account_id: uuid.UUID, *, name: str = "Consult", minutes: int = 30,
                 **policy: Any) -> Service:
    """A bookable service of `minutes`."""
    service = Service(sub_account_id=sub_account_id, name=name, duration_minutes=minutes, **policy)
    session.add(service)
    session.flush()
    return service


def book(session: Session, calendar: Calendar, start: datetime, minutes: int = 30) -> Appointment:
    """A live appointment on `calendar` at `start` (aware) for some contact of the tenant."""
    contact_id = session.scalars(select(Contact.id).order_by(Contact.id).limit(1)).one()
    appointment = Appointment(sub_account_id=calendar.sub_account_id, calendar_id=calendar.id, contact_id=contact_id,
                              title="Busy", start_time=start, end_time=start + timedelta(minutes=minutes))
    session.add(appointment)
    session.flush()
    return appointment
