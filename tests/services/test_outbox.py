"""The outbox dispatcher claims due events once (only the named ones when bounded), and hands work out again
in seconds when its hand-over was lost, and only then: a hand-over the broker refused is pending again at once;
a turn a dead worker held is reclaimed within `turn_reclaim_seconds` unless a live worker holds its conversation,
and so is a reply to a lead; other work waits `outbox_reclaim_seconds` from its due time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from models.conversations import OutboxEvent
from services import outbox
from tests.conftest import Demo

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def _event(sub_account_id: uuid.UUID, topic: str, *, status: str = "dispatched", dispatched_ago: float = 0,
           due_in: float | None = None, conversation: str | None = None, urgent: bool = False) -> dict[str, object]:
    dispatched = NOW - timedelta(seconds=dispatched_ago)
    return {"id": uuid.uuid4(), "sub_account_id": sub_account_id, "topic": topic, "aggregate_type": "message",
            "aggregate_id": uuid.uuid4(), "status": status, "attempts": 1, "dispatched_at": dispatched,
            "available_at": dispatched if due_in is None else NOW + timedelta(seconds=due_in),
            "dedupe_key": f"test:{uuid.uuid4()}", "payload": {"conversation_id": conversation or str(uuid.uuid4()),
                                                              **({"urgent": True} if urgent else {})}}


def test_lost_turns_come_back_in_seconds_and_live_ones_stay_with_their_worker(db: Session, demo: Demo) -> None:
    busy_conversation = str(uuid.uuid4())
    rows = {
        "fresh turn": _event(demo.a, "agent.turn", dispatched_ago=5),
        "lost turn": _event(demo.a, "agent.turn", dispatched_ago=40),
        "running turn": _event(demo.a, "agent.turn", dispatched_ago=40, conversation=busy_conversation),
        "queued send": _event(demo.a, "message.send", dispatched_ago=40),
        "lost send": _event(demo.a, "message.send", dispatched_ago=700),
        "lost reply": _event(demo.a, "message.send", dispatched_ago=40, urgent=True),
        "fresh reply": _event(demo.a, "message.send", dispatched_ago=5, urgent=True),
        "send retrying later": _event(demo.a, "message.send", dispatched_ago=700, due_in=120),
        "refused hand-over": _event(demo.a, "message.send", status="pending", dispatched_ago=1),
        "reminder tomorrow": _event(demo.a, "appointment.reminder", status="pending", due_in=86_400),
    }
    db.add_all(OutboxEvent(**row) for row in rows.values())
    db.flush()
    asked: list[set[str]] = []

    def busy(conversations: set[str]) -> set[str]:
        asked.append(conversations)
        return conversations & {busy_conversation}

    claimed = {c.event_id for c in outbox.claim_due(session=db, now=NOW, busy=busy)}
    got = sorted(name for name, row in rows.items() if row["id"] in claimed)
    assert got == ["lost reply", "lost send", "lost turn", "refused hand-over"]
    assert busy_conversation in asked[0]
    assert db.get(OutboxEvent, rows["lost turn"]["id"]).attempts == 2


def test_a_hand_over_the_broker_refuses_is_pending_again_at_once(owner_engine: Engine, demo: Demo) -> None:
    row = _event(demo.a, "agent.turn")
    with Session(owner_engine) as session, session.begin():
        session.add(OutboxEvent(**row))

    def refused() -> None:
        raise ConnectionError("broker away")

    try:
        with pytest.raises(ConnectionError):
            outbox.handing_over([row["id"]], refused)()
        with Session(owner_engine) as session:
            assert session.scalar(select(OutboxEvent.status).where(OutboxEvent.id == row["id"])) == "pending"
        outbox.handing_over([row["id"]], lambda: None)()  # a hand-over that worked changes nothing
    finally:
        with Session(owner_engine) as session, session.begin():
            session.execute(delete(OutboxEvent).where(OutboxEvent.id == row["id"]))


def test_a_retrying_task_keeps_its_event_until_the_retry_is_due(db: Session, demo: Demo) -> None:
    row = _event(demo.a, "message.send", dispatched_ago=900)
    db.add(OutboxEvent(**row))
    db.flush()
    outbox.settle(session=db, event_id=row["id"], error="provider 503", retry=True, retry_in=300)
    event = db.get(OutboxEvent, row["id"])
    assert event.status == "dispatched" and event.available_at > NOW + timedelta(seconds=290)
    assert row["id"] not in {c.event_id for c in outbox.claim_due(session=db, now=NOW + timedelta(seconds=60))}


def test_a_bounded_claim_takes_only_the_named_due_events(db: Session, demo: Demo) -> None:
    def reminder(due_in: float) -> uuid.UUID:
        row = _event(demo.a, "appointment.reminder", status="pending", due_in=due_in)
        db.add(OutboxEvent(**row))
        db.flush()
        return row["id"]  # type: ignore[return-value]

    mine, later, other = reminder(-60), reminder(3600), reminder(-60)
    claimed = outbox.claim_due(session=db, now=NOW, event_ids=[mine, later])
    assert [c.event_id for c in claimed] == [mine]  # `later` is named but not due
    assert outbox.claim_due(session=db, now=NOW, event_ids=[mine, later]) == []  # claimed once
    assert db.get(OutboxEvent, other).status == "pending"  # left for the unbounded dispatcher
    assert other in {c.event_id for c in outbox.claim_due(session=db, now=NOW)}
