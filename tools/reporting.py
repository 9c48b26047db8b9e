"""Reporting tools for the staff analyst: figures come from the reporting service, never from the model."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from models.performance import Campaign, SalesCall
from services import reporting
from tools.base import guarded
from tools.context import AgentContext, session_for

PeriodName = Literal["day", "week", "month", "quarter"]


def _tz(ctx: AgentContext, session: Any) -> str:
    if ctx.timezone:
        return ctx.timezone
    if ctx.sub_account_id:
        return reporting.sub_account_timezone(session=session, sub_account_id=ctx.sub_account_id)
    return "UTC"


class OutcomesArgs(BaseModel):
    period: PeriodName = Field(default="month", description="Calendar period to report on")
    anchor: date | None = Field(default=None, description="Any day inside the period; default today. For 'last "
                                                          "month' give a day of last month")


class ReportMetricArgs(OutcomesArgs):
    metric: Literal[reporting.METRICS] = Field(  # type: ignore[valid-type]
        description="show_rate, close_rate, revenue, refunds, ad_spend, roi, cost_per_booked_call, "
                    "cost_per_acquisition or booked_calls")


@tool(args_schema=ReportMetricArgs)
@guarded("reporting")
def report_metric(metric: str, period: PeriodName = "month", anchor: date | None = None, *,
                  config: RunnableConfig) -> dict[str, Any]:
    """One metric for this business (or the whole agency for agency staff) with the previous period beside it."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        tz = _tz(ctx, session)
        report = reporting.build_report(session=session, group_by="agency", tz=tz, period=period, anchor=anchor,
                                        metrics=[metric])
        figure = report.groups[0].figures[metric] if report.groups else None
        return {"metric": metric, "formula": reporting.FORMULAS[metric], "timezone": tz,
                "period": {"start": report.start, "end": report.end},
                "previous_period": {"start": report.baseline_start, "end": report.baseline_end},
                "value": figure.value if figure else None, "previous_value": figure.baseline if figure else None,
                "trend": figure.trend if figure else None}


class CompareCampaignsArgs(OutcomesArgs):
    metric: Literal[reporting.METRICS] = Field(description="Metric to rank campaigns by")  # type: ignore[valid-type]


@tool(args_schema=CompareCampaignsArgs)
@guarded("reporting")
def compare_campaigns(metric: str, period: PeriodName = "month", anchor: date | None = None, *,
                      config: RunnableConfig) -> dict[str, Any]:
    """Every campaign's value of one metric for a period, best first (undefined values last)."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        tz = _tz(ctx, session)
        report = reporting.build_report(session=session, group_by="campaign", tz=tz, period=period, anchor=anchor,
                                        metrics=[metric])
        names: dict[Any, str] = {cid: name for cid, name in session.execute(select(Campaign.id, Campaign.name))}
        rows: list[dict[str, Any]] = [{"campaign": names.get(g.key, "unattributed"), "campaign_id": g.key,
                 "value": g.figures[metric].value, "previous_value": g.figures[metric].baseline}
                for g in report.groups]
        rows.sort(key=lambda r: (r["value"] is None, -(r["value"] or Decimal(0))))
        return {"metric": metric, "formula": reporting.FORMULAS[metric], "timezone": tz,
                "period": {"start": report.start, "end": report.end}, "campaigns": rows}


@tool(args_schema=OutcomesArgs)
@guarded("reporting")
def sales_call_outcomes(period: PeriodName = "month", anchor: date | None = None, *,
                        config: RunnableConfig) -> dict[str, Any]:
    """How many sales calls were scheduled, completed, no-show and closed in a period."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        tz = _tz(ctx, session)
        start, end = reporting.period_bounds(period, anchor or date.today(), tz)
        counts: dict[str, int] = {outcome: n for outcome, n in session.execute(
            select(SalesCall.call_outcome, func.count()).where(
                SalesCall.scheduled_date_time >= start, SalesCall.scheduled_date_time < end,
                SalesCall.deleted_at.is_(None)).group_by(SalesCall.call_outcome))}
        return {"timezone": tz, "period": {"start": start, "end": end},
                "outcomes": {k: counts.get(k, 0) for k in ("scheduled", "completed", "no_show", "closed")}}
