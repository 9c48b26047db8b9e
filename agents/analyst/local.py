"""The offline analyst policy: reads a staff question, picks the reporting tool and its arguments (metric,
period, comparison) with rules and dateparser, and words the answer from the tool's figures only."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool

from agents.local_model import _context

METRIC_WORDS = [  # most specific first
    ("cost_per_booked_call", r"cost per (booked )?call|cpbc"),
    ("cost_per_acquisition", r"cost per acquisition|\bcpa\b|\bcac\b|cost per (customer|sale|close)"),
    ("show_rate", r"show[- ]?(up )?rate|no[- ]?show rate|attendance"),
    ("close_rate", r"close rate|closing rate|conversion rate|win rate"),
    ("roi", r"\broi\b|return on|roas"),
    ("refunds", r"refund"),
    ("ad_spend", r"ad spend|spend|spent|advertising"),
    ("revenue", r"revenue|sales|income|made|earn"),
    ("booked_calls", r"booked calls|bookings|booked|calls booked"),
]
LABELS = {"show_rate": "Show rate", "close_rate": "Close rate", "roi": "ROI", "revenue": "Revenue",
          "refunds": "Refunds", "ad_spend": "Ad spend", "cost_per_booked_call": "Cost per booked call",
          "cost_per_acquisition": "Cost per acquisition", "booked_calls": "Booked calls"}
RATIOS = {"show_rate", "close_rate", "roi"}
MONEY = {"revenue", "refunds", "ad_spend", "cost_per_booked_call", "cost_per_acquisition"}


def metric_of(question: str) -> str | None:
    for metric, pattern in METRIC_WORDS:
        if re.search(pattern, question, re.I):
            return metric
    return None


def _today(ctx: dict[str, Any]) -> date:
    # the asker's date, not UTC's: at 8 pm in New York on the 30th, "last month" is still the month before
    now = datetime.fromisoformat(ctx["now"]) if ctx.get("now") else datetime.now(ZoneInfo("UTC"))
    return now.astimezone(ZoneInfo(ctx.get("timezone") or "UTC")).date()


def period_of(question: str, today: date) -> tuple[str, date]:
    """(day|week|month|quarter, a day inside it) from 'last month', 'this quarter', 'in October', ..."""
    q = question.lower()
    grain = ("quarter" if "quarter" in q else "week" if "week" in q else
             "day" if re.search(r"\b(today|yesterday)\b", q) else "month")
    if "yesterday" in q:
        return "day", today - timedelta(days=1)
    if re.search(r"\b(last|previous|past)\s+(month|week|quarter)", q):
        step = {"month": 32, "week": 7, "quarter": 95}[grain]
        anchor = (today.replace(day=1) - timedelta(days=1)) if grain == "month" else today - timedelta(days=step)
        if grain == "quarter":
            first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
            anchor = first - timedelta(days=1)
        return grain, anchor
    month = re.search(r"\b(january|february|march|april|may|june|july|august|september|october|november|"
                      r"december)\b(?:\s+(\d{4}))?", q)
    if month:
        number = datetime.strptime(month.group(1), "%B").month
        year = int(month.group(2)) if month.group(2) else (today.year if number <= today.month else today.year - 1)
        return "month", date(year, number, 1)
    return grain, today


def say(metric: str, value: Any) -> str:
    if value is None:
        return "n/a"
    number = Decimal(str(value))
    if metric in RATIOS:
        return f"{number * 100:.1f}%"
    if metric in MONEY:
        return f"${number:,.2f}"
    return f"{number:,.0f}"


class AnalystPolicyModel(BaseChatModel):
    """Offline analyst: one tool call chosen by rules, then an answer worded from its result."""

    tool_names: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "leadpilot-local-analyst"

    def bind_tools(self, tools: Sequence[BaseTool | dict[str, Any]], **kwargs: Any) -> AnalystPolicyModel:  # type: ignore[override]
        return self.model_copy(update={"tool_names": [t.name for t in tools if isinstance(t, BaseTool)]})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        ctx = _context(messages)
        question = next((str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        results = [m for m in messages if isinstance(m, ToolMessage)]
        message = self._answer(question, json.loads(str(results[-1].content)), results[-1].name) if results \
            else self._plan(question, ctx)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _call(self, name: str, args: dict[str, Any]) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}",
                                                  "type": "tool_call"}])

    def _plan(self, question: str, ctx: dict[str, Any]) -> AIMessage:
        today = _today(ctx)
        grain, anchor = period_of(question, today)
        q = question.lower()
        if re.search(r"\b(haven'?t|have not|not yet|never|didn'?t|did not)\b.*\bbook", q) or "unbooked" in q:
            source = re.search(r"\bfrom\s+([a-z][\w .-]*?)(?:\s+(?:have|haven|that|who|did|not)\b|\?|$)", question,
                               re.I)
            return self._call("unbooked_leads", {"source": source.group(1).strip() if source else None})
        metric = metric_of(question)
        if re.search(r"no[- ]?shows?|how many (sales )?calls|call outcomes", q) and metric in (None, "booked_calls"):
            return self._call("sales_call_outcomes", {"period": grain, "anchor": anchor.isoformat()})
        if metric is None:
            return AIMessage(content="I can answer with show rate, close rate, revenue, refunds, ad spend, ROI, cost "
                                     "per booked call, cost per acquisition, booked calls, call outcomes and unbooked "
                                     "leads. Which would you like, and for which period?")
        if re.search(r"\b(which|best|worst|highest|lowest|top|rank|by campaign|each campaign|compare)\b", q):
            return self._call("compare_campaigns", {"metric": metric, "period": grain, "anchor": anchor.isoformat()})
        return self._call("report_metric", {"metric": metric, "period": grain, "anchor": anchor.isoformat()})

    def _answer(self, question: str, result: dict[str, Any], tool: str | None) -> AIMessage:
        if not result.get("ok", True):
            return AIMessage(content=f"I couldn't get that: {result.get('error', {}).get('message')}")
        if tool == "report_metric":
            metric = result["metric"]
            start = datetime.fromisoformat(result["period"]["start"]).astimezone(ZoneInfo(result["timezone"]))
            now, before = say(metric, result["value"]), say(metric, result["previous_value"])
            trend = {"up": "up from", "down": "down from", "stable": "about the same as"}.get(result["trend"] or "",
                                                                                            "compared with")
            return AIMessage(content=f"{LABELS[metric]} for the period starting {start:%b %-d, %Y} was {now}, "
                                     f"{trend} {before} the period before.")
        if tool == "compare_campaigns":
            metric, rows = result["metric"], [r for r in result["campaigns"] if r["value"] is not None]
            if not rows:
                return AIMessage(content=f"No campaign has a {LABELS[metric].lower()} for that period.")
            worst = re.search(r"\b(worst|lowest)\b", question, re.I)
            pick = rows[-1] if worst else rows[0]
            label = LABELS[metric] if metric == "roi" else LABELS[metric].lower()
            return AIMessage(content=f"{pick['campaign']} had the {'lowest' if worst else 'best'} "
                                     f"{label}: {say(metric, pick['value'])} "
                                     f"({len(rows)} campaigns compared).")
        if tool == "sales_call_outcomes":
            o = result["outcomes"]
            return AIMessage(content=f"Calls in that period: {o['scheduled']} still scheduled, {o['completed']} "
                                     f"completed, {o['closed']} closed and {o['no_show']} no-shows.")
        if tool == "unbooked_leads":
            source = f" from {result['source']}" if result.get("source") else ""
            return AIMessage(content=f"{result['count']} leads{source} haven't booked yet.")
        return AIMessage(content="Done.")
