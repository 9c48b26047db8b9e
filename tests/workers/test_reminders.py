"""A reminder leaves the outbox through the dispatcher and a real Celery worker at its due time, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from sqlalchemy import select

from models.calendars import Appointment
from models.conversations import Conversation, Message, OutboxEvent
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from services.calendars import schedule_reminder
from tests.conftest import Demo
from workers.app import QUEUES, celery_app
from workers.tasks import dispatch_outbox, send_appointment_reminder

pytestmark = pytest.mark.integration


@pytest.fixture
def appointment(demo: Demo) -> Appointment:
    """An appointment of a reachable lead whose reminder falls due two seconds from now."""
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:
        conversation = session.scalars(select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                                       .where(Contact.dnd_channels == {}, ~Contact.dnd_all).limit(1)).one()
        calendar_id = session.scalar(select(Appointment.calendar_id).limit(1))
        start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(minutes=uuid.uuid4().int % 100_000 * 60)
        appt = Appointment(sub_account_id=demo.a, calendar_id=calendar_id, contact_id=conversation.contact_id,
                           title="Tasting consultation", start_time=start, end_time=start + timedelta(minutes=30),
                           timezone="America/New_York")
        session.add(appt)
        session.flush()
        now = datetime.now(UTC)
        schedule_reminder(session=session, appointment=appt, now=now, before=start - (now + timedelta(seconds=2)))
        return appt


@pytest.mark.usefixtures("daytime")
def test_the_reminder_is_sent_once_at_its_time(appointment: Appointment, demo: Demo) -> None:
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        task_ids = dispatch_outbox.delay().get(timeout=30)
        assert len(task_ids) == 1
        message_id = AsyncResult(task_ids[0], app=celery_app).get(timeout=30)  # waits for the eta, then runs
        with owner_session() as session:
            event = session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == appointment.id)).one()
        # a redelivered task, or a second dispatch, changes nothing
        again = send_appointment_reminder.apply_async(args=[str(event.id), str(demo.agency_id), str(demo.a)])
        assert again.get(timeout=30) is None
        assert dispatch_outbox.delay().get(timeout=30) == []
    with owner_session() as session:
        sent = session.scalars(select(Message).where(
            Message.idempotency_key == f"appointment.reminder:{appointment.id}")).all()
        event = session.get(OutboxEvent, event.id)
        assert [str(m.id) for m in sent] == [message_id]
        # handed to the conversation's transport once (here the lead's latest conversation is the webchat)
        assert sent[0].body.startswith("Reminder: Tasting consultation") and sent[0].status in ("sent", "delivered")
        assert sent[0].attempts == 1
        assert (event.status, event.done_at is not None) == ("done", True)
        assert session.get(Appointment, appointment.id).reminder_sent_at is not None
