"""Saved report templates render to CSV and JSON; recurring ones are delivered once per run, then rescheduled."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.performance import ReportTemplate
from models.sandbox import SandboxDelivery
from services import report_templates, reporting

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)



@pytest.fixture
def weekly(a) -> ReportTemplate:  # type: ignore[no-untyped-def]
    return a.scalars(select(ReportTemplate).where(ReportTemplate.template_type == "recurring")).one()


def test_csv_and_json_carry_the_reporting_services_figures(a, weekly) -> None:  # type: ignore[no-untyped-def]
    weekly.configuration_settings = {"metrics": ["show_rate", "roi"], "group_by": "campaign", "period": "month"}
    rendered = report_templates.render(session=a, template_id=weekly.id, anchor=NOW.date() - timedelta(days=30),
                                       now=NOW)
    rows = list(csv.DictReader(io.StringIO(rendered.csv)))
    expected = reporting.build_report(session=a, group_by="campaign", tz="America/New_York", period="month",
                                      anchor=NOW.date() - timedelta(days=30), now=NOW, metrics=["show_rate", "roi"])
    assert list(rows[0]) == ["group", "show_rate", "roi", "show_rate_previous", "roi_previous", "show_rate_trend",
                             "roi_trend"]
    assert sorted(r["show_rate"] for r in rows) == sorted(
        str(g.figures["show_rate"].value) for g in expected.groups)
    assert rendered.json["formulas"]["roi"] == "(revenue - refunds - ad spend) / ad spend"
    assert {r["group"] for r in rendered.json["rows"]} >= {"Meta - Catering Leads"}


def test_a_due_recurring_report_is_delivered_once_and_rescheduled(a, weekly) -> None:  # type: ignore[no-untyped-def]
    weekly.next_run_at = NOW - timedelta(minutes=1)
    assert report_templates.deliver(session=a, template_id=weekly.id, now=NOW) is True
    assert report_templates.deliver(session=a, template_id=weekly.id, now=NOW) is False  # not due any more
    sent = a.scalars(select(SandboxDelivery).where(SandboxDelivery.operation == "report.email")).all()
    assert [d.request["to"] for d in sent] == ["admin@digitalmarketing.com"]
    assert sent[0].request["attachment"]["content"].startswith("group,")
    assert (weekly.last_run_at, weekly.next_run_at) == (NOW, NOW - timedelta(minutes=1) + timedelta(weeks=1))
