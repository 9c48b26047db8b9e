"""Realtime fan-out: every new message, status change and typing signal is published on Redis once its
transaction has committed, and every API process relays it to the inbox and widget websockets it holds.

Two kinds of Redis channel: `lp:rt:<db>:sub:<sub_account_id>` (the staff inbox of a sub-account sees
everything) and `lp:rt:<db>:conv:<conversation_id>` (a lead's widget sees only what the lead may see: no drafts
awaiting approval, no internal notes). Redis pub/sub ignores the database number, so the channel names carry
it: two installations sharing one Redis server on different databases never hear each other."""

from __future__ import annotations

import json
import logging
import uuid
from functools import lru_cache
from typing import Any

import redis
from sqlalchemy.orm import Session

from leadpilot.infra import ensure_infra
from models.conversations import Message
from models.db import after_commit

log = logging.getLogger("leadpilot.realtime")
HIDDEN_FROM_LEAD = ("draft", "pending_approval", "discarded")


def sub_channel(sub_account_id: uuid.UUID | str) -> str:
    """The Redis channel of a sub-account's inbox."""
    return f"{_prefix(ensure_infra().redis_url)}sub:{sub_account_id}"


def conversation_channel(conversation_id: uuid.UUID | str) -> str:
    """The Redis channel of one conversation as its lead sees it."""
    return f"{_prefix(ensure_infra().redis_url)}conv:{conversation_id}"


@lru_cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


@lru_cache
def _prefix(url: str) -> str:
    return f"lp:rt:{_client(url).connection_pool.connection_kwargs.get('db', 0)}:"


def publish(channels: list[str], event: dict[str, Any]) -> None:
    """Publish now (callers inside a transaction use `message_event`, which waits for the commit)."""
    publish_many([(channels, event)])


def publish_many(events: list[tuple[list[str], dict[str, Any]]]) -> None:
    """Publish several events in one round trip to Redis (a batch of inbound messages)."""
    if not events:
        return
    pipe = _client(ensure_infra().redis_url).pipeline(transaction=False)
    for channels, event in events:
        data = json.dumps(event, default=str)
        for name in channels:
            pipe.publish(name, data)
    pipe.execute()


def message_payload(message: Message) -> dict[str, Any]:
    """What websockets receive of a message."""
    return payload(id=message.id, conversation_id=message.conversation_id, direction=message.direction,
                   sender_type=message.sender_type, content_type=message.content_type, body=message.body,
                   subject=message.subject, status=message.status, attachments=message.attachments,
                   created_at=message.created_at)


def payload(*, id: Any, conversation_id: Any, direction: str, sender_type: str, content_type: str, body: str,
            subject: str | None, status: str, attachments: list[Any] | None, created_at: Any) -> dict[str, Any]:
    """`message_payload` from a message's fields (a batch writes its rows without loading them)."""
    return {"id": str(id), "conversation_id": str(conversation_id), "direction": direction,
            "sender_type": sender_type, "content_type": content_type, "body": body, "subject": subject,
            "status": status, "attachments": attachments or [],
            "created_at": created_at.isoformat() if created_at else None}


def visible_to_lead(message: Message) -> bool:
    """A lead sees what was said to them or by them, never drafts or internal notes."""
    return message.status not in HIDDEN_FROM_LEAD and message.content_type != "note"


def message_event(session: Session, message: Message, kind: str = "message.created") -> None:
    """Announce a new or changed message after the session commits (never for a rolled-back write)."""
    session.flush()
    payload = {"type": kind, "message": message_payload(message)}
    channels = [sub_channel(message.sub_account_id)]
    if visible_to_lead(message):
        channels.append(conversation_channel(message.conversation_id))
    after_commit(session, lambda: publish(channels, payload))


def typing(sub_account_id: uuid.UUID | str, conversation_id: uuid.UUID | str, who: str, on: bool = True) -> None:
    """A typing indicator (the lead in the widget, the agent working on a reply, a person in the inbox)."""
    try:
        publish([sub_channel(sub_account_id), conversation_channel(conversation_id)],
                {"type": "typing", "conversation_id": str(conversation_id), "who": who, "on": on})
    except redis.RedisError:  # an indicator is never worth failing a turn for
        log.warning("typing indicator not published", exc_info=True)
