"""The human queue: open a handoff (once per conversation), pausing the AI on that conversation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.conversations import HANDOFF_REASONS, Conversation, ConversationAIConfig, Handoff, Message, OutboxEvent
from services.errors import InvalidInput, NotFound


def open_handoff(*, session: Session, conversation_id: uuid.UUID, reason: str, summary: str | None = None,
                 detail: str | None = None, ai_agent_id: uuid.UUID | None = None,
                 now: datetime | None = None) -> tuple[Handoff, bool]:
    """Queue the conversation for a human; returns (handoff, created). An open one is reused, not duplicated."""
    if reason not in HANDOFF_REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(HANDOFF_REASONS)}.", field="reason")
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.deleted_at is not None:
        raise NotFound("No such conversation.")
    existing = session.scalar(select(Handoff).where(Handoff.conversation_id == conversation_id,
                                                    Handoff.resolved_at.is_(None)))
    if existing is not None:
        return existing, False
    handoff = Handoff(sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
                      contact_id=conversation.contact_id, ai_agent_id=ai_agent_id, reason=reason, summary=summary,
                      reason_detail=detail, requested_at=now or datetime.now(UTC))
    session.add(handoff)
    config = session.scalar(select(ConversationAIConfig).where(
        ConversationAIConfig.conversation_id == conversation_id))
    if config is not None:
        config.is_active, config.handoff_to_human, config.handoff_reason = False, True, reason
    if conversation.status == "resolved":
        conversation.status = "open"
    session.flush()
    agent_id = ai_agent_id or (config.ai_agent_id if config else None)
    _apply_agent_settings(session, handoff, conversation, reason, agent_id, handoff.requested_at)
    from channels import realtime
    from models.db import after_commit

    event = {"type": "handoff.opened", "conversation_id": str(conversation.id), "handoff_id": str(handoff.id),
             "reason": reason, "summary": summary, "requested_at": handoff.requested_at.isoformat()}
    after_commit(session, lambda: realtime.publish([realtime.sub_channel(conversation.sub_account_id)], event))
    from services import webhooks, workflows

    workflows.fire(session, conversation.sub_account_id, "handoff_opened", conversation.contact_id,
                   {"reason": reason})
    webhooks.emit(session, conversation.sub_account_id, "handoff.opened",
                  {k: v for k, v in event.items() if k != "type"} | {"contact_id": str(conversation.contact_id)})
    return handoff, True


def _apply_agent_settings(session: Session, handoff: Handoff, conversation: Conversation, reason: str,
                          ai_agent_id: uuid.UUID | None, now: datetime) -> None:
    """The agent's Human Handover settings for this reason (as GoHighLevel's): assignee, tags on the lead, a
    task for the team, and a reactivation timer that gives the conversation back to the AI if nobody answers."""
    from models.ai import AIAgent
    from services import crm

    agent = session.get(AIAgent, ai_agent_id) if ai_agent_id else None
    settings = ((agent.handoff_settings or {}).get(reason) or {}) if agent else {}
    if settings.get("assign_to_user_id"):
        conversation.assigned_user_id = uuid.UUID(str(settings["assign_to_user_id"]))
    for tag in settings.get("tags", []):
        crm.add_tag(session=session, contact_id=conversation.contact_id, name=str(tag))
    if settings.get("create_task"):
        crm.create_task(session=session, contact_id=conversation.contact_id,
                        title=f"Handoff: {reason.replace('_', ' ')}", description=handoff.summary,
                        due_at=now + timedelta(hours=1), assigned_user_id=conversation.assigned_user_id,
                        priority="high")
    minutes = settings.get("reactivate_after_minutes")
    if minutes:
        session.add(OutboxEvent(sub_account_id=conversation.sub_account_id, topic="handoff.reactivate",
                                aggregate_type="handoff", aggregate_id=handoff.id,
                                available_at=now + timedelta(minutes=int(minutes)),
                                dedupe_key=f"handoff.reactivate:{handoff.id}",
                                payload={"conversation_id": str(conversation.id)}))
    session.flush()


def human_replied_since(*, session: Session, conversation_id: uuid.UUID, since: datetime) -> list[str]:
    """What staff wrote to the lead on this conversation since `since`, oldest first."""
    return list(session.scalars(select(Message.body).where(
        Message.conversation_id == conversation_id, Message.sender_type == "user", Message.direction == "outbound",
        Message.created_at >= since).order_by(Message.created_at)))


def staff_reply(*, session: Session, conversation_id: uuid.UUID, user_id: uuid.UUID, body: str) -> Message:
    """A person answers the lead: the message is queued on the conversation's channel and the AI pauses on
    this conversation by itself (it resumes when staff return it to the AI)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.deleted_at is not None:
        raise NotFound("No such conversation.")
    if not body.strip():
        raise InvalidInput("Write something.", field="body")
    message = Message(sub_account_id=conversation.sub_account_id, conversation_id=conversation.id,
                      channel_id=conversation.channel_id, contact_id=conversation.contact_id, direction="outbound",
                      sender_type="user", sender_id=user_id, body=body, status="queued")
    session.add(message)
    config = session.scalar(select(ConversationAIConfig).where(ConversationAIConfig.conversation_id == conversation_id))
    if config is not None and config.is_active:
        config.is_active = False
    from channels.outbound import queue_send

    queue_send(session, message)
    return message
