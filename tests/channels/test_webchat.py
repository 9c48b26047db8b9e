"""The webchat websocket: sessions that survive a reconnect, messages stored once per client id with their
agent turn queued, the pre-chat form, forged tokens, and the staff inbox socket fed through Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from api.app import app
from channels import realtime
from leadpilot.infra import ensure_infra
from models.conversations import Channel, Message, OutboxEvent
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from tests.api.test_rest import key_for
from tests.conftest import Demo

pytestmark = pytest.mark.integration


@pytest.fixture
def widget_key(demo: Demo) -> str:
    with owner_session() as session:
        return session.scalars(select(Channel.address).where(Channel.sub_account_id == demo.a,
                                                              Channel.channel_type == "webchat")).one()


def _next(socket: Any, kind: str) -> dict[str, Any]:
    """The next event of a kind (skipping typing indicators and the like)."""
    for _ in range(20):
        event = socket.receive_json()
        if event["type"] == kind:
            return event
    raise AssertionError(f"no {kind} event")


def test_a_visitor_chats_and_resumes_the_same_conversation_after_a_reload(widget_key: str) -> None:
    client = TestClient(app)
    email = f"visitor-{uuid.uuid4().hex[:8]}@example.com"
    with client.websocket_connect(f"/widget/ws?key={widget_key}") as socket:
        hello = socket.receive_json()
        assert hello["type"] == "hello" and hello["session"] is False
        assert hello["widget"]["business"] == "Restaurant Location A"
        socket.send_json({"type": "start", "name": "Ada Lovelace", "email": email})
        token = _next(socket, "session")["token"]
        assert _next(socket, "transcript")["messages"] == []
        socket.send_json({"type": "message", "body": "Do you take reservations?", "client_id": "c1"})
        events = {e["type"]: e for e in (socket.receive_json(), socket.receive_json())}  # in either order
        ack = events["ack"]
        assert ack["created"] is True
        echoed = events["message.created"]["message"]  # through Redis, as every other socket sees it
        assert echoed["id"] == ack["id"] and echoed["body"] == "Do you take reservations?"
        socket.send_json({"type": "message", "body": "Do you take reservations?", "client_id": "c1"})
        again = _next(socket, "ack")  # resent after a dropped connection: stored once
        assert (again["id"], again["created"]) == (ack["id"], False)
    with client.websocket_connect(f"/widget/ws?key={widget_key}&token={token}") as socket:
        assert socket.receive_json()["session"] is True
        transcript = _next(socket, "transcript")["messages"]
        assert [m["body"] for m in transcript] == ["Do you take reservations?"]
    with owner_session() as session:
        contact = session.scalars(select(Contact).where(Contact.email == email)).one()
        message = session.get(Message, uuid.UUID(ack["id"]))
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == message.id)).one()
    assert (contact.first_name, contact.last_name, contact.source) == ("Ada", "Lovelace", "webchat")
    assert message.contact_id == contact.id and event.topic == "agent.turn"


def test_a_forged_token_starts_over_and_an_unknown_widget_is_refused(widget_key: str) -> None:
    client = TestClient(app)
    with client.websocket_connect(f"/widget/ws?key={widget_key}&token=eyJjIjoiMSJ9.deadbeef") as socket:
        assert socket.receive_json()["session"] is False
    with client.websocket_connect("/widget/ws?key=wk_nobody") as socket:
        error = socket.receive_json()
        assert (error["type"], error["status"]) == ("error", 404)
        with pytest.raises(WebSocketDisconnect):
            socket.receive_json()


def test_a_required_pre_chat_form_is_enforced(widget_key: str, demo: Demo) -> None:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:
        channel = session.scalars(select(Channel).where(Channel.address == widget_key)).one()
        original = dict(channel.config)
        channel.config = {**original, "prechat": {"enabled": True, "required": ["email"]}}
    try:
        with TestClient(app).websocket_connect(f"/widget/ws?key={widget_key}") as socket:
            assert socket.receive_json()["widget"]["prechat"]["enabled"] is True
            socket.send_json({"type": "start", "name": "No Email"})
            error = _next(socket, "error")
            assert error["status"] == 422 and "email" in error["detail"]
            socket.send_json({"type": "start", "name": "Bad", "email": "not-an-address"})
            assert _next(socket, "error")["status"] == 422
    finally:
        with tenant_session(scope) as session:
            session.scalars(select(Channel).where(Channel.address == widget_key)).one().config = original


def test_the_inbox_socket_sees_widget_messages_and_refuses_strangers(widget_key: str, demo: Demo) -> None:
    client = TestClient(app)
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(
            f"/v1/ws/inbox?sub_account_id={demo.a}&access_token=lp_bad_key") as socket:
        socket.receive_json()
    assert refused.value.code == 4401
    outsider = key_for(demo, "bob@restaurant.com")["Authorization"].removeprefix("Bearer ")  # restaurant B
    with pytest.raises(WebSocketDisconnect) as hidden, client.websocket_connect(
            f"/v1/ws/inbox?sub_account_id={demo.a}&access_token={outsider}") as socket:
        socket.receive_json()
    assert hidden.value.code == 4404
    staff = key_for(demo, "jane@restaurant.com")["Authorization"]
    with client.websocket_connect(f"/v1/ws/inbox?sub_account_id={demo.a}",
                                  headers={"Authorization": staff}) as inbox:
        inbox.send_json({"type": "ping"})
        assert inbox.receive_json() == {"type": "pong"}  # subscribed before this answer
        with client.websocket_connect(f"/widget/ws?key={widget_key}") as visitor:
            visitor.receive_json()
            visitor.send_json({"type": "start"})
            _next(visitor, "transcript")
            visitor.send_json({"type": "typing"})
            visitor.send_json({"type": "message", "body": "Is the patio open?", "client_id": "p1"})
            _next(visitor, "ack")
        seen = [inbox.receive_json() for _ in range(2)]
    assert seen[0]["type"] == "typing" and seen[0]["who"] == "contact"
    assert seen[1]["type"] == "message.created" and seen[1]["message"]["body"] == "Is the patio open?"


def test_a_message_is_bounded_and_its_nul_bytes_dropped(widget_key: str) -> None:
    from channels import webchat

    _, visitor = webchat.start(widget_key, name="Nul Tester")
    with pytest.raises(webchat.InvalidInput):
        webchat.say(visitor, "x" * (webchat.MAX_BODY + 1), "long")
    ack = webchat.say(visitor, "table\x00 for two?", "nul")
    with owner_session() as session:
        assert session.get(Message, uuid.UUID(ack["id"])).body == "table for two?"


def test_installations_sharing_a_redis_server_on_other_databases_never_hear_each_other(demo: Demo) -> None:
    """Redis pub/sub ignores the database number: the channel names carry it, so an inbox on database 1 does
    not see the messages of a copy of the same sub-account on database 2 (two test processes, two stagings)."""
    url = ensure_infra().redis_url
    base, db = url.rsplit("/", 1)
    other = f"{base}/{15 if int(db) != 15 else 14}"
    ours = realtime.sub_channel(demo.a)
    theirs = f"{realtime._prefix(other)}sub:{demo.a}"
    assert ours != theirs
    listener = redis.Redis.from_url(url).pubsub()
    listener.subscribe(ours)
    assert listener.get_message(timeout=2)["type"] == "subscribe"
    redis.Redis.from_url(other).publish(theirs, "{}")
    assert listener.get_message(timeout=0.5) is None
    realtime.publish([ours], {"type": "ping"})
    assert listener.get_message(timeout=2)["data"] == b'{"type": "ping"}'
    listener.close()
