"""Handing the conversation to a human."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from services.handoff import open_handoff
from tools.base import failure, guarded
from tools.context import AgentContext, session_for


class HandoffArgs(BaseModel):
    reason: Literal["human_requested", "lack_of_information", "failed_to_resolve", "negative_sentiment", "urgent",
                    "missing_capability"] = Field(description="Why a human should take over; urgent: the lead "
                                                  "needs a person now (pain, a flood, a reaction to a treatment)")
    summary: str = Field(description="Two sentences for the human: who the lead is and what they need")


@tool(args_schema=HandoffArgs)
@guarded("escalate_to_human")
def request_human_handoff(reason: str, summary: str, *, config: RunnableConfig) -> dict[str, Any]:
    """Put this conversation in the team's queue and stop answering it yourself."""
    ctx = AgentContext.from_config(config)
    if ctx.conversation_id is None:
        return failure("no_conversation", "There is no conversation to hand off.")
    with session_for(ctx, config) as session:
        handoff, created = open_handoff(session=session, conversation_id=ctx.conversation_id, reason=reason,
                                        summary=summary, ai_agent_id=ctx.ai_agent_id)
        return {"handoff_id": handoff.id, "already_waiting": not created}
