"""Sales-performance reports: per campaign or sub-account, and the agency roll-up, with baselines."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from api.deps import Tenant, agency, sub_account
from api.params import Day, Moment, TimeZone
from services import report_templates, reporting
from services.errors import InvalidInput
from tools.base import jsonable

FORMULA_TABLE = "\n".join(f"| `{k}` | {v} |" for k, v in reporting.FORMULAS.items())
FORMULA_DOC = f"""Every figure comes with the same figure for the period before (`baseline`) and a `trend`
(`up`, `down`, or `stable` within 1% of the baseline). Periods are calendar days, ISO weeks, months or quarters
in the sub-account's timezone (or `tz`), or a custom `start`/`end` range compared with the range of equal
length before it. A ratio whose denominator is zero is `null`, never 0. Money is an exact decimal string.

| metric | formula |
|---|---|
{FORMULA_TABLE}

A call counts as *showed* when its outcome is `completed` or `closed`, and only once it is due (scheduled at
or before now). Revenue, refunds and ad spend count financial records whose payment status is `paid`."""

router = APIRouter(tags=["Reporting"])
Metric = Literal[reporting.METRICS]  # type: ignore[valid-type]


def _report(t: Tenant, group_by: Any, tz: str, period: Any, anchor: date | None, start: Any, end: Any,
            metrics: list[str], persist: bool) -> dict[str, Any]:
    with t.session() as s:
        report = reporting.build_report(session=s, group_by=group_by, tz=tz, period=period, anchor=anchor,
                                        start=start, end=end, metrics=metrics or reporting.METRICS)
        if persist:
            reporting.persist_report(session=s, report=report, agency_id=t.scope.agency_id,
                                     sub_account_id=t.scope.sub_account_id)
        return {
            "start": report.start, "end": report.end, "baseline_start": report.baseline_start,
            "baseline_end": report.baseline_end, "timezone": report.timezone, "group_by": report.group_by,
            "formulas": {m: reporting.FORMULAS[m] for m in (metrics or reporting.METRICS)},
            "groups": [{"key": jsonable(g.key), "figures": {m: jsonable(vars(f)) for m, f in g.figures.items()}}
                       for g in report.groups],
        }


@router.get("/v1/sub-accounts/{sub_account_id}/reports", summary="Sales-performance report",
            description=FORMULA_DOC)
def sub_account_report(
    t: Annotated[Tenant, Depends(sub_account("reports.read"))],
    group_by: Literal["campaign", "sub_account"] = "campaign",
    period: Literal["day", "week", "month", "quarter"] | None = "month",
    anchor: Annotated[Day | None, Query(description="A date inside the period (default: today)")] = None,
    start: Moment | None = None, end: Moment | None = None,
    metric: Annotated[list[Metric], Query()] = [],  # noqa: B006
    tz: Annotated[TimeZone | None, Query(description="Default: the sub-account's timezone")] = None,
    persist: Annotated[bool, Query(description="Also store the figures in performance_metrics")] = False,
) -> dict[str, Any]:
    with t.session() as s:
        zone = tz or reporting.sub_account_timezone(session=s, sub_account_id=t.sub_account_id)
    return _report(t, group_by, zone, None if start else period, anchor, start, end, list(metric), persist)


@router.get("/v1/agency/reports", summary="Agency roll-up report", description=FORMULA_DOC)
def agency_report(
    t: Annotated[Tenant, Depends(agency("reports.read"))],
    group_by: Literal["campaign", "sub_account", "agency"] = "sub_account",
    period: Literal["day", "week", "month", "quarter"] | None = "month",
    anchor: Day | None = None, start: Moment | None = None, end: Moment | None = None,
    metric: Annotated[list[Metric], Query()] = [],  # noqa: B006
    tz: TimeZone = "America/New_York",
    persist: bool = False,
) -> dict[str, Any]:
    if persist and group_by == "campaign":
        raise InvalidInput("Persist agency reports by sub_account or agency; campaign figures belong to their "
                           "sub-account's report.", field="persist")
    return _report(t, group_by, tz, None if start else period, anchor, start, end, list(metric), persist)


@router.get("/v1/sub-accounts/{sub_account_id}/report-templates/{template_id}/render",
            summary="Render a report template", response_class=Response,
            responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
def render_template(t: Annotated[Tenant, Depends(sub_account("reports.read"))], template_id: uuid.UUID,
                    format: Literal["json", "csv"] = "json", anchor: Day | None = None) -> Response:
    with t.session() as s:
        rendered = report_templates.render(session=s, template_id=template_id, anchor=anchor)
    if format == "csv":
        return Response(rendered.csv, media_type="text/csv")
    return Response(json.dumps(rendered.json), media_type="application/json")


HANDOFF_DOC = """Time to claim and time to resolve (median, 90th percentile, mean, in seconds), the handoff rate
(handoffs / conversations the AI worked in the period) overall and by reason, per person who claimed, and per
sub-account. Default period: the last 30 days. `format=png` returns the chart (handoffs by reason with the
median time to claim)."""


def _handoffs(t: Tenant, start: datetime | None, end: datetime | None, fmt: str) -> Any:
    from services.handoff_metrics import chart, handoff_metrics

    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    if start >= end:
        raise InvalidInput("start must be before end.", field="start")
    with t.session() as s:
        metrics = handoff_metrics(session=s, start=start, end=end)
    if fmt == "png":
        return Response(chart(metrics), media_type="image/png")
    return metrics


@router.get("/v1/sub-accounts/{sub_account_id}/reports/handoffs", summary="Handoff metrics of a sub-account",
            description=HANDOFF_DOC, response_model=None)
def sub_account_handoffs(t: Annotated[Tenant, Depends(sub_account("reports.read"))],
                         start: Moment | None = None, end: Moment | None = None,
                         format: Literal["json", "png"] = "json") -> Any:  # noqa: A002 (the query's name)
    return _handoffs(t, start, end, format)


@router.get("/v1/agency/reports/handoffs", summary="Handoff metrics across the agency", description=HANDOFF_DOC,
            response_model=None)
def agency_handoffs(t: Annotated[Tenant, Depends(agency("reports.read"))], start: Moment | None = None,
                    end: Moment | None = None,
                    format: Literal["json", "png"] = "json") -> Any:  # noqa: A002 (the query's name)
    return _handoffs(t, start, end, format)


@router.get("/v1/sub-accounts/{sub_account_id}/reports/funnel", summary="Conversion funnel over analytics events")
def funnel(t: Annotated[Tenant, Depends(sub_account("reports.read"))],
           steps: Annotated[list[str], Query(description="Event names in order, e.g. page_viewed, "
                                                         "message_received, appointment_booked")],
           start: Moment | None = None, end: Moment | None = None) -> dict[str, Any]:
    """Contacts who did each step after the one before it, with the conversion from the previous step and from
    the first. Default window: the last 30 days."""
    from services import analytics

    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    with t.session() as s:
        return analytics.funnel(session=s, steps=steps, start=start, end=end)


@router.get("/v1/sub-accounts/{sub_account_id}/contacts/{contact_id}/journey",
            summary="Everything a contact did, oldest first")
def journey(t: Annotated[Tenant, Depends(sub_account("contacts.read"))], contact_id: uuid.UUID) -> list[dict[str, Any]]:
    from services import analytics, crm

    with t.session() as s:
        crm.get_contact_or_raise(session=s, contact_id=contact_id)
        return analytics.journey(session=s, contact_id=contact_id)
