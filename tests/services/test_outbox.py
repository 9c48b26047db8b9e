"""The outbox dispatcher's claim: due events only, once, and only the named ones when it is bounded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from models.conversations import OutboxEvent
from services import outbox
from tests.conftest import Demo

pytestmark = pytest.mark.integration

NOW = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)  # the claim takes `now`; the wall clock plays no part


def _event(db: Session, demo: Demo, due: datetime) -> uuid.UUID:
    event = OutboxEvent(sub_account_id=demo.a, topic="appointment.reminder", aggregate_type="appointment",
                        aggregate_id=uuid.uuid4(), available_at=due, dedupe_key=f"test:{uuid.uuid4()}", payload={})
    db.add(event)
    db.flush()
    return event.id


def test_a_bounded_claim_takes_only_the_named_due_events(db: Session, demo: Demo) -> None:
    mine, later, other = (_event(db, demo, NOW - timedelta(minutes=1)), _event(db, demo, NOW + timedelta(hours=1)),
                          _event(db, demo, NOW - timedelta(minutes=1)))
    claimed = outbox.claim_due(session=db, now=NOW, event_ids=[mine, later])
    assert [c.event_id for c in claimed] == [mine]  # `later` is named but not due
    assert outbox.claim_due(session=db, now=NOW, event_ids=[mine, later]) == []  # claimed once
    assert db.get(OutboxEvent, other).status == "pending"  # left for the unbounded dispatcher
    assert other in {c.event_id for c in outbox.claim_due(session=db, now=NOW)}
