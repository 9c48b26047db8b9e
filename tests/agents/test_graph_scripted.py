"""The lead graph's routing, loop limit, interrupt/resume, crash recovery and history bound, driven by a
scripted model that emits exact tool calls (real tools, database and Postgres checkpointer)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from sqlalchemy import func, select

from agents.checkpoint import checkpointer
from agents.lead.graph import KEEP_MESSAGES, build_lead_graph
from agents.lead.runner import return_to_ai, run_config, run_turn
from models.conversations import Handoff, Message
from models.crm import Note
from models.db import tenant_session
from tests.agents.scripted import Scripted, call

pytestmark = pytest.mark.integration


def _run(lead, graph, text):  # type: ignore[no-untyped-def]
    return run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a, conversation_id=lead.conversation_id,
                    message_id=lead.says(text), graph=graph)


def _state(lead, graph):  # type: ignore[no-untyped-def]
    with tenant_session(lead.scope) as session:
        config, _ = run_config(session, lead.conversation_id)
    return graph.get_state({"configurable": config})


def test_tool_calls_route_through_the_tool_node_in_order(lead) -> None:  # type: ignore[no-untyped-def]
    graph = build_lead_graph(Scripted(script=[call("search_knowledge", query="parking"),
                                              call("list_services"), AIMessage("We have free parking.")]),
                             checkpointer())
    result = _run(lead, graph, "parking?")
    assert (result.decision, result.reply) == ("answer", "We have free parking.")
    messages = _state(lead, graph).values["messages"]
    sequence = [(type(m).__name__, getattr(m, "name", None)) for m in messages[1:]]
    assert sequence == [("AIMessage", None), ("ToolMessage", "search_knowledge"), ("AIMessage", None),
                        ("ToolMessage", "list_services"), ("AIMessage", None)]
    assert '"ok": true' in messages[2].content and '"confident": true' in messages[2].content


def test_the_tool_loop_limit_hands_off_and_waits_for_a_human(lead) -> None:  # type: ignore[no-untyped-def]
    graph = build_lead_graph(Scripted(script=[call("list_services")]), checkpointer())  # never answers
    result = _run(lead, graph, "what can I book?")
    assert result.decision == "handoff" and result.handoff["reason"] == "failed_to_resolve"
    state = _state(lead, graph)
    assert state.interrupts and state.interrupts[0].value["reason"] == "failed_to_resolve"
    ran = [m for m in state.values["messages"] if isinstance(m, ToolMessage) and m.content.startswith('{"ok"')]
    assert len(ran) == 6 - 1  # max_tool_loops (6) model calls; the last one's tool calls are not run
    assert state.values["messages"][-2].content.startswith("Not run")  # every tool call gets its answer
    with tenant_session(lead.scope) as session:
        assert session.scalars(select(Handoff).where(Handoff.conversation_id == lead.conversation_id)).one()
    back = return_to_ai(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                        conversation_id=lead.conversation_id, human_messages=["Our menu is on the website."],
                        graph=graph)
    assert back.decision == "resumed" and not _state(lead, graph).interrupts


def test_a_worker_dying_mid_turn_resumes_from_the_checkpoint_without_repeating(lead) -> None:  # type: ignore[no-untyped-def]
    died = {"done": False}

    def crash_once(messages):  # type: ignore[no-untyped-def]
        if not died["done"]:
            died["done"] = True
            raise SystemExit("worker killed")  # after the tool ran and its result was checkpointed
        return AIMessage("Noted your request for a window table.")

    graph = build_lead_graph(Scripted(script=[call("add_note", body="Wants a window table"), crash_once]),
                             checkpointer())
    message_id = lead.says("a window table please")
    kwargs = {"agency_id": lead.demo.agency_id, "sub_account_id": lead.demo.a,
              "conversation_id": lead.conversation_id, "message_id": message_id, "graph": graph}
    with pytest.raises(SystemExit):
        run_turn(**kwargs)
    assert _state(lead, graph).next == ("agent",)
    first = run_turn(**kwargs)  # the redelivered task
    again = run_turn(**kwargs)  # and once more, for good measure
    assert first.reply == "Noted your request for a window table." and again.reply_message_id == first.reply_message_id
    with tenant_session(lead.scope) as session:
        assert session.scalar(select(func.count()).select_from(Note).where(Note.contact_id == lead.contact_id)) == 1
        assert session.scalar(select(func.count()).where(Message.conversation_id == lead.conversation_id,
                                                         Message.direction == "outbound")) == 1


def test_a_long_conversation_carries_a_bounded_history(lead) -> None:  # type: ignore[no-untyped-def]
    model = Scripted(script=[AIMessage("ok")])
    graph = build_lead_graph(model, checkpointer())
    for i in range(40):
        _run(lead, graph, f"message number {i}")
    state = _state(lead, graph).values
    assert len(state["messages"]) <= KEEP_MESSAGES + 2
    assert "message number 0" not in {m.content for m in state["messages"]}
    assert "message number 30" in state["summary"] or "message number 14" in state["summary"]
    assert len(model.seen[-1]) <= KEEP_MESSAGES + 3  # what the model is sent stays bounded too


def test_a_worker_dying_after_the_graph_but_before_the_reply_was_stored(lead) -> None:  # type: ignore[no-untyped-def]
    from langchain_core.messages import HumanMessage

    graph = build_lead_graph(Scripted(script=[call("add_note", body="Allergic to shellfish"),
                                              AIMessage("Noted, thank you!")]), checkpointer())
    message_id = lead.says("I'm allergic to shellfish")
    with tenant_session(lead.scope) as session:
        config, _ = run_config(session, lead.conversation_id, message_id=message_id)
    graph.invoke({"messages": [HumanMessage("I'm allergic to shellfish", id=str(message_id))]},
                 {"configurable": config})  # the turn ran; the worker died before storing the reply
    result = run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                      conversation_id=lead.conversation_id, message_id=message_id, graph=graph)
    assert result.reply == "Noted, thank you!"
    with tenant_session(lead.scope) as session:
        assert session.scalar(select(func.count()).select_from(Note).where(Note.contact_id == lead.contact_id)) == 1
