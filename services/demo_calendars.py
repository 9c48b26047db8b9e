"""Demo seed, calendars: service categories, services, two calendars with weekly hours and dated overrides,
and six months of appointments that never double-book a calendar."""

from __future__ import annotations

import bisect
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from models.calendars import Appointment, AvailabilityRule, Calendar, CalendarType, Service
from services.demo_common import Row, Rows, Seeder, Shop, dow, holidays
from services.demo_crm import interest

HISTORY_DAYS = 183
FUTURE_DAYS = 35
PAST_OUTCOMES = {"completed": 66, "no_show": 24, "cancelled": 10}
CANCEL_REASONS = ("Plans changed", "Found another venue", "Event date moved", "Booked by mistake")
SOURCES = {"ai_agent": 40, "booking_widget": 30, "staff": 25, "api": 5}


def seed_calendars(sd: Seeder, shop: Shop) -> None:
    """Types, services, calendars, availability rules, then appointments on the free slots."""
    biz = shop.biz
    consult_type, event_type = sd.uid(), sd.uid()
    sd.add(CalendarType, [
        shop.row(id=consult_type, name="Consultations", description="Free planning calls with the events team",
                 color="#2563eb", created_at=sd.ago(300)),
        shop.row(id=event_type, name="Private events", description="Tastings and walkthroughs of the private room",
                 color="#7c3aed", created_at=sd.ago(300)),
    ])
    consult = shop.row(id=sd.uid(), calendar_type_id=consult_type, name="Catering consultation",
                       description="30-minute call to plan a catering menu and quote", duration_minutes=30,
                       buffer_before_minutes=0, buffer_after_minutes=10, slot_interval_minutes=30,
                       min_notice_minutes=120, booking_window_days=60, price=Decimal("0.00"), created_at=sd.ago(300))
    tasting = shop.row(id=sd.uid(), calendar_type_id=event_type, name="Private event tasting",
                       description="One-hour tasting for up to 4 people before a private event", duration_minutes=60,
                       buffer_before_minutes=15, buffer_after_minutes=15, slot_interval_minutes=30,
                       min_notice_minutes=1440, booking_window_days=90, max_bookings_per_day=3,
                       price=Decimal("40.00"), requires_payment=False, created_at=sd.ago(300))
    walkthrough = shop.row(id=sd.uid(), calendar_type_id=event_type, name="Private room walkthrough",
                           description="See the room and talk layout, AV and drinks packages", duration_minutes=45,
                           buffer_before_minutes=0, buffer_after_minutes=15, slot_interval_minutes=15,
                           min_notice_minutes=240, booking_window_days=90, price=Decimal("0.00"),
                           created_at=sd.ago(200))
    shop.services = sd.add(Service, [consult, tasting, walkthrough])
    host = shop.closer_ids[-1] if len(shop.closer_ids) > 1 else shop.manager_id
    calendars = sd.add(Calendar, [
        shop.row(id=sd.uid(), user_id=shop.closer_ids[0], name="Catering Consultations", timezone=biz.timezone,
                 description="Phone and video consultations for catering orders", calendar_kind="round_robin",
                 team_key=f"sales-{biz.slug}", slot_interval_minutes=30, min_notice_minutes=120,
                 booking_window_days=60, settings={"color": "#2563eb", "location": "Phone or video call"},
                 created_at=sd.ago(300)),
        shop.row(id=sd.uid(), user_id=host, name="Private Events", timezone=biz.timezone,
                 description=f"Tastings and walkthroughs at {biz.address}", calendar_kind="personal",
                 slot_interval_minutes=30, min_notice_minutes=1440, booking_window_days=90,
                 max_bookings_per_day=4, settings={"color": "#7c3aed", "location": biz.address},
                 created_at=sd.ago(300)),
    ])
    first, last = sd.ago(HISTORY_DAYS).date(), (sd.now + timedelta(days=FUTURE_DAYS)).date()
    closed = holidays(first, date(last.year, 12, 31))
    _rules(sd, shop, calendars, closed)
    appointments: Rows = []
    for i, services, per_day in ((0, [consult], [0, 1, 1, 2, 2, 3]), (1, [tasting, walkthrough], [0, 0, 1, 1, 2])):
        appointments += _appointments(sd, shop, calendars[i], _windows(shop, i), services, per_day, first, last,
                                      closed)
    appointments.sort(key=lambda a: (a["start_time"], a["id"]))
    shop.appointments = sd.add(Appointment, appointments)


def _rules(sd: Seeder, shop: Shop, calendars: Rows, closed: dict[date, str]) -> None:
    biz = shop.biz
    rules: Rows = []
    for i, cal in enumerate(calendars):
        rules += [shop.row(id=sd.uid(), calendar_id=cal["id"], rule_type="weekly", day_of_week=d,
                           start_time=start, end_time=end, created_at=sd.ago(300))
                  for d in biz.consult_days for start, end in _windows(shop, i)]
        rules += [shop.row(id=sd.uid(), calendar_id=cal["id"], rule_type="override", valid_from=day, valid_to=day,
                           is_active=False, label=f"Closed: {label}", created_at=sd.ago(250))
                  for day, label in sorted(closed.items())]
        evening = _next_open_day(shop, (sd.now + timedelta(days=9)).date(), closed)
        rules.append(shop.row(id=sd.uid(), calendar_id=cal["id"], rule_type="override", valid_from=evening,
                              valid_to=evening, is_active=True, start_time=biz.consult_close, end_time=time(20),
                              label="Extra hours: holiday party planning evening", created_at=sd.ago(5)))
    sd.add(AvailabilityRule, rules)


