"""The staff analyst through POST /v1/analyst/ask on the offline model: figures equal the reporting service's
and the database's own counts, a chart comes with comparisons, and a client user stays in their sub-account.
Questions relative to now ("last month", "this quarter") are asked on the demo's as-of date (`demo_day`), where
its history lies, in New York (sub-account A's timezone and the agency view's default)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from agents.analyst.local import period_of
from api.app import app
from models.calendars import Appointment
from models.crm import Contact
from models.db import TenantScope, tenant_session
from services import reporting
from tests.api.test_rest import key_for, problem
from tests.conftest import Demo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("demo_day")]
client = TestClient(app)


@pytest.fixture(scope="module")
def keys(demo: Demo) -> dict[str, dict[str, str]]:
    return {"admin": key_for(demo, "admin@digitalmarketing.com"), "manager_a": key_for(demo, "john@restaurant.com"),
            "staff_a": key_for(demo, "jane@restaurant.com")}


def test_show_rate_last_month_vs_the_month_before(keys, demo: Demo, demo_day: datetime) -> None:  # type: ignore[no-untyped-def]
    body = client.post("/v1/analyst/ask", headers=keys["manager_a"], json={
        "question": "what was our show rate last month vs the month before?", "sub_account_id": str(demo.a)})
    assert body.status_code == 200, body.text
    out = body.json()
    grain, anchor = period_of("last month", demo_day.date())
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        report = reporting.build_report(session=session, group_by="agency", tz="America/New_York", period=grain,
                                        anchor=anchor, metrics=["show_rate"])
    figure = report.groups[0].figures["show_rate"]
    expected_now, expected_before = f"{figure.value * 100:.1f}%", f"{figure.baseline * 100:.1f}%"
    assert expected_now in out["answer"] and expected_before in out["answer"]
    assert [row[1] for row in out["table"]["rows"]] == [expected_before, expected_now]
    assert out["tool_calls"] == [{"name": "report_metric", "args": {
        "metric": "show_rate", "period": "month", "anchor": anchor.isoformat()}}]
    assert base64.b64decode(out["chart_png_base64"]).startswith(b"\x89PNG")


def test_which_campaign_had_the_best_roi_this_quarter(keys, demo: Demo, demo_day: datetime) -> None:  # type: ignore[no-untyped-def]
    out = client.post("/v1/analyst/ask", headers=keys["admin"], json={
        "question": "which campaign had the best ROI this quarter?"}).json()
    with tenant_session(TenantScope(agency_id=demo.agency_id)) as session:
        report = reporting.build_report(session=session, group_by="campaign", tz="America/New_York",
                                        period="quarter", anchor=demo_day.date(), metrics=["roi"])
        from models.performance import Campaign

        names = {c.id: c.name for c in session.scalars(select(Campaign))}
    ranked = sorted((g for g in report.groups if g.figures["roi"].value is not None),
                    key=lambda g: -g.figures["roi"].value)
    best = ranked[0]
    assert out["answer"].startswith(names[best.key]) and f"{best.figures['roi'].value * 100:.1f}%" in out["answer"]
    assert len(out["table"]["rows"]) == len(report.groups) and out["chart_png_base64"]


def test_how_many_leads_from_meta_have_not_booked(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    out = client.post("/v1/analyst/ask", headers=keys["manager_a"], json={
        "question": "how many leads from Meta haven't booked?", "sub_account_id": str(demo.a)}).json()
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        booked = select(Appointment.contact_id).where(Appointment.deleted_at.is_(None),
                                                      Appointment.contact_id.is_not(None))
        expected = session.scalar(select(func.count()).select_from(Contact).where(
            Contact.deleted_at.is_(None), Contact.lifecycle_stage == "lead", Contact.lead_source.ilike("%meta%"),
            Contact.id.not_in(booked)))
    assert expected > 0 and out["answer"] == f"{expected} leads from Meta haven't booked yet."
    assert out["table"]["total"] == expected and out["chart_png_base64"] is None


def test_a_client_user_stays_in_their_sub_account(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    question = {"question": "what was our revenue last month?"}
    problem(client.post("/v1/analyst/ask", headers=keys["manager_a"], json={**question,
                                                                          "sub_account_id": str(demo.b)}), 404)
    assert problem(client.post("/v1/analyst/ask", headers=keys["manager_a"], json=question),
                   403)["permission"] == "reports.read"
    problem(client.post("/v1/analyst/ask", headers=keys["staff_a"], json={**question,
                                                                        "sub_account_id": str(demo.a)}), 403)
    mine = client.post("/v1/analyst/ask", headers=keys["manager_a"], json={**question,
                                                                         "sub_account_id": str(demo.a)}).json()
    agency = client.post("/v1/analyst/ask", headers=keys["admin"], json=question).json()

    def dollars(text: str) -> Decimal:  # "Revenue for the period starting ... was $12,345.67, up from ..."
        return Decimal(text.split(" was $")[1].split(" ")[0].rstrip(",").replace(",", ""))

    assert dollars(agency["answer"]) > dollars(mine["answer"]) > 0  # the agency view adds B's revenue


def test_it_says_what_it_can_answer_instead_of_guessing(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    out = client.post("/v1/analyst/ask", headers=keys["admin"], json={"question": "how is the weather in Paris?"})
    assert out.json()["tool_calls"] == [] and "show rate" in out.json()["answer"]


def test_periods_are_read_from_plain_language() -> None:
    today = date(2026, 11, 25)
    assert period_of("last month", today) == ("month", date(2026, 10, 31))
    assert period_of("this quarter", today) == ("quarter", today)
    assert period_of("last quarter", today) == ("quarter", date(2026, 9, 30))
    assert period_of("in March", today) == ("month", date(2026, 3, 1))
    assert period_of("yesterday", today) == ("day", today - timedelta(days=1))


def test_periods_are_the_askers_not_utcs(demo: Demo) -> None:
    """8 pm in New York on November 30 is December 1 in UTC: "last month" is still October there."""
    from agents.analyst.graph import ask

    evening = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    out = ask("what was our show rate last month vs the month before?", agency_id=demo.agency_id,
              sub_account_id=demo.a, user_id=None, timezone="America/New_York", now=evening)
    assert out.tool_calls == [{"name": "report_metric",
                               "args": {"metric": "show_rate", "period": "month", "anchor": "2026-10-31"}}]
