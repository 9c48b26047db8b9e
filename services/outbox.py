"""The transactional outbox: work written beside the change that causes it, claimed by the dispatcher when
due, and settled by the task that performs it. Claiming skips rows another dispatcher holds."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment
from models.conversations import Channel, Conversation, Message, OutboxEvent
from models.crm import Contact
from models.tenancy import SubAccount
from services.crm import is_dnd

CLAIM_AHEAD = timedelta(minutes=5)  # hand events to Celery slightly early; the task's eta keeps the time
RECLAIM_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Claimed:
    """A due event handed to a worker: what to run, for whom, and when."""

    event_id: uuid.UUID
    topic: str
    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    eta: datetime


def claim_due(*, session: Session, now: datetime | None = None, limit: int = 500,
              event_ids: Collection[uuid.UUID] | None = None) -> list[Claimed]:
    """Mark due pending events dispatched (owner session: the dispatcher serves every tenant) and return them;
    `event_ids` bounds the claim to those events (re-driving named ones), due and unclaimed all the same."""
    now = now or datetime.now(UTC)
    query = (select(OutboxEvent, SubAccount.agency_id).join(SubAccount, SubAccount.id == OutboxEvent.sub_account_id)
             .where(or_(OutboxEvent.status == "pending",
                        # handed to a broker that lost it: the tasks are idempotent, so hand it out again
                        (OutboxEvent.status == "dispatched") & (OutboxEvent.dispatched_at < now - RECLAIM_AFTER)),
                    OutboxEvent.available_at <= now + CLAIM_AHEAD))
    if event_ids is not None:
        query = query.where(OutboxEvent.id.in_(list(event_ids)))
    rows = session.execute(query.order_by(OutboxEvent.available_at).limit(limit)
                           .with_for_update(of=OutboxEvent, skip_locked=True)).all()
    claimed = []
    for event, agency_id in rows:
        event.status, event.dispatched_at, event.attempts = "dispatched", now, event.attempts + 1
        claimed.append(Claimed(event.id, event.topic, agency_id, event.sub_account_id, event.available_at))
    session.flush()
    return claimed


def settle(*, session: Session, event_id: uuid.UUID, error: str | None = None, retry: bool = False) -> None:
    """Record the outcome of running an event: done, or back to pending with the error for the dispatcher to
    hand out again; `retry`: the task retries by itself (Celery countdown), so the event stays with it and
    only the error is kept (and the reclaim clock restarts)."""
    event = session.get(OutboxEvent, event_id)
    if event is None:
        return
    if retry:
        event.last_error, event.dispatched_at = (error or "")[:2000], datetime.now(UTC)
    elif error is None:
        event.status, event.done_at, event.last_error = "done", datetime.now(UTC), None
    else:
        event.status, event.last_error = ("failed" if event.attempts >= 5 else "pending"), error[:2000]
    session.flush()


def postpone(*, session: Session, event_id: uuid.UUID, until: datetime) -> None:
    """The event's task put itself off until `until` (quiet hours): due then, reclaimed only long after."""
    event = session.get(OutboxEvent, event_id)
    if event is not None:
        event.available_at = event.dispatched_at = until
        session.flush()


def send_appointment_reminder(*, session: Session, event_id: uuid.UUID, now: datetime | None = None
                              ) -> Message | None:
    """Turn a due reminder into an outbound message on the lead's latest conversation (the channels send it).
    Nothing happens for an appointment no longer live, an opted-out lead, or a reminder already sent."""
    now = now or datetime.now(UTC)
    event = session.get(OutboxEvent, event_id)
    if event is None or event.status == "done":
        return None
    appointment = session.get(Appointment, event.aggregate_id, with_for_update=True)
    if appointment is None or appointment.status not in LIVE_APPOINTMENT_STATUSES or appointment.reminder_sent_at:
        return None
    contact = session.get(Contact, appointment.contact_id)
    conversation = session.scalars(select(Conversation).where(
        Conversation.contact_id == appointment.contact_id, Conversation.deleted_at.is_(None))
        .order_by(Conversation.last_message_at.desc().nulls_last()).limit(1)).first()
    appointment.reminder_sent_at = now
    channel = session.get(Channel, conversation.channel_id) if conversation else None
    if contact is None or conversation is None or channel is None or is_dnd(contact, channel.channel_type):
        session.flush()
        return None
    from zoneinfo import ZoneInfo

    local = appointment.start_time.astimezone(ZoneInfo(appointment.timezone or "UTC"))
    message = Message(
        sub_account_id=appointment.sub_account_id, conversation_id=conversation.id,
        channel_id=conversation.channel_id, contact_id=contact.id, direction="outbound", sender_type="system",
        body=(f"Reminder: {appointment.title} tomorrow, {local:%A %B %-d at %-I:%M %p}. "
              "Reply C to confirm or R to reschedule."),
        status="queued", idempotency_key=f"appointment.reminder:{appointment.id}")
    session.add(message)
    from channels.outbound import queue_send

    queue_send(session, message)
    return message
