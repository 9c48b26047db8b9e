"""The human queue: open a handoff (once per conversation), pausing the AI on that conversation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.conversations import HANDOFF_REASONS, Conversation, ConversationAIConfig, Handoff
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
    return handoff, True
