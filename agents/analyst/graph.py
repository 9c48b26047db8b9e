"""The staff analyst: a plain-language question in; figures from the reporting and CRM tools (never from the
model), a small table and, for comparisons and trends, a matplotlib chart out. It runs with the asking user's
scope: a client user's question only ever sees their sub-account."""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from agents.analyst.local import LABELS, AnalystPolicyModel, say
from agents.local_model import CONTEXT_TAG
from tools.registry import tools_for

TOOLS = tools_for(["reporting"])
MAX_STEPS = 4
TREND_WORDS = re.compile(r"\b(vs\.?|versus|compare|compared|than|before|trend|change|previous|prior)\b", re.I)


@dataclass
class AnalystAnswer:
    """What the analyst says, the figures it used, and a chart when one helps."""

    answer: str
    table: dict[str, Any] = field(default_factory=dict)
    chart_png: bytes | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"answer": self.answer, "table": self.table, "tool_calls": self.tool_calls,
                "chart_png_base64": base64.b64encode(self.chart_png).decode() if self.chart_png else None}


class AnalystState(MessagesState):
    steps: int


def build_analyst_graph(model: BaseChatModel) -> Any:
    def agent(state: AnalystState, config: RunnableConfig) -> dict[str, Any]:
        c = config.get("configurable", {})
        context = {"now": c.get("now") or datetime.now(UTC).isoformat(), "timezone": c.get("timezone")}
        system = SystemMessage("You are the agency's data analyst. Use the tools for every number; never estimate. "
                               "Answer in one or two sentences.\n" + CONTEXT_TAG + json.dumps(context))
        answer = model.bind_tools(TOOLS).invoke([system, *state["messages"]], config)
        return {"messages": [answer], "steps": state.get("steps", 0) + 1}

    def route(state: AnalystState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls and state["steps"] < MAX_STEPS else END

    graph = StateGraph(AnalystState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(TOOLS))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile()


@lru_cache(maxsize=1)
def analyst_graph() -> Any:
    from leadpilot.settings import get_settings

    if get_settings().llm_provider == "openai":
        from agents.models import chat_model

        return build_analyst_graph(chat_model())
    return build_analyst_graph(AnalystPolicyModel())


def _table(name: str, result: dict[str, Any]) -> dict[str, Any]:
    if name == "report_metric":
        metric = result["metric"]
        return {"columns": ["period", LABELS[metric]], "rows": [
            [result["previous_period"]["start"][:10], say(metric, result["previous_value"])],
            [result["period"]["start"][:10], say(metric, result["value"])]], "formula": result["formula"]}
    if name == "compare_campaigns":
        metric = result["metric"]
        return {"columns": ["campaign", LABELS[metric], "period before"], "formula": result["formula"],
                "rows": [[r["campaign"], say(metric, r["value"]), say(metric, r["previous_value"])]
                         for r in result["campaigns"]]}
    if name == "sales_call_outcomes":
        return {"columns": ["outcome", "calls"], "rows": [[k, v] for k, v in result["outcomes"].items()]}
    if name == "unbooked_leads":
        return {"columns": ["lead", "source"], "rows": [[e["name"], e["source"]] for e in result["examples"]],
                "total": result["count"]}
    return {}


def _chart(name: str, result: dict[str, Any], question: str) -> bytes | None:
    """A bar chart for a comparison between campaigns or between two periods (when asked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if name == "compare_campaigns":
        rows = [r for r in result["campaigns"] if r["value"] is not None][:12]
        if not rows:
            return None
        labels, values = [r["campaign"] for r in rows], [float(r["value"]) for r in rows]
        title = LABELS[result["metric"]]
    elif name == "report_metric" and TREND_WORDS.search(question) and result["value"] is not None:
        labels = [f"from {result['previous_period']['start'][:10]}", f"from {result['period']['start'][:10]}"]
        values = [float(result["previous_value"] or 0), float(result["value"])]
        title = LABELS[result["metric"]]
    elif name == "sales_call_outcomes" and TREND_WORDS.search(question):
        labels, values, title = list(result["outcomes"]), [float(v) for v in result["outcomes"].values()], "Calls"
    else:
        return None
    figure, axes = plt.subplots(figsize=(6.4, 3.2 + 0.15 * len(labels)), dpi=100)
    axes.barh(labels[::-1], values[::-1], color="#3b6fd4")
    axes.set_title(title)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def ask(question: str, *, agency_id: uuid.UUID, sub_account_id: uuid.UUID | None, user_id: uuid.UUID | None,
        timezone: str, now: datetime | None = None, graph: Any = None) -> AnalystAnswer:
    """Answer a staff question within the asker's scope (sub_account_id None: the agency view)."""
    config = {"configurable": {"agency_id": str(agency_id), "sub_account_id": str(sub_account_id or ""),
                               "user_id": str(user_id or ""), "capabilities": ["reporting"], "timezone": timezone,
                               "now": (now or datetime.now(UTC)).isoformat()}}
    state = (graph or analyst_graph()).invoke({"messages": [HumanMessage(question)], "steps": 0}, config)
    messages = state["messages"]
    calls = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    used = [(m.name, json.loads(str(m.content))) for m in messages if isinstance(m, ToolMessage)]
    answer = str(messages[-1].content) if isinstance(messages[-1], AIMessage) else ""
    table, chart = {}, None
    if used and used[-1][1].get("ok", True):
        name, result = used[-1]
        table, chart = _table(str(name), result), _chart(str(name), result, question)
    return AnalystAnswer(answer=answer, table=table, chart_png=chart,
                         tool_calls=[{"name": c["name"], "args": c["args"]} for c in calls.values()])
