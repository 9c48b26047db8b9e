"""The lead agent: one inbound message in, the next reply out.

prepare (trim history) -> understand (parse the message, update the dialogue frame, honour an opt-out) ->
agent (model with the tools the ai_agent's capabilities allow) <-> tools -> finish (answer / ask; the frame
learns what was offered and done) or human (handoff: interrupt until staff return the conversation, then
resume). The tenant, contact and agent come from the run's config, never from the model."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

from agents.lead import frame as frames
from agents.lead.prompts import system_prompt
from agents.lead.replies import say
from agents.lead.state import LeadState
from agents.local_model import _turn
from agents.understanding import intents, signals
from services import crm
from services.handoff import open_handoff
from tools.context import AgentContext, session_for
from tools.registry import CAPABILITY_TOOLS, tools_for

KEEP_MESSAGES = 24  # older ones are folded into `summary`, so a 500-turn conversation costs what a 12-turn one does
DEFAULT_MAX_LOOPS = 6
ALL_TOOLS = list({t.name: t for tools in CAPABILITY_TOOLS.values() for t in tools}.values())


def _configurable(config: RunnableConfig) -> dict[str, Any]:
    return dict(config.get("configurable", {}))


def _last_human(messages: Sequence[BaseMessage]) -> HumanMessage | None:
    return next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)


def prepare(state: LeadState, config: RunnableConfig) -> dict[str, Any]:
    """Start a turn and keep the carried history bounded (older messages folded into `summary`)."""
    messages = state.get("messages", [])
    update: dict[str, Any] = {"loops": 0, "reply": "", "decision": "", "handoff": {}, "logs": []}
    if len(messages) > KEEP_MESSAGES:
        cut = len(messages) - KEEP_MESSAGES
        while cut < len(messages) and not isinstance(messages[cut], HumanMessage):
            cut += 1  # never start the kept part inside a tool exchange
        dropped = messages[:cut]
        said = [f"{'Lead' if isinstance(m, HumanMessage) else 'Us'}: {m.content}" for m in dropped
                if isinstance(m, HumanMessage | AIMessage) and m.content]
        summary = (state.get("summary", "") + "\n" + "\n".join(said[-8:])).strip()[-1500:]
        update["messages"] = [RemoveMessage(id=m.id) for m in dropped if m.id]
        update["summary"] = summary
    return update


def understand(state: LeadState, config: RunnableConfig) -> dict[str, Any]:
    """Read the lead's message with the parsers (language, times, contact details, quantities, signals, a
    choice among what was offered) and update the task frame; an opt-out is honoured here, before any model
    sees the message, and answered once in the lead's language."""
    ctx = AgentContext.from_config(config)
    c = _configurable(config)
    inbound = _last_human(state.get("messages", []))
    text = str(inbound.content) if inbound is not None else ""
    before = state.get("frame") or {}
    intents.embed_segments(intents.segments(text))  # the message's sentences in one embedding pass
    turn = frames.read_turn(text, before, c)
    frame = frames.update_frame(before, turn)
    update: dict[str, Any] = {"turn": turn, "frame": frame}
    if c.get("do_not_contact") and ctx.contact_id is not None:
        if not signals.opts_in(text):  # opted out on this channel: the agent writes nothing at all
            update.update(decision="opted_out", reply="")
            return update
        with session_for(ctx, config) as session:
            crm.set_dnd(session=session, contact_id=ctx.contact_id, channel=c.get("channel") or "sms",
                        enabled=False, reason="lead opted back in")
    # "stop sending me promos, but when do you open?" leaves the promotions and keeps the conversation; "please
    # stop sending me offers" alone is an opt-out of the channel the offers come on
    keeps_talking = signals.promotions_only(text) and any(r.get("asks") for r in turn["requests"])
    if inbound is not None and ctx.contact_id is not None and (crm.OPT_OUT.match(text) or (
            signals.opts_out(text) and not keeps_talking)):
        channel = c.get("channel") or "sms"
        with session_for(ctx, config) as session:
            crm.set_dnd(session=session, contact_id=ctx.contact_id, channel=channel, enabled=True,
                        reason="lead opted out")
        update.update(decision="opted_out", reply=say("opted_out", turn["language"]),
                      frame={**frame, "task": None, "opted_out": True})
    return update


def _system(state: LeadState, config: RunnableConfig) -> SystemMessage:
    return system_prompt(_configurable(config), state.get("frame") or {}, state.get("turn") or {},
                         state.get("summary", ""))


