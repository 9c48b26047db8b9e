"""What the lead agent graph carries between nodes and, checkpointed, between turns."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


class LeadState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    summary: str  # what the trimmed-away part of a long conversation said
    loops: int  # model calls this turn
    decision: str  # answer | ask | handoff | opted_out | resumed
    reply: str  # what goes back to the lead this turn ("" for none)
    handoff: dict[str, Any]  # reason and summary of an open handoff
    confidence: float
    logs: list[dict[str, Any]]  # this turn's model calls, stored by the runner with the reply
    frame: dict[str, Any]  # the dialogue frame: task, service, when, attendees, offered, confirm, details, language
    turn: dict[str, Any]  # what the parsers read in this turn's message (agents/lead/frame.py::read_turn)
