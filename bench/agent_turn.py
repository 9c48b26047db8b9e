"""Per-turn latency of the full lead graph on the local model: context, retrieval (search_knowledge over the
demo knowledge base), tools, the Postgres checkpoint write and the stored reply, as `run_turn` runs it.

ours:      `agents.lead.runner.run_turn` with the Postgres checkpointer; 500 turns with 1 conversation at a time,
           then 500 turns spread over 16 conversations running concurrently (one thread each).
baseline:  langgraph's prebuilt ReAct agent (`create_react_agent`) on the same model and tools, with an in-memory
           saver, invoked with the same messages and tenant config (no context loading, no reply storage).
floor:     what LangGraph alone costs here: a graph of our shape (prepare -> agent -> tools -> agent -> finish)
           whose nodes do nothing (no model, no embedding, no database work), on the same Postgres checkpointer
           (our pool, a saver per thread), at 1 and at 16 concurrent threads; `floor.memory_*` the same graph on
           an in-memory saver. No turn of the real graph can be cheaper than this on the same machine.
Prints one JSON line (see CONVENTIONS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time as clock
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._db import percentile, scratch_database  # noqa: E402

PREFIXES = ("", "hi! ", "quick question: ", "hey, ", "hello - ", "good morning! ", "sorry to bother you, ",
            "one more thing: ")


def messages(rng: random.Random) -> list[str]:
    """Real customer questions (the labelled retrieval set's paraphrases) with greetings in front: every turn
    is a text the model has not seen, so each pays its own embedding, as live traffic does."""
    import yaml

    items = yaml.safe_load((Path(__file__).resolve().parent.parent / "evals" / "retrieval" / "questions.yaml")
                           .read_text())["items"]
    texts = [prefix + item["question"] for item in items for prefix in PREFIXES]
    rng.shuffle(texts)
    return texts


def setup(conversations: int) -> tuple[Any, Any, list[uuid.UUID]]:
    from sqlalchemy import select

    from models.ai import AIAgent, KnowledgeBase
    from models.conversations import Channel, Conversation, ConversationAIConfig
    from models.crm import Contact
    from models.db import TenantScope, owner_session, tenant_session
    from models.tenancy import SubAccount
    from services.demo_agency import seed_demo

    with owner_session() as session:
        summary = seed_demo(session=session)
    sub = summary.sub_account_ids["restaurant-a"]
    scope = TenantScope(agency_id=summary.agency_id, sub_account_id=sub)
    ids = []
    with tenant_session(scope) as session:
        channel = session.scalars(select(Channel).where(Channel.channel_type == "sms")).one()
        agent = session.scalars(select(AIAgent).join(KnowledgeBase, KnowledgeBase.ai_agent_id == AIAgent.id)).one()
        assert session.get(SubAccount, sub) is not None
        for i in range(conversations):
            contact = Contact(sub_account_id=sub, agency_id=summary.agency_id, first_name="Bench", last_name=str(i),
                              email=f"bench-{i}@example.com", lifecycle_stage="lead")
            session.add(contact)
            session.flush()
            conversation = Conversation(sub_account_id=sub, channel_id=channel.id, contact_id=contact.id)
            session.add(conversation)
            session.flush()
            session.add(ConversationAIConfig(sub_account_id=sub, conversation_id=conversation.id,
                                             ai_agent_id=agent.id, mode="autopilot"))
            ids.append(conversation.id)
    return summary.agency_id, sub, ids


def inbound(scope: Any, conversation_id: uuid.UUID, text: str) -> uuid.UUID:
    from models.conversations import Conversation, Message
    from models.db import tenant_session

    with tenant_session(scope) as session:
        conversation = session.get(Conversation, conversation_id)
        message = Message(sub_account_id=conversation.sub_account_id, conversation_id=conversation_id,
                          channel_id=conversation.channel_id, contact_id=conversation.contact_id,
                          direction="inbound", sender_type="contact", body=text, status="received")
        session.add(message)
        session.flush()
        return message.id


decisions: dict[str, int] = {}
UNUSED: list[str] = []


def fresh() -> None:
    """Forget every text read or embedded so far, so no phase is helped by another's cache: every per-text
    cache of the understanding modules (an lru_cache of 1,024 entries or more) and the embedder's recent
    vectors. What a process builds once (lingua's detector, the exemplar matrices) stays, as in a warm worker."""
    import importlib
    import pkgutil

    import agents.understanding
    from knowledge.embedders import embedder_for

    for info in pkgutil.iter_modules(agents.understanding.__path__):
        module = importlib.import_module(f"agents.understanding.{info.name}")
        for value in vars(module).values():
            stats = getattr(value, "cache_info", None)
            if stats is not None and getattr(value, "__module__", None) == module.__name__ \
                    and (stats().maxsize or 0) >= 1024:
                value.cache_clear()
    embedder_for("all-MiniLM-L6-v2")._recent.clear()  # type: ignore[attr-defined]


def run(turns: int, concurrency: int, conversations: list[uuid.UUID], agency: uuid.UUID, sub: uuid.UUID,
        rng: random.Random) -> list[float]:
    from agents.lead.runner import return_to_ai, run_turn
    from models.db import TenantScope

    scope = TenantScope(agency_id=agency, sub_account_id=sub)
    pool = UNUSED
    plan = [[pool.pop() for _ in range(turns // concurrency)] for _ in range(concurrency)]

    def worker(index: int) -> list[float]:
        samples = []
        for text in plan[index]:
            message_id = inbound(scope, conversations[index], text)
            started = clock.perf_counter()
            result = run_turn(agency_id=agency, sub_account_id=sub, conversation_id=conversations[index],
                              message_id=message_id)
            samples.append((clock.perf_counter() - started) * 1000)
            assert result.decision != "skipped", "every measured turn must run the graph"
            decisions[result.decision] = decisions.get(result.decision, 0) + 1
            if result.decision == "handoff":  # staff hand it straight back (not measured), so the AI keeps going
                return_to_ai(agency_id=agency, sub_account_id=sub, conversation_id=conversations[index],
                             human_messages=["(bench) handled"])
        return samples

    with ThreadPoolExecutor(concurrency) as pool:
        return [s for samples in pool.map(worker, range(concurrency)) for s in samples]


def baseline(turns: int, concurrency: int, conversations: list[uuid.UUID], agency: uuid.UUID, sub: uuid.UUID,
             rng: random.Random, contacts: dict[uuid.UUID, uuid.UUID]) -> list[float]:
    from langchain_core.messages import HumanMessage, SystemMessage
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.prebuilt import create_react_agent  # the prebuilt ReAct loop langchain.agents wraps

    from agents.local_model import CONTEXT_TAG, LocalPolicyModel
    from tools.registry import tools_for

    capabilities = ["answer_faq", "book_appointments", "qualify_leads", "take_payments", "escalate_to_human"]
    agent = create_react_agent(LocalPolicyModel(), tools_for(capabilities), checkpointer=InMemorySaver(),
                               prompt=SystemMessage(CONTEXT_TAG + json.dumps({"timezone": "America/New_York",
                                                                              "channel": "sms"})))
    fresh()
    pool = messages(random.Random(99))  # the same kind of texts ours answered, none seen before
    plan = [[pool.pop() for _ in range(turns // concurrency)] for _ in range(concurrency)]

    def worker(index: int) -> list[float]:
        config = {"configurable": {"thread_id": f"baseline-{index}", "agency_id": str(agency),
                                   "sub_account_id": str(sub), "capabilities": capabilities,
                                   "conversation_id": str(conversations[index]),
                                   "contact_id": str(contacts[conversations[index]])}}
        samples = []
        for text in plan[index]:
            started = clock.perf_counter()
            agent.invoke({"messages": [HumanMessage(text)]}, config)
            samples.append((clock.perf_counter() - started) * 1000)
        return samples

    with ThreadPoolExecutor(concurrency) as pool:
        return [s for samples in pool.map(worker, range(concurrency)) for s in samples]


def floor(turns: int, concurrency: int, saver: str) -> list[float]:
    """A turn of LangGraph with nothing in it: the same node shape as the lead graph, trivial nodes."""
    from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, ToolMessage
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, StateGraph

    from agents.checkpoint import checkpointer
    from agents.lead.graph import KEEP_MESSAGES
    from agents.lead.state import LeadState

    def agent(state: LeadState) -> dict[str, Any]:
        if state.get("loops", 0) == 0:
            return {"messages": [AIMessage("", id=str(uuid.uuid4()), tool_calls=[
                {"name": "search_knowledge", "args": {"query": "x"}, "id": uuid.uuid4().hex}])], "loops": 1}
        return {"messages": [AIMessage("done", id=str(uuid.uuid4()))], "loops": 2}

    def tools(state: LeadState) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]  # type: ignore[union-attr]
        return {"messages": [ToolMessage("{}", tool_call_id=call["id"], name=call["name"], id=str(uuid.uuid4()))]}

    def prepare(state: LeadState) -> dict[str, Any]:  # the history bounded as ours keeps it
        old = state["messages"][:-KEEP_MESSAGES] if len(state["messages"]) > KEEP_MESSAGES else []
        return {"loops": 0, "reply": "", "messages": [RemoveMessage(id=m.id) for m in old if m.id]}

    graph = StateGraph(LeadState)
    graph.add_node("prepare", prepare)
    graph.add_node("agent", agent)
    graph.add_node("tools", tools)
    graph.add_node("finish", lambda state: {"reply": state["messages"][-1].content})
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "agent")
    graph.add_conditional_edges("agent", lambda state: "tools" if state.get("loops") == 1 else "finish")
    graph.add_edge("tools", "agent")
    graph.set_finish_point("finish")
    shared = InMemorySaver()
    run_id = uuid.uuid4().hex[:8]

    def worker(index: int) -> list[float]:
        app = graph.compile(checkpointer=checkpointer() if saver == "postgres" else shared)
        samples = []
        for turn in range(turns // concurrency):
            config = {"configurable": {"thread_id": f"floor-{run_id}-{saver}-{index}"}}
            started = clock.perf_counter()
            app.invoke({"messages": [HumanMessage(f"hello {turn}", id=str(uuid.uuid4()))]}, config)
            samples.append((clock.perf_counter() - started) * 1000)
        return samples

    with ThreadPoolExecutor(concurrency) as pool:
        return [s for samples in pool.map(worker, range(concurrency)) for s in samples]


def contact_ids(conversations: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    from sqlalchemy import select

    from models.conversations import Conversation
    from models.db import owner_session

    with owner_session() as session:
        return {c: k for c, k in session.execute(select(Conversation.id, Conversation.contact_id)
                                                 .where(Conversation.id.in_(conversations)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(7)
    UNUSED.extend(messages(random.Random(99)))  # 1,440 distinct texts, each answered at most once by ours
    with scratch_database("lp_bench_agent_turn") as (owner_url, _):
        os.environ["DATABASE_URL"] = owner_url  # the runner, tools and checkpointer use the configured database
        from leadpilot.settings import get_settings

        get_settings.cache_clear()
        agency, sub, conversations = setup(args.concurrency)
        run(32, 1, conversations, agency, sub, rng)  # warm: model load, pools, caches (not measured)
        decisions.clear()
        fresh()
        one = run(args.turns, 1, conversations, agency, sub, rng)
        many = run(args.turns, args.concurrency, conversations, agency, sub, rng)
        contacts = contact_ids(conversations)
        base_one = baseline(args.turns, 1, conversations, agency, sub, rng, contacts)
        base_many = baseline(args.turns, args.concurrency, conversations, agency, sub, rng, contacts)
        floor(64, 1, "postgres")  # warm
        floors = {(saver, n): floor(args.turns, n, saver) for saver in ("postgres", "memory")
                  for n in (1, args.concurrency)}
        from agents.checkpoint import _pool
        from models.db import get_app_engine, get_owner_engine

        _pool().close()
        get_app_engine().dispose()
        get_owner_engine().dispose()
    print(json.dumps({
        "bench": "agent_turn",
        "ours": {"p50_ms": percentile(many, 50), "p95_ms": percentile(many, 95),
                 "single_p50_ms": percentile(one, 50), "single_p95_ms": percentile(one, 95)},
        "baseline": {"p50_ms": percentile(base_many, 50), "p95_ms": percentile(base_many, 95),
                     "single_p50_ms": percentile(base_one, 50), "single_p95_ms": percentile(base_one, 95)},
        "floor": {"p50_ms": percentile(floors["postgres", args.concurrency], 50),
                  "p95_ms": percentile(floors["postgres", args.concurrency], 95),
                  "single_p50_ms": percentile(floors["postgres", 1], 50),
                  "single_p95_ms": percentile(floors["postgres", 1], 95),
                  "memory_p50_ms": percentile(floors["memory", args.concurrency], 50),
                  "memory_p95_ms": percentile(floors["memory", args.concurrency], 95),
                  "memory_single_p50_ms": percentile(floors["memory", 1], 50)},
        "params": {"turns": args.turns, "concurrency": args.concurrency, "model": "local policy model",
                   "cores": os.cpu_count(), "ours_checkpointer": "postgres", "baseline_checkpointer": "memory",
                   "baseline": "langgraph.prebuilt.create_react_agent", "ours_decisions": decisions},
    }))


if __name__ == "__main__":
    main()
