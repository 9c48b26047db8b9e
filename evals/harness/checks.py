"""What decides a trial: database assertions on the trial's end state, what the agent said (must_say /
must_not_say), the handoff, the tools, and for the analyst the figures computed independently from the
reporting service. Every check returns a reason a person can act on."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from lingua import Language, LanguageDetector, LanguageDetectorBuilder
from sqlalchemy import text

from evals.harness.fixtures import World, local_instant
from evals.harness.scenario import DbAssertion, Expected, Figure, ReportCheck, Scenario, ToolCall
from models.db import TenantScope, owner_session, tenant_session

ENTITY_SQL = {
    "appointment": ("appointments", "contact_id = :contact_id AND deleted_at IS NULL"),
    "contact": ("contacts", "id = :contact_id"),
    "handoff": ("handoffs", "conversation_id = :conversation_id"),
    "opportunity": ("opportunities", "contact_id = :contact_id AND deleted_at IS NULL"),
    "invoice": ("invoices", "contact_id = :contact_id"),
    "ai_config": ("conversation_ai_configs", "conversation_id = :conversation_id"),
    "message": ("messages", "conversation_id = :conversation_id"),
}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    reason: str


def _params(world: World) -> dict[str, Any]:
    return {"contact_id": world.contact_id, "conversation_id": world.conversation_id,
            "sub_account_id": world.sub_account_id, "agency_id": world.agency_id}


def _get(row: dict[str, Any], path: str) -> Any:
    if path == "start":
        path = "start_time"
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


_MISSING = object()


def _matches(actual: Any, wanted: Any, key: str, world: World) -> bool:
    if wanted == "present":
        return actual is not _MISSING and actual not in (None, "", [], {}, False)
    if wanted == "absent":
        return actual is _MISSING or actual in (None, "", [], {}, False)
    if actual is _MISSING:
        return False
    if key in ("start", "start_time") and isinstance(wanted, str):
        return isinstance(actual, datetime) and actual == local_instant(wanted, world.timezone)
    if isinstance(wanted, list) and isinstance(actual, list):
        return sorted(map(str, actual)) == sorted(map(str, wanted))
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return actual == wanted
    if isinstance(wanted, int | float | Decimal) and isinstance(actual, int | float | Decimal):
        return Decimal(str(actual)) == Decimal(str(wanted))
    if isinstance(wanted, str) and wanted.startswith("re:"):
        return re.search(wanted[3:], str(actual), re.I) is not None
    if isinstance(actual, date | datetime):
        return actual.isoformat().startswith(str(wanted))
    return str(actual) == str(wanted)


def _show(row: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    shown = {k.split(".")[0]: row.get(k.split(".")[0]) for k in keys} if keys else {}
    shown.update({k: row[k] for k in ("status", "start_time", "reason") if k in row})
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in shown.items()}


def db_check(assertion: DbAssertion, world: World, diff: dict[str, list[dict[str, Any]]]) -> Check:
    """One `expected.db` entry against the trial's database."""
    name = f"db: {assertion.describe()}"
    if assertion.only_lead_changed:
        strays = outside_lead(world, diff)
        return Check(name, not strays, "nothing outside the lead's rows changed" if not strays else
                     f"rows outside the lead's changed: {strays[:5]}")
    with owner_session() as session:
        if assertion.query is not None:
            value = session.execute(text(assertion.query), {
                k: v for k, v in _params(world).items() if f":{k}" in assertion.query}).scalar()
            ok = _matches(value, assertion.equals, "", world)
            return Check(name, ok, f"query returned {value!r}, expected {assertion.equals!r}")
        table, where = ENTITY_SQL[assertion.entity or ""]
        rows = [dict(r) for r in session.execute(text(f"SELECT * FROM {table} WHERE {where} "  # noqa: S608
                                                      "ORDER BY created_at"), _params(world)).mappings()]
    hits = [r for r in rows if all(_matches(_get(r, k), v, k, world) for k, v in assertion.where.items())]
    ok = len(hits) == assertion.count if assertion.count is not None else len(hits) >= 1
    keys = list(assertion.where)
    return Check(name, ok, f"{len(hits)} of {len(rows)} {assertion.entity} rows match; rows: "
                           f"{[_show(r, keys) for r in rows][:6]}")


def said(pattern: str, transcript: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], transcript, re.I | re.S) is not None
    return pattern.lower() in transcript.lower()


