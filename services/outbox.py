"""The transactional outbox: work written beside the change that causes it, claimed by the dispatcher when
due, and settled by the task that performs it. Claiming skips rows another dispatcher holds."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from leadpilot.settings import get_settings
from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment
from models.conversations import Channel, Conversation, Message, OutboxEvent
from models.crm import Contact
from models.db import owner_session
from models.tenancy import SubAccount
from services.crm import is_dnd

CLAIM_AHEAD = timedelta(minutes=5)  # hand events to Celery slightly early; the task's eta keeps the time
TURN_TOPIC = "agent.turn"
SEND_TOPIC = "message.send"


@dataclass(frozen=True)
class Claimed:
    """A due event handed to a worker: what to run, for whom, and when."""

    event_id: uuid.UUID
    topic: str
    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    eta: datetime


def _reclaim_after() -> tuple[timedelta, timedelta]:
    """How long a handed-over event may stay unfinished past its due time before it is handed out again: any
    event (a campaign send, a reminder: the longest task runs minutes), and an agent turn whose conversation no
    worker is busy with or an urgent send (a reply: a lead waits for it, and the send takes a second)."""
    settings = get_settings()
    return timedelta(seconds=settings.outbox_reclaim_seconds), timedelta(seconds=settings.turn_reclaim_seconds)


def claim_due(*, session: Session, now: datetime | None = None, limit: int = 500,
              busy: Callable[[set[str]], set[str]] | None = None,
              event_ids: Collection[uuid.UUID] | None = None) -> list[Claimed]:
    """Mark due pending events dispatched (owner session: the dispatcher serves every tenant) and return them.

    Events handed over before and still unfinished are handed out again, since every task is safe to run twice:
    a turn `turn_reclaim_seconds` after it was due unless `busy` (conversation ids -> those a live worker holds)
    says a worker is on its conversation (a worker killed mid-turn, or holding it unstarted, loses it this way
    in seconds); an urgent send (a reply to a lead: a worker that reserved it died, or lost it with the broker)
    after the same time; anything else after `outbox_reclaim_seconds`, counted from its due time, not its
    hand-over.
    `event_ids` bounds the claim to those events (re-driving named ones), due and unclaimed all the same."""
    now = now or datetime.now(UTC)
    reclaim, reclaim_turn = _reclaim_after()
    since = func.greatest(OutboxEvent.dispatched_at, OutboxEvent.available_at)
    urgent = (OutboxEvent.topic == TURN_TOPIC) | (
        (OutboxEvent.topic == SEND_TOPIC) & (OutboxEvent.payload["urgent"].as_boolean().is_(True)))
    stale = (OutboxEvent.status == "dispatched") & or_(since < now - reclaim, urgent & (since < now - reclaim_turn))
    query = (select(OutboxEvent, SubAccount.agency_id).join(SubAccount, SubAccount.id == OutboxEvent.sub_account_id)
             .where(or_(OutboxEvent.status == "pending", stale), OutboxEvent.available_at <= now + CLAIM_AHEAD))
    if event_ids is not None:
        query = query.where(OutboxEvent.id.in_(list(event_ids)))
    rows = session.execute(query.order_by(OutboxEvent.available_at).limit(limit)
                           .with_for_update(of=OutboxEvent, skip_locked=True)).all()
    turns = {str(e.payload.get("conversation_id")) for e, _ in rows
             if e.status == "dispatched" and e.topic == TURN_TOPIC}
    held = busy(turns) if turns and busy is not None else set()
    claimed = []
    for event, agency_id in rows:
        if event.status == "dispatched" and str(event.payload.get("conversation_id")) in held:
            continue  # a live worker runs (or waits to run) this conversation's turns
        event.status, event.dispatched_at, event.attempts = "dispatched", now, event.attempts + 1
        claimed.append(Claimed(event.id, event.topic, agency_id, event.sub_account_id, event.available_at))
    session.flush()
    return claimed


def release(event_ids: Iterable[uuid.UUID | str]) -> int:
    """Events whose hand-over never reached the broker: pending again, so the dispatcher's next pass (seconds)
    hands them over, instead of the reclaim. Owner session: runs after the commit, outside any tenant."""
    ids = [uuid.UUID(str(i)) for i in event_ids]
    with owner_session() as session:
        return session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids), OutboxEvent.status == "dispatched")
                               .values(status="pending")).rowcount


def handing_over(event_ids: Iterable[uuid.UUID | str], action: Callable[[], None]) -> Callable[[], None]:
    """`action` (an after-commit hand-over of these events to the broker) such that a hand-over refused by the
    broker (Redis down, restarting) puts the events back to pending, for the dispatcher's next pass."""
    ids = list(event_ids)

    def hand_over() -> None:
        try:
            action()
        except Exception:
            release(ids)
            raise

    return hand_over


def settle(*, session: Session, event_id: uuid.UUID, error: str | None = None, retry: bool = False,
           retry_in: float = 0.0) -> None:
    """Record the outcome of running an event: done, or back to pending with the error for the dispatcher to
    hand out again; `retry`: the task retries by itself in `retry_in` seconds (Celery countdown), so the event
    stays with it, due then (the reclaim counts from there), and only the error is kept."""
    event = session.get(OutboxEvent, event_id)
    if event is None:
        return
    if retry:
        now = datetime.now(UTC)
        event.last_error, event.dispatched_at = (error or "")[:2000], now
        event.available_at = max(event.available_at, now + timedelta(seconds=retry_in))
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
