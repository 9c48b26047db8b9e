"""A reminder leaves the outbox through the dispatcher and a real Celery worker at its due time, once.

The test database is shared by the whole session, and tests before this one leave due events of their own
(reminders of bookings near the wall clock, handoff timers, retried sends): the dispatch here is bounded to
this test's event, so the worker runs nothing else and the counts are this test's alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from sqlalchemy import select

from models.calendars import Appointment, Calendar
from models.conversations import Channel, Conversation, Message, OutboxEvent
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from services.calendars import schedule_reminder
from tests.conftest import Demo
from workers.app import QUEUES, celery_app
from workers.tasks import dispatch_outbox, send_appointment_reminder

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Booked:
    """The appointment this test made and the id of its reminder's outbox event."""

    appointment: Appointment
    event_id: uuid.UUID


@pytest.fixture
def booked(demo: Demo) -> Booked:
    """An appointment of a new lead of this test's own (a webchat conversation, so no quiet hours and no
    provider), whose reminder falls due two seconds from now."""
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:
        webchat = session.scalars(select(Channel).where(Channel.channel_type == "webchat")
                                  .order_by(Channel.created_at, Channel.id).limit(1)).one()  # the seeded one
        contact = Contact(sub_account_id=demo.a, agency_id=demo.agency_id, first_name="Reminded",
                          last_name=f"Lead {uuid.uuid4().hex[:6]}", email=f"reminded-{uuid.uuid4().hex}@example.com")
        session.add(contact)
        session.flush()
        session.add(Conversation(sub_account_id=demo.a, channel_id=webchat.id, contact_id=contact.id))
        calendar_id = session.scalars(select(Calendar.id).order_by(Calendar.id).limit(1)).one()
        start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(minutes=uuid.uuid4().int % 100_000 * 60)
        appt = Appointment(sub_account_id=demo.a, calendar_id=calendar_id, contact_id=contact.id,
                           title="Tasting consultation", start_time=start, end_time=start + timedelta(minutes=30),
                           timezone="America/New_York")
        session.add(appt)
        session.flush()
        now = datetime.now(UTC)
        event = schedule_reminder(session=session, appointment=appt, now=now,
                                  before=start - (now + timedelta(seconds=2)))
        assert event is not None
        return Booked(appt, event.id)


@pytest.mark.usefixtures("daytime")
def test_the_reminder_is_sent_once_at_its_time(booked: Booked, demo: Demo) -> None:
    appointment, mine = booked.appointment, [str(booked.event_id)]
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        task_ids = dispatch_outbox.delay(mine).get(timeout=30)
        assert len(task_ids) == 1
        message_id = AsyncResult(task_ids[0], app=celery_app).get(timeout=30)  # waits for the eta, then runs
        with owner_session() as session:
            event = session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == appointment.id)).one()
        assert event.id == booked.event_id
        # a redelivered task, or a second dispatch, changes nothing
        again = send_appointment_reminder.apply_async(args=[str(event.id), str(demo.agency_id), str(demo.a)])
        assert again.get(timeout=30) is None
        assert dispatch_outbox.delay(mine).get(timeout=30) == []
    with owner_session() as session:
        sent = session.scalars(select(Message).where(
            Message.idempotency_key == f"appointment.reminder:{appointment.id}")).all()
        event = session.get(OutboxEvent, event.id)
        sent_at = session.get(Appointment, appointment.id).reminder_sent_at
        assert [str(m.id) for m in sent] == [message_id]
        # at its time: handed to Celery up to CLAIM_AHEAD early, run no earlier than it fell due
        assert sent_at is not None and sent_at >= event.available_at
        # handed to the lead's conversation (its only one: the webchat) once
        assert sent[0].body.startswith("Reminder: Tasting consultation") and sent[0].status in ("sent", "delivered")
        assert sent[0].attempts == 1
        assert (event.status, event.done_at is not None) == ("done", True)
