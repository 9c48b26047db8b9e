"""Calendars: service categories, bookable services, calendars, availability rules, appointments."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Entity, choice, counter, fk, flag, jsonb_list, jsonb_obj, short

CALENDAR_KINDS = ("personal", "round_robin", "collective", "service")
EXTERNAL_PROVIDERS = ("google", "outlook", "ical")
RULE_TYPES = ("weekly", "override")
APPOINTMENT_STATUSES = ("scheduled", "confirmed", "cancelled", "completed", "no_show", "rescheduled")
LIVE_APPOINTMENT_STATUSES = ("scheduled", "confirmed")
APPOINTMENT_SOURCES = ("ai_agent", "staff", "booking_widget", "import", "api", "external_sync")


class SlotSettings:
    """Booking knobs shared by calendars (defaults) and services (overrides)."""

    slot_interval_minutes: Mapped[int | None]
    buffer_before_minutes: Mapped[int] = counter()
    buffer_after_minutes: Mapped[int] = counter()
    min_notice_minutes: Mapped[int] = counter()
    booking_window_days: Mapped[int] = mapped_column(nullable=False, server_default=text("60"))
    max_bookings_per_day: Mapped[int | None]


class CalendarType(Entity, Base):
    """A category of services (e.g. Consultations)."""

    __tablename__ = "calendar_types"

    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    color: Mapped[str | None] = short(16)


class Service(SlotSettings, Entity, Base):
    """Something a lead can book, with its duration, buffers and price."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("price >= 0", name="price_non_negative"),
    )

    calendar_type_id: Mapped[uuid.UUID | None] = fk("calendar_types.id", ondelete="SET NULL", nullable=True)
    product_id: Mapped[uuid.UUID | None] = fk("products.id", ondelete="SET NULL", nullable=True)
    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    # the words leads use for the service, in any language ("cleaning", "limpieza", "scale and polish")
    synonyms: Mapped[list[Any]] = jsonb_list()
    duration_minutes: Mapped[int] = mapped_column(nullable=False)
    price: Mapped[Decimal | None]
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    requires_payment: Mapped[bool] = flag(False)
    is_active: Mapped[bool] = flag(True)


class Calendar(SlotSettings, Entity, Base):
    """A bookable calendar in an IANA timezone, usually one staff member's."""

    __tablename__ = "calendars"

    user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    timezone: Mapped[str] = short(64, nullable=False)
    calendar_kind: Mapped[str] = mapped_column(choice("calendar_kind", *CALENDAR_KINDS), nullable=False,
                                               server_default="personal")
    # round-robin pool: calendars of a team share this key
    team_key: Mapped[str | None] = short(64, index=True)
    external_calendar_provider: Mapped[str | None] = mapped_column(
        choice("external_calendar_provider", *EXTERNAL_PROVIDERS)
    )
    external_calendar_id: Mapped[str | None] = short(255)
    sync_enabled: Mapped[bool] = flag(False)
    last_synced_at: Mapped[datetime | None]
    settings: Mapped[dict[str, Any]] = jsonb_obj()
    is_active: Mapped[bool] = flag(True)


class AvailabilityRule(Entity, Base):
    """A weekly opening (day_of_week, 0 = Sunday) or a dated override (closed day or extra hours)."""

    __tablename__ = "availability_rules"
    __table_args__ = (
        CheckConstraint("day_of_week BETWEEN 0 AND 6", name="day_of_week_range"),
        CheckConstraint("start_time IS NULL OR end_time IS NULL OR start_time < end_time", name="time_order"),
        CheckConstraint("valid_to IS NULL OR valid_from IS NULL OR valid_from <= valid_to", name="date_order"),
        CheckConstraint(
            "(rule_type = 'weekly' AND day_of_week IS NOT NULL AND start_time IS NOT NULL"
            " AND end_time IS NOT NULL) OR (rule_type = 'override' AND valid_from IS NOT NULL"
            " AND (NOT is_active OR (start_time IS NOT NULL AND end_time IS NOT NULL)))",
            name="rule_shape",
        ),
        Index("ix_availability_rules_calendar_type", "calendar_id", "rule_type"),
    )

    calendar_id: Mapped[uuid.UUID] = fk("calendars.id", ondelete="CASCADE", index=False)
    rule_type: Mapped[str] = mapped_column(choice("availability_rule_type", *RULE_TYPES), nullable=False)
    day_of_week: Mapped[int | None] = mapped_column(SmallInteger)
    start_time: Mapped[time | None]
    end_time: Mapped[time | None]
    # defaults to the calendar's timezone
    timezone: Mapped[str | None] = short(64)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    is_active: Mapped[bool] = flag(True)
    label: Mapped[str | None] = short(255)


class Appointment(Entity, Base):
    """A booking on a calendar. The database refuses two overlapping live appointments on one calendar."""

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("end_time > start_time", name="time_order"),
        Index("ix_appointments_calendar_start", "calendar_id", "start_time"),
        Index("ix_appointments_sub_account_start", "sub_account_id", "start_time"),
        # The overlap guard itself is an EXCLUDE constraint created in the migration (see lp_calendar_slot):
        # Alembic cannot reflect it, so it is declared there, next to the function it uses.
    )

    calendar_id: Mapped[uuid.UUID] = fk("calendars.id", ondelete="CASCADE", index=False)
    contact_id: Mapped[uuid.UUID] = fk("contacts.id", ondelete="CASCADE")
    service_id: Mapped[uuid.UUID | None] = fk("services.id", ondelete="SET NULL", nullable=True)
    assigned_user_id: Mapped[uuid.UUID | None] = fk("users.id", ondelete="SET NULL", nullable=True)
    rescheduled_from_id: Mapped[uuid.UUID | None] = fk("appointments.id", ondelete="SET NULL", nullable=True)
    title: Mapped[str] = short(255, nullable=False)
    start_time: Mapped[datetime] = mapped_column(nullable=False)
    end_time: Mapped[datetime] = mapped_column(nullable=False)
    # the lead's timezone, for confirmations
    timezone: Mapped[str | None] = short(64)
    status: Mapped[str] = mapped_column(choice("appointment_status", *APPOINTMENT_STATUSES),
                                        nullable=False, server_default="scheduled")
    source: Mapped[str] = mapped_column(choice("appointment_source", *APPOINTMENT_SOURCES),
                                        nullable=False, server_default="staff")
    notes: Mapped[str | None]
    location: Mapped[str | None]
    meeting_url: Mapped[str | None]
    confirmed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancellation_reason: Mapped[str | None]
    completed_at: Mapped[datetime | None]
    no_show_at: Mapped[datetime | None]
    reminder_sent_at: Mapped[datetime | None]
    external_event_id: Mapped[str | None] = short(255)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
