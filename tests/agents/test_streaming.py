"""A webchat lead on autopilot sees the agent's reply stream in: the pieces published on the conversation's
realtime channel while the model writes, adding up to exactly the reply that is then stored and sent."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from sqlalchemy import select

from agents.lead.runner import run_turn
from channels import realtime, webchat
from leadpilot.infra import ensure_infra
from models.conversations import Channel, Message
from models.db import owner_session
from tests.conftest import Demo

pytestmark = pytest.mark.integration


def test_the_webchat_reply_streams_in_and_adds_up_to_the_stored_reply(demo: Demo) -> None:
    with owner_session() as session:
        key = session.scalars(select(Channel.address).where(Channel.sub_account_id == demo.a,
                                                             Channel.channel_type == "webchat")).one()
    _, visitor = webchat.start(key, name="Stream Tester")
    pubsub = redis.Redis.from_url(ensure_infra().redis_url).pubsub()
    pubsub.subscribe(realtime.conversation_channel(visitor.conversation_id))
    pubsub.get_message(timeout=1)
    sent = webchat.say(visitor, "what time do you open on sundays?", "s1")
    result = run_turn(agency_id=demo.agency_id, sub_account_id=demo.a, conversation_id=visitor.conversation_id,
                      message_id=uuid.UUID(sent["id"]))
    events: list[dict[str, Any]] = []
    while (item := pubsub.get_message(timeout=0.5)) is not None:
        if item["type"] == "message":
            events.append(json.loads(item["data"]))
    pubsub.close()
    deltas = [e["delta"] for e in events if e["type"] == "message.delta"]
    assert len(deltas) > 3 and "".join(deltas) == result.reply and "Sunday 10:00-21:00" in result.reply
    kinds = [e["type"] for e in events]
    assert kinds.index("typing") < kinds.index("message.delta")
    created = [e for e in events if e["type"] == "message.created" and e["message"]["direction"] == "outbound"]
    assert created and kinds.index("message.created", kinds.index("message.delta")) > kinds.index("message.delta")
    with owner_session() as session:
        assert session.get(Message, result.reply_message_id).body == result.reply


def test_an_sms_turn_does_not_stream(lead) -> None:  # type: ignore[no-untyped-def]
    pubsub = redis.Redis.from_url(ensure_infra().redis_url).pubsub()
    pubsub.subscribe(realtime.conversation_channel(lead.conversation_id))
    pubsub.get_message(timeout=1)
    run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a, conversation_id=lead.conversation_id,
             message_id=lead.says("what time do you open on sundays?"))
    kinds = []
    while (item := pubsub.get_message(timeout=0.5)) is not None:
        if item["type"] == "message":
            kinds.append(json.loads(item["data"])["type"])
    pubsub.close()
    assert "message.delta" not in kinds and "message.created" in kinds
