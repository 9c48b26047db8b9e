"""Run scenarios: each trial gets its own database copy and a frozen clock, the simulated user talks to the
real lead graph (one stored inbound message, one turn, repeat) or asks the analyst, then the checks and metrics
score the end state. A trial that crashes is a failed trial with the traceback as its reason."""

from __future__ import annotations

import os
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from evals.harness import clock
from evals.harness.checks import Check, report_strings, said, scenario_checks
from evals.harness.database import Databases
from evals.harness.fixtures import World, apply, local_instant, take_slot
from evals.harness.metrics import deterministic_metrics, judge_metrics, judge_reason, llm_test_case
from evals.harness.scenario import Scenario
from evals.harness.simulator import simulator_for
from models.db import owner_session, tenant_session

DIFF_SKIP_COLUMNS = {"embedding", "search_vector", "content_tsv", "tsv"}


@dataclass
class Trial:
    """One run of one scenario."""

    scenario_id: str
    capability: str
    trial: int
    passed: bool
    transcript: list[dict[str, str]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    db_diff: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    split: str = "core"
    case: Any = field(default=None, repr=False, compare=False)  # the deepeval LLMTestCase (not in reports)

    def why(self) -> str:
        """Why the trial failed, in one line."""
        if self.error:
            return self.error.strip().splitlines()[-1]
        return "; ".join(f"{c['name']} -> {c['reason']}" for c in self.checks if not c["passed"])


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


_TABLES: list[tuple[str, bool, bool]] = []


def _tables() -> list[tuple[str, bool, bool]]:
    if not _TABLES:
        with owner_session() as session:
            rows = session.execute(text(
                "SELECT table_name, bool_or(column_name = 'created_at'), bool_or(column_name = 'updated_at') "
                "FROM information_schema.columns WHERE table_schema = 'public' GROUP BY table_name "
                "HAVING bool_or(column_name IN ('created_at', 'updated_at')) ORDER BY 1")).all()
        _TABLES.extend((t, bool(c), bool(u)) for t, c, u in rows)
    return _TABLES


def db_now() -> datetime:
    with owner_session() as session:
        return session.execute(text("SELECT clock_timestamp()")).scalar_one()


def _window(session: object, since: datetime) -> dict[tuple[str, str], tuple[dict[str, Any], Any, Any]]:
    out = {}
    for table, created, updated in _tables():
        conds = (["created_at >= :t"] if created else []) + (["updated_at >= :t"] if updated else [])
        for row in session.execute(text(f"SELECT * FROM {table} WHERE {' OR '.join(conds)}"),  # type: ignore[attr-defined]  # noqa: S608
                                   {"t": since}).mappings():
            out[(table, str(row.get("id")))] = (dict(row), row.get("created_at"), row.get("updated_at"))
    return out


def db_snapshot(since: datetime) -> dict[tuple[str, str], tuple[Any, Any]]:
    """Rows already stamped at or after `since` before the conversation (the demo seed dates some rows in the
    future), so they are not mistaken for the agent's writes."""
    with owner_session() as session:
        return {k: (v[1], v[2]) for k, v in _window(session, since).items()}


def db_diff(since: datetime, before: dict[tuple[str, str], tuple[Any, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every row inserted or updated since `since` (database time) and not already so before, per table."""
    out: dict[str, list[dict[str, Any]]] = {}
    with owner_session() as session:
        for (table, row_id), (row, created, updated) in sorted(_window(session, since).items(), key=str):
            if before.get((table, row_id)) == (created, updated):
                continue
            values = {k: _json(v) for k, v in row.items() if k not in DIFF_SKIP_COLUMNS}
            for k, v in values.items():
                if isinstance(v, str) and len(v) > 240:
                    values[k] = v[:240] + "…"
            op = "update" if (table, row_id) in before or (created is not None and created < since) else "insert"
            out.setdefault(table, []).append({"op": op, "row": values})
    return out


def _tool_calls(world: World) -> list[dict[str, Any]]:
    with owner_session() as session:
        logs = session.execute(text("SELECT tools_called FROM ai_conversation_logs WHERE conversation_id = :c "
                                    "ORDER BY created_at"), {"c": world.conversation_id}).scalars().all()
    return [{"name": c["name"], "args": c.get("args") or {}} for log in logs for c in (log or [])]


def _lead_conversation(scenario: Scenario, world: World, transcript: list[dict[str, str]], simulator_kind: str,
                       start: datetime, trial: int = 0) -> None:
    from agents.lead.runner import return_to_ai, run_turn

    user = simulator_for(scenario, simulator_kind, trial)
    last_reply, turns, minute = "", 0, 0
    while turns < scenario.max_turns:
        step = user.next(last_reply)
        if step is None:
            break
        if step.action == "advance_clock":
            clock.advance(step.minutes)
            minute += step.minutes
            transcript.append({"role": "world", "text": f"(clock +{step.minutes} min)"})
            continue
        if step.action == "take_slot":
            assert step.slot
            take_slot(world, local_instant(step.slot, world.timezone))
            transcript.append({"role": "world", "text": f"(someone else books {step.slot})"})
            continue
        if step.action == "return_to_ai":
            return_to_ai(agency_id=world.agency_id, sub_account_id=world.sub_account_id,
                         conversation_id=world.conversation_id, human_messages=[])
            transcript.append({"role": "world", "text": "(staff return the conversation to the AI)"})
            continue
        said_ = step.burst or [step.say or ""]
        ids = [_store_inbound(world, line) for line in said_]
        transcript.extend({"role": "user", "text": line} for line in said_)
        turns += 1
        minute += 1
        now = start + timedelta(minutes=minute)
        reply, decision = "", "superseded"
        for message_id in ids:  # as the workers would: each message's turn, the earlier ones superseded
            result = run_turn(agency_id=world.agency_id, sub_account_id=world.sub_account_id,
                              conversation_id=world.conversation_id, message_id=message_id, now=now)
            if result.decision != "superseded":
                reply, decision = result.reply, result.decision
        _send_queued(world, now)
        last_reply = reply
        transcript.append({"role": "agent", "text": reply, "decision": decision})


def _store_inbound(world: World, body: str) -> uuid.UUID:
    from models.conversations import Conversation, Message

    with tenant_session(world.scope) as session:
        conversation = session.get(Conversation, world.conversation_id)
        assert conversation is not None
        message = Message(sub_account_id=world.sub_account_id, conversation_id=conversation.id,
                          channel_id=conversation.channel_id, contact_id=world.contact_id, direction="inbound",
                          sender_type="contact", body=body, status="received")
        session.add(message)
        session.flush()
        return message.id


def _send_queued(world: World, now: datetime) -> None:
    """The outbound sender, as a worker runs it, on the sandbox transport: what reaches the lead is recorded,
    and what the product refuses to send (opted out, quiet hours) is not."""
    from channels.outbound import SandboxTransport, deliver
    from models.conversations import Message

    with tenant_session(world.scope) as session:
        queued = list(session.execute(select(Message.id, Message.channel_id).where(
            Message.conversation_id == world.conversation_id, Message.direction == "outbound",
            Message.status == "queued")).all())
        providers = dict(session.execute(text("SELECT id, provider FROM channels")).all())
    for message_id, channel_id in queued:
        deliver(world.scope, message_id, now=now, transport=SandboxTransport(providers[channel_id], "send"))


def _analyst(scenario: Scenario, world: World, transcript: list[dict[str, str]],
             tool_calls: list[dict[str, Any]], start: datetime) -> None:
    from agents.analyst.graph import ask

    state = scenario.initial_state
    sub = world.sub_account_id if state.scope == "sub_account" else None
    for step in scenario.user.turns[: scenario.max_turns]:
        if step.say is None:
            continue
        transcript.append({"role": "user", "text": step.say})
        out = ask(step.say, agency_id=world.agency_id, sub_account_id=sub, user_id=world.user_id,
                  timezone=state.timezone, now=start)
        transcript.append({"role": "agent", "text": out.answer})
        tool_calls.extend(_json(out.tool_calls))


def isolation_group(scenario: Scenario) -> str | None:
    """Trials that may share a database: lead conversations with a business of their own (everything they read
    and write is in their new sub-account), and analyst questions over the demo data (they only read). The rest
    (conversations with the demo restaurants, analyst questions over rows a scenario writes) get a fresh copy."""
    state = scenario.initial_state
    if state.business is not None and scenario.channel != "staff" and not state.other_contacts:
        return "own-business"
    if scenario.channel == "staff" and state.business is None and state.data is None:
        return "read-only"  # the analyst reads the demo agency and writes nothing
    return None


def run_trial(scenario: Scenario, dbs: Databases, index: int, *, simulator: str = "scripted") -> Trial:
    """One trial in its own database copy, with the scenario's clock frozen."""
    started = time.perf_counter()
    transcript: list[dict[str, str]] = []
    tool_calls: list[dict[str, Any]] = []
    checks: list[Check] = []
    metrics: list[dict[str, Any]] = []
    diff: dict[str, list[dict[str, Any]]] = {}
    error = None
    case = None
    at = scenario.initial_state.clock
    try:
        with dbs.trial(isolation_group(scenario)), clock.frozen(at):
            world = apply(scenario)
            since = db_now()
            before = db_snapshot(since)
            if scenario.channel == "staff":
                _analyst(scenario, world, transcript, tool_calls, at)
                allowed = None
                from tools.registry import tools_for

                allowed = {t.name for t in tools_for(["reporting"])}
            else:
                _lead_conversation(scenario, world, transcript, simulator, at, index)
                tool_calls = _tool_calls(world)
                from tools.registry import tools_for

                allowed = {t.name for t in tools_for(world.capabilities)}
            diff = db_diff(since, before)
            checks = scenario_checks(scenario, world, transcript, tool_calls, diff, allowed)
            if scenario.expected.report:
                answer = "\n".join(t["text"] for t in transcript if t["role"] == "agent")
                with clock.frozen(at):
                    for check in scenario.expected.report:
                        for wanted in report_strings(check, world, at, scenario.initial_state.timezone,
                                                                  agency_view=scenario.initial_state.scope == "agency"):
                            checks.append(Check(f"report {check.kind} {check.metric or ''}: {wanted}",
                                                said(wanted, answer), "stated" if said(wanted, answer) else
                                                "the figure from services/reporting is not in the answer"))
            knowledge = _knowledge(world)
            case = llm_test_case(transcript, tool_calls, scenario.expected.tool_names, checks, allowed,
                                 scenario.expected.must_not_call, knowledge)
            for metric in deterministic_metrics() + judge_metrics(scenario.expected.nl_assertions,
                                                                  with_knowledge=bool(knowledge)):
                metric.measure(case)
                metrics.append({"name": metric.__name__, "score": metric.score, "success": metric.is_successful(),
                                "reason": metric.reason})
            skipped = judge_reason()
            if skipped:
                metrics.append({"name": "Tone, helpfulness, faithfulness (GEval)", "score": None, "success": None,
                                "skipped": skipped, "reason": skipped})
    except Exception:
        error = traceback.format_exc(limit=6)
    passed = error is None and all(c.passed for c in checks) and all(m["success"] for m in metrics
                                                                     if not m.get("skipped"))
    return Trial(scenario.id, scenario.capability, index, passed, transcript, _json(tool_calls),
                 [{"name": c.name, "passed": c.passed, "reason": c.reason} for c in checks], metrics, diff, error,
                 round(time.perf_counter() - started, 3), scenario.split, case)


def _knowledge(world: World) -> list[str]:
    """What the agent may answer from (its knowledge base's entries), the retrieval context of faithfulness."""
    if world.agent_id is None:
        return []
    with tenant_session(world.scope) as session:
        rows = session.execute(text(
            "SELECT t.question, t.answer FROM training_data t JOIN knowledge_bases k ON k.id = t.knowledge_base_id "
            "WHERE k.ai_agent_id = :a AND t.deleted_at IS NULL ORDER BY t.chunk_index LIMIT 60"),
            {"a": world.agent_id}).all()
    return [f"{q}\n{a}" if q else a for q, a in rows]


def run_suite(scenarios: list[Scenario], *, k: int, dbs: Databases, simulator: str = "scripted",
              progress: Any = None) -> list[Trial]:
    """k trials of every scenario (k copies of the database each)."""
    os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "YES")
    trials = []
    with dbs.base() as base:
        for scenario in scenarios:
            for index in range(k):
                trial = run_trial(scenario, base, index, simulator=simulator)
                trials.append(trial)
                if progress is not None:
                    progress(trial)
    return trials