def _windows(shop: Shop, calendar_index: int) -> list[tuple[time, time]]:
    """Weekly opening windows of a calendar; Location B's events host takes a lunch break."""
    biz = shop.biz
    if calendar_index == 1 and biz.slug == "restaurant-b":
        return [(biz.consult_open, time(12)), (time(13), biz.consult_close)]
    return [(biz.consult_open, biz.consult_close)]


def _next_open_day(shop: Shop, day: date, closed: dict[date, str]) -> date:
    while dow(day) not in shop.biz.consult_days or day in closed:
        day += timedelta(days=1)
    return day


def _appointments(sd: Seeder, shop: Shop, calendar: Row, windows: list[tuple[time, time]], services: Rows,
                  per_day: list[int], first: date, last: date, closed: dict[date, str]) -> Rows:
    """Walk the slot grid day by day and book free slots (buffers included) for leads who existed by then."""
    rng, biz = sd.rng, shop.biz
    created = [c["created_at"] for c in shop.contacts]
    booked_contacts: set[object] = set()
    rows: Rows = []
    day = first
    while day <= last:
        if dow(day) in biz.consult_days and day not in closed:
            taken: list[tuple[datetime, datetime]] = []
            grid = _grid(shop, day)
            wanted = rng.choice(per_day)
            for start in rng.sample(grid, len(grid)):
                if len(taken) >= wanted:
                    break
                service = rng.choice(services)
                end = start + timedelta(minutes=service["duration_minutes"])
                block = (start - timedelta(minutes=service["buffer_before_minutes"]),
                         end + timedelta(minutes=service["buffer_after_minutes"]))
                fits = any(shop.local(day, a) <= start and end <= shop.local(day, b) for a, b in windows)
                if not fits or any(block[0] < b and a < block[1] for a, b in taken):
                    continue
                booked = start - timedelta(hours=rng.uniform(4, 24 * 12))
                contact = _pick_contact(sd, shop, created, booked, booked_contacts, services[0]["name"])
                if contact is None:
                    continue
                booked = max(booked, contact["created_at"] + timedelta(hours=2))
                if booked >= start:
                    continue
                taken.append(block)
                booked_contacts.add(contact["id"])
                rows.append(_appointment(sd, shop, calendar, service, contact, start, end, booked))
        day += timedelta(days=1)
    return rows


def _grid(shop: Shop, day: date) -> list[datetime]:
    """Half-hour starts inside the calendar's hours on `day`."""
    at = shop.local(day, shop.biz.consult_open)
    close = shop.local(day, shop.biz.consult_close)
    slots = []
    while at < close:
        slots.append(at)
        at += timedelta(minutes=30)
    return slots


def _pick_contact(sd: Seeder, shop: Shop, created: list[datetime], booked: datetime, already: set[object],
                  service_name: str) -> Row | None:
    """A lead that existed two hours before the booking, preferring recent, unbooked, matching leads."""
    known = bisect.bisect_right(created, booked - timedelta(hours=2))
    if not known:
        return None
    want = "catering" if service_name.startswith("Catering") else "event"
    pick = None
    for _ in range(8):
        pick = shop.contacts[int(known * (1 - sd.rng.random() ** 2.5)) % known]
        if pick["id"] not in already and interest(pick) == want:
            return pick
    return pick


def _appointment(sd: Seeder, shop: Shop, calendar: Row, service: Row, contact: Row, start: datetime,
                 end: datetime, booked: datetime) -> Row:
    rng = sd.rng
    if start < sd.now:
        status = rng.choices(list(PAST_OUTCOMES), list(PAST_OUTCOMES.values()))[0]
    else:
        status = rng.choice(["scheduled", "scheduled", "confirmed"])
    source = rng.choices(list(SOURCES), list(SOURCES.values()))[0]
    confirmed = status == "confirmed" or (status in ("completed", "no_show") and sd.chance(0.7))
    cancelled_at = sd.later(booked, hours=rng.uniform(1, max(1.0, (start - booked).total_seconds() / 3600 - 1)))
    appt_id = sd.uid()
    phone_call = service["name"].startswith("Catering")
    return shop.row(
        id=appt_id, calendar_id=calendar["id"], contact_id=contact["id"], service_id=service["id"],
        assigned_user_id=calendar["user_id"], title=f"{service['name']} - {contact['first_name']} {contact['last_name']}",
        start_time=start, end_time=end, timezone=contact["timezone"], status=status, source=source,
        notes=f"{contact['custom_fields'].get('party_size', 'Unknown')} guests; "
              f"{contact['custom_fields'].get('event_type', 'catering').replace('_', ' ')}",
        location="Phone call" if phone_call else shop.biz.address,
        meeting_url=f"https://meet.example/{shop.biz.slug}-{appt_id.hex[:10]}" if phone_call and sd.chance(0.3)
        else None,
        confirmed_at=min(booked + timedelta(hours=rng.uniform(0.1, 20)), start) if confirmed else None,
        cancelled_at=cancelled_at if status == "cancelled" else None,
        cancellation_reason=rng.choice(CANCEL_REASONS) if status == "cancelled" else None,
        completed_at=end if status == "completed" else None,
        no_show_at=start + timedelta(minutes=15) if status == "no_show" else None,
        reminder_sent_at=start - timedelta(hours=24) if booked < start - timedelta(hours=24) < sd.now
        and status != "cancelled" else None,
        idempotency_key=f"book:{appt_id}" if source in ("ai_agent", "api") else None,
        created_at=booked,
    )