def _log_entry(config: RunnableConfig, state: LeadState, answer: AIMessage, started: float) -> dict[str, Any]:
    """One model call for ai_conversation_logs; the runner stores a turn's entries with its reply, in the same
    transaction (one write per turn instead of one per call)."""
    inbound = _last_human(state.get("messages", []))
    usage: dict[str, Any] = dict(answer.usage_metadata or {})
    results = [m for m in state.get("messages", []) if isinstance(m, ToolMessage)][-4:]
    confidence = answer.response_metadata.get("confidence")
    return {
        "user_input": str(inbound.content) if inbound else None, "ai_response": str(answer.content) or None,
        "context": {"intent": answer.response_metadata.get("intent"), "loop": state.get("loops", 0) + 1,
                    "frame": state.get("frame") or {},
                    "understood": {k: v for k, v in (state.get("turn") or {}).items() if v not in (None, [], {})}},
        "retrieved_docs": [str(m.content)[:2000] for m in results if m.name == "search_knowledge"],
        "tools_called": [{"name": c["name"], "args": json.loads(json.dumps(c["args"], default=str))}
                         for c in answer.tool_calls],
        "decision": "tool" if answer.tool_calls else ("ask" if str(answer.content).rstrip().endswith("?")
                                                      else "answer"),
        "confidence_score": round(float(confidence), 3) if confidence is not None else None,
        "model": answer.response_metadata.get("model_name") or "local-policy",
        "prompt_tokens": usage.get("input_tokens", 0), "completion_tokens": usage.get("output_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0), "latency_ms": int((time.perf_counter() - started) * 1000),
    }


def make_agent(model: BaseChatModel) -> Any:
    def agent(state: LeadState, config: RunnableConfig) -> dict[str, Any]:
        ctx = AgentContext.from_config(config)
        bound = model.bind_tools(tools_for(sorted(ctx.capabilities)))
        started = time.perf_counter()
        answer = bound.invoke([_system(state, config), *state.get("messages", [])], config)
        if not isinstance(answer, AIMessage):
            answer = AIMessage(content=str(answer.content))
        if answer.id is None:
            answer.id = str(uuid.uuid4())
        return {"messages": [answer], "loops": state.get("loops", 0) + 1,
                "confidence": answer.response_metadata.get("confidence"),
                "logs": [*state.get("logs", []), _log_entry(config, state, answer, started)]}

    return agent


def after_understand(state: LeadState) -> Literal["agent", "__end__"]:
    return "__end__" if state.get("decision") == "opted_out" else "agent"


def after_agent(state: LeadState, config: RunnableConfig) -> Literal["tools", "escalate", "finish"]:
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and last.tool_calls:
        limit = int(_configurable(config).get("max_tool_loops") or DEFAULT_MAX_LOOPS)
        return "escalate" if state.get("loops", 0) >= limit else "tools"
    return "finish"


def escalate(state: LeadState, config: RunnableConfig) -> dict[str, Any]:
    """Too many tool rounds without an answer: stop, and hand the conversation to a person."""
    last = state["messages"][-1]
    dangling = [ToolMessage(content="Not run: the turn reached its tool limit.", tool_call_id=c["id"], name=c["name"])
                for c in (last.tool_calls if isinstance(last, AIMessage) else [])]
    ctx = AgentContext.from_config(config)
    handoff: dict[str, Any] = {"reason": "failed_to_resolve",
                               "summary": f"The assistant could not finish after {state.get('loops', 0)} steps."}
    if ctx.conversation_id is not None:
        with session_for(ctx, config) as session:
            open_handoff(session=session, conversation_id=ctx.conversation_id, reason="failed_to_resolve",
                         summary=handoff["summary"], ai_agent_id=ctx.ai_agent_id)
    message = _configurable(config).get("handoff_message") or "Let me get someone from our team to help you."
    return {"messages": [*dangling, AIMessage(content=message, id=str(uuid.uuid4()))], "reply": message,
            "decision": "handoff", "handoff": handoff}


def finish(state: LeadState) -> dict[str, Any]:
    """The turn's reply, whether it handed off (a successful request_human_handoff this turn), and the frame
    after what the tools did (what was offered, listed, booked)."""
    messages = state["messages"]
    start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=0)
    handoff: dict[str, Any] = {}
    for i, m in enumerate(messages[start:], start=start):
        if isinstance(m, ToolMessage) and m.name == "request_human_handoff" and '"ok": true' in str(m.content):
            call = next(c for x in messages[start:i] if isinstance(x, AIMessage) for c in x.tool_calls
                        if c["id"] == m.tool_call_id)
            handoff = {"reason": call["args"].get("reason"), "summary": call["args"].get("summary")}
    last = messages[-1]
    reply = str(last.content) if isinstance(last, AIMessage) else ""
    decision = "handoff" if handoff else ("ask" if reply.rstrip().endswith("?") else "answer")
    _, done = _turn(messages)
    meta = last.response_metadata if isinstance(last, AIMessage) else {}
    frame = frames.after_tools(state.get("frame") or {}, done, meta.get("proposal"), meta.get("asks_field"))
    return {"reply": reply, "decision": decision, "handoff": handoff, "frame": frame}


def after_finish(state: LeadState) -> Literal["human", "__end__"]:
    return "human" if state.get("decision") == "handoff" else "__end__"


def human(state: LeadState) -> dict[str, Any]:
    """Wait for staff. Resumed with Command(resume={"action": "return_to_ai", "human_messages": [...]})."""
    resumed = interrupt({"reason": state.get("handoff", {}).get("reason"),
                         "summary": state.get("handoff", {}).get("summary")})
    said = [str(t) for t in (resumed or {}).get("human_messages", [])]
    note = "A team member handled the conversation meanwhile" + (": " + " | ".join(said) if said else ".")
    return {"messages": [AIMessage(content=note, id=str(uuid.uuid4()), name="staff")], "decision": "resumed",
            "reply": "", "handoff": {}}


def build_lead_graph(model: BaseChatModel, checkpointer: Any = None, tools: list[Any] | None = None) -> Any:
    """Compile the lead graph (every tool is known to the ToolNode; each run binds only its allowed ones)."""
    graph = StateGraph(LeadState)
    graph.add_node("prepare", prepare)
    graph.add_node("understand", understand)
    graph.add_node("agent", make_agent(model))
    graph.add_node("tools", ToolNode(tools or ALL_TOOLS))
    graph.add_node("escalate", escalate)
    graph.add_node("finish", finish)
    graph.add_node("human", human)
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "understand")
    graph.add_conditional_edges("understand", after_understand)
    graph.add_conditional_edges("agent", after_agent)
    graph.add_edge("tools", "agent")
    graph.add_edge("escalate", "human")
    graph.add_conditional_edges("finish", after_finish)
    graph.add_edge("human", END)
    return graph.compile(checkpointer=checkpointer)