def handoff_check(expected: str, world: World) -> Check:
    with owner_session() as session:
        reasons = list(session.execute(text("SELECT reason FROM handoffs WHERE conversation_id = :c "
                                            "ORDER BY requested_at"), {"c": world.conversation_id}).scalars())
    if expected == "none":
        return Check("handoff: none", not reasons, f"handoffs opened: {reasons}" if reasons else "no handoff")
    return Check(f"handoff: {expected}", expected in reasons, f"handoffs opened: {reasons or 'none'}")


# tables a lead's conversation legitimately writes outside rows that name the lead
SYSTEM_TABLES = {"outbox_events", "activity_logs", "ai_conversation_logs", "usage_events", "notifications",
                 "sandbox_deliveries"}  # the sandbox SMS/e-mail transport's record of the reply to this lead


def outside_lead(world: World, diff: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Rows written during the conversation that belong to someone other than this lead."""
    mine = {world.contact_id, world.conversation_id, *world.harness_rows}
    strays = []
    for table, rows in diff.items():
        for row in rows:
            values = row["row"]
            if values.get("sub_account_id") not in (None, str(world.sub_account_id)):
                strays.append(f"{table}:{values.get('id')} (another sub-account)")
                continue
            if table in SYSTEM_TABLES or values.get("id") in {str(m) for m in mine}:
                continue
            owner = values.get("contact_id") or values.get("conversation_id")
            if owner is None or owner not in {str(m) for m in mine}:
                strays.append(f"{table}:{values.get('id')} {row['op']}")
    return strays


def money(value: Any) -> str:
    return f"${Decimal(str(value)):,.2f}"


def fmt(metric: str, value: Any) -> str:
    """The figure as the analyst must state it (independent of the analyst's own formatter)."""
    if value is None:
        return "n/a"
    if metric in ("show_rate", "close_rate", "roi"):
        return f"{Decimal(str(value)) * 100:.1f}%"
    if metric in ("revenue", "refunds", "ad_spend", "cost_per_booked_call", "cost_per_acquisition"):
        return money(value)
    return f"{Decimal(str(value)):,.0f}"


def report_strings(check: ReportCheck, world: World, clock: datetime, tz: str, *,
                   agency_view: bool = False) -> list[str]:
    """What the answer must contain, from services.reporting or SQL, in the asker's scope."""
    from models.calendars import Appointment  # noqa: F401  (mapper configured before raw SQL below)
    from services import reporting

    sub = None if agency_view else world.sub_account_id
    scope = TenantScope(agency_id=world.agency_id, sub_account_id=sub)
    anchor = date.fromisoformat(check.anchor) if check.anchor else clock.date()
    with tenant_session(scope) as session:
        if check.kind == "metric":
            assert check.metric
            report = reporting.build_report(session=session, group_by="agency", tz=tz, period=check.period,
                                            anchor=anchor, metrics=[check.metric], now=clock)
            figure = report.groups[0].figures[check.metric] if report.groups else None
            if figure is None:
                return ["n/a"]
            wanted = [fmt(check.metric, figure.value)]
            return wanted + ([fmt(check.metric, figure.baseline)] if check.with_baseline else [])
        if check.kind in ("best_campaign", "worst_campaign"):
            assert check.metric
            report = reporting.build_report(session=session, group_by="campaign", tz=tz, period=check.period,
                                            anchor=anchor, metrics=[check.metric], now=clock)
            names = dict(session.execute(text("SELECT id, name FROM campaigns")).all())
            ranked = sorted((g for g in report.groups if g.figures[check.metric].value is not None),
                            key=lambda g: g.figures[check.metric].value)
            if not ranked:
                return ["No campaign"]
            pick = ranked[-1] if check.kind == "best_campaign" else ranked[0]
            return [names.get(pick.key, "unattributed"), fmt(check.metric, pick.figures[check.metric].value)]
        if check.kind == "unbooked_leads":
            where = ("c.deleted_at IS NULL AND c.lifecycle_stage = 'lead' AND c.id NOT IN (SELECT contact_id FROM "
                     "appointments WHERE deleted_at IS NULL AND contact_id IS NOT NULL)")
            params: dict[str, Any] = {}
            if check.source:
                where += " AND c.lead_source ILIKE :source"
                params["source"] = f"%{check.source}%"
            count = session.execute(text(f"SELECT count(*) FROM contacts c WHERE {where}"), params).scalar()  # noqa: S608
            return [f"{count} leads"]
        start, end = reporting.period_bounds(check.period, anchor, tz)
        counts = dict(session.execute(text(
            "SELECT call_outcome, count(*) FROM sales_calls WHERE scheduled_date_time >= :s AND "
            "scheduled_date_time < :e AND deleted_at IS NULL GROUP BY call_outcome"), {"s": start, "e": end}).all())
        return [f"{counts.get('scheduled', 0)} still scheduled", f"{counts.get('completed', 0)} completed",
                f"{counts.get('closed', 0)} closed", f"{counts.get('no_show', 0)} no-shows"]


def uuid_str(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


UNKNOWN = re.compile(  # how an agent says it does not know, in English and Spanish
    r"\b(?:(?:i|we) (?:do not|don't|dont) (?:know|have (?:that|this|any) (?:information|info|details))|not sure|"
    r"(?:i|we) (?:can't|cannot|can not) (?:find|answer|confirm)|no (?:lo )?s[eé]\b|no estoy segur[oa]|"
    r"no tengo (?:esa|esta|ese|la) informaci[oó]n|no (?:puedo|podemos) confirmar)", re.I)


@lru_cache(maxsize=1)
def _languages() -> LanguageDetector:
    return LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.SPANISH).build()


def reply_language(reply: str) -> str | None:
    """"en" or "es" for a reply long enough to tell (three words or more), else None."""
    if len(re.findall(r"\w+", reply)) < 3:
        return None
    found = _languages().detect_language_of(reply)
    return None if found is None else found.iso_code_639_1.name.lower()


def tool_check(wanted: str | ToolCall, tool_calls: list[dict[str, Any]], world: World) -> Check:
    name = wanted if isinstance(wanted, str) else wanted.name
    args = {} if isinstance(wanted, str) else wanted.args
    calls = [c for c in tool_calls if c["name"] == name]
    hit = any(all(_matches(_get(c.get("args") or {}, k), v, k, world) for k, v in args.items()) for c in calls)
    label = f"tool called: {name}" + (f" with {args}" if args else "")
    return Check(label, hit, f"calls of {name}: {[c.get('args') for c in calls]}" if calls else
                 f"called: {[c['name'] for c in tool_calls]}")


def deliveries(world: World) -> list[dict[str, Any]]:
    """What the outbound sender actually handed to a transport for this conversation (the sandbox's record)."""
    with owner_session() as session:
        return [dict(r) for r in session.execute(text(
            "SELECT d.request FROM sandbox_deliveries d JOIN messages m ON m.id::text = d.request->>'message_id' "
            "WHERE m.conversation_id = :c ORDER BY d.created_at"), {"c": world.conversation_id}).mappings()]


def renderings(value: Any, kind: str) -> list[str]:
    """The ways an answer may write the figure: "$1,234.50", "$1,234.5", "$1,235" or "1,234.50" for money,
    "25.0%" or "25%" for a ratio of 0.25, "1,234" or "1234" for a count; text as it is."""
    if value is None:
        return ["n/a", "no data", "none"]
    if kind == "text":
        return [str(value)]
    number = Decimal(str(value))
    if kind == "percent":
        pct = number * 100
        return list(dict.fromkeys([f"{pct:.1f}%", f"{pct:.0f}%", f"{pct:.2f}%"]))
    if kind == "money":
        return list(dict.fromkeys([f"${number:,.2f}", f"${number:,.0f}", f"{number:,.2f}", f"${number:.2f}"]))
    whole = number == number.to_integral_value()
    return list(dict.fromkeys([f"{number:,.0f}", f"{number:.0f}"] if whole else [f"{number:,.2f}", f"{number:.1f}"]))


def figure_check(figure: Figure, world: World, answer: str) -> Check:
    with owner_session() as session:
        value = session.execute(text(figure.query), {
            k: v for k, v in _params(world).items() if f":{k}" in figure.query}).scalar()
    forms = renderings(value, figure.format)
    hit = next((f for f in forms if re.search(rf"(?<![\d.,]){re.escape(f)}(?![\d])", answer, re.I)), None)
    name = f"figure {figure.label or figure.query[:60]}: {forms[0]}"
    return Check(name, hit is not None, "stated" if hit else f"none of {forms} in the answer")


def expectation_checks(expected: Expected, world: World, transcript: list[dict[str, str]],
                       tool_calls: list[dict[str, Any]], diff: dict[str, list[dict[str, Any]]], channel: str, *,
                       nested: bool = False) -> list[Check]:
    """The checks of one expectation (the scenario's, or an alternative inside any_of / all_of, where the
    handoff is checked only when stated)."""
    replies = [t["text"] for t in transcript if t["role"] == "agent" and t["text"]]
    agent_text = "\n".join(replies)
    checks = [db_check(a, world, diff) for a in expected.db]
    for pattern in expected.must_say:
        checks.append(Check(f"must_say: {pattern}", said(pattern, agent_text), "said" if said(pattern, agent_text)
                            else "never said by the agent"))
    for pattern in expected.must_not_say:
        bad = said(pattern, agent_text)
        checks.append(Check(f"must_not_say: {pattern}", not bad, "the agent said it" if bad else "not said"))
    if expected.one_of:
        hits = [p for p in expected.one_of if said(p, agent_text)]
        checks.append(Check(f"one_of: {expected.one_of}", bool(hits), f"said {hits}" if hits else "none said"))
    if expected.language is not None:
        found = {r[:60]: reply_language(r) for r in replies}
        wrong = {r: lang for r, lang in found.items() if lang not in (None, expected.language)}
        checks.append(Check(f"language: {expected.language}", bool(replies) and not wrong,
                            f"replies in another language: {wrong}" if wrong else
                            "every reply" if replies else "no reply to judge"))
    if expected.no_reply:
        with owner_session() as session:
            queued = session.execute(text("SELECT count(*) FROM messages WHERE conversation_id = :c AND "
                                          "direction = 'outbound'"), {"c": world.conversation_id}).scalar_one()
        checks.append(Check("no reply", not replies and not queued,
                            f"replies: {replies[:2]}, outbound messages stored: {queued}"))
    if expected.says_unknown:
        admitted = [r for r in replies if UNKNOWN.search(r)]
        if not admitted:
            with owner_session() as session:
                admitted = list(session.execute(text(
                    "SELECT reason FROM handoffs WHERE conversation_id = :c AND reason = 'lack_of_information'"),
                    {"c": world.conversation_id}).scalars())
        checks.append(Check("says it does not know", bool(admitted), f"by: {admitted[:1]}" if admitted else
                            "neither said it does not know nor handed off for lack of information"))
    for figure in expected.figures:
        checks.append(figure_check(figure, world, agent_text))
    if expected.delivered is not None:
        sent = deliveries(world)
        checks.append(Check(f"delivered: {expected.delivered}", len(sent) == expected.delivered,
                            f"{len(sent)} sent: {[d['request'].get('body', '')[:60] for d in sent]}"))
    if channel != "staff" and expected.handoff is not None and (not nested or "handoff" in expected.model_fields_set):
        checks.append(handoff_check(expected.handoff, world))
    for tool in expected.tools:
        checks.append(tool_check(tool, tool_calls, world))
    called = [c["name"] for c in tool_calls]
    for name in expected.must_not_call:
        checks.append(Check(f"must_not_call: {name}", name not in called, f"called: {called}"))
    for group in expected.all_of:
        checks += expectation_checks(group, world, transcript, tool_calls, diff, channel, nested=True)
    if expected.any_of:
        outcomes = [expectation_checks(alt, world, transcript, tool_calls, diff, channel, nested=True)
                    for alt in expected.any_of]
        held = [i for i, alt in enumerate(outcomes) if all(c.passed for c in alt)]
        why = "; ".join(f"#{i}: " + ", ".join(f"{c.name} -> {c.reason}" for c in alt if not c.passed)
                        for i, alt in enumerate(outcomes))
        checks.append(Check(f"any_of ({len(outcomes)} alternatives)", bool(held),
                            f"alternative #{held[0]} holds" if held else why))
    return checks


def scenario_checks(scenario: Scenario, world: World, transcript: list[dict[str, str]],
                    tool_calls: list[dict[str, Any]], diff: dict[str, list[dict[str, Any]]],
                    allowed_tools: set[str] | None) -> list[Check]:
    """Every deterministic check of a finished trial."""
    checks = expectation_checks(scenario.expected, world, transcript, tool_calls, diff, scenario.channel)
    called = [c["name"] for c in tool_calls]
    if allowed_tools is not None:
        extra = sorted({c for c in called if c not in allowed_tools})
        checks.append(Check("tool permission", not extra, f"tools outside the agent's capabilities: {extra}"
                            if extra else "every call within the agent's capabilities"))
    return checks
