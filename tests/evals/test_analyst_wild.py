"""The shape of the `analyst_wild` split (issue 21): staff questions in plain language, asked by every kind of
asker, over many metrics and breakdowns, each figure computed by the scenario's own SQL (never by
services/reporting), plus refusals, unknown metrics and unknown campaigns; and every figure's SQL returns one
value on the demo data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from evals.harness.scenario import Expected, Figure, Scenario, load_scenarios

EVALS = Path(__file__).resolve().parents[2] / "evals"
ADMIN, MANAGERS, STAFF = "admin@digitalmarketing.com", {"john@restaurant.com", "bob@restaurant.com"}, \
    "jane@restaurant.com"


def _wild() -> list[Scenario]:
    return load_scenarios([EVALS / "scenarios"], split="analyst_wild")


def _figures(expected: Expected) -> list[Figure]:
    out = list(expected.figures)
    for alt in (*expected.any_of, *expected.all_of):
        out += _figures(alt)
    return out


def _tags(scenario: Scenario) -> list[str]:
    found = re.match(r"\[([^\]]+)\]", scenario.description or "")
    return [t.strip() for t in found.group(1).split(",")] if found else []


def test_the_split_has_enough_questions_from_every_asker() -> None:
    wild = _wild()
    assert len(wild) >= 80
    assert all(s.capability == "analyst" and s.channel == "staff" and s.id.startswith("aw-") for s in wild)
    assert all(s.user.turns and s.user.turns[0].say and s.description for s in wild)
    askers = {s.initial_state.user_email for s in wild}
    assert ADMIN in askers and STAFF in askers and askers & MANAGERS
    admin = [s for s in wild if s.initial_state.user_email == ADMIN]
    assert {s.initial_state.scope for s in admin} == {"agency", "sub_account"}  # the agency view and one business
    assert any(s.initial_state.sub_account == "restaurant-b" for s in wild)  # the other restaurant's own staff too
    assert sum(bool(re.search(r"[¿áéíóúñ]|\b(cuál|cuánto|cuántos|tasa|gasto)\b", s.user.turns[0].say or "", re.I))
               for s in wild) >= 8  # Spanish questions


def test_figures_come_from_the_scenarios_own_sql_over_many_metrics() -> None:
    wild = _wild()
    assert not any(s.expected.report for s in wild)  # never the reporting service's own numbers
    labels = {f.label for s in wild for f in _figures(s.expected)}
    assert len(labels) >= 10
    tags = {t for s in wild for t in _tags(s)}
    for wanted in ("show_rate", "no_show_rate", "close_rate", "by_closer", "cpa", "by_platform", "roi", "by_campaign",
                   "custom_period", "revenue", "by_month", "week_vs_week", "handoffs_by_reason", "first_response_time",
                   "pipeline_by_stage", "time_in_stage", "leads_by_source", "bookings", "booked_calls", "refunds",
                   "ad_spend", "agency"):
        assert wanted in tags, wanted
    for s in wild:
        for figure in _figures(s.expected):
            # periods are written with the asker's UTC offset, never as naive local times
            for moment in re.findall(r"'(\d{4}-\d\d-\d\d[T ][^']*)'", figure.query):
                assert re.search(r"[+-]\d\d:\d\d$", moment), (s.id, moment)
            assert set(re.findall(r"(?<!:):([a-z_]+)", figure.query)) <= {"sub_account_id", "agency_id"}, s.id


def test_refusals_and_ask_backs_are_present() -> None:
    wild = _wild()
    refusals = [s for s in wild if "refusal" in _tags(s)]
    assert len(refusals) >= 4 and all(s.expected.must_not_say and s.expected.one_of for s in refusals)
    assert {s.initial_state.user_email for s in refusals} >= {STAFF, "john@restaurant.com"}
    unknown = [s for s in wild if "unknown_metric" in _tags(s)]
    no_campaign = [s for s in wild if "unknown_campaign" in _tags(s)]
    assert len(unknown) >= 3 and len(no_campaign) >= 3
    assert all(s.expected.any_of and not _figures(s.expected) for s in unknown + no_campaign)


@pytest.mark.evals
def test_every_figure_query_returns_one_value_on_the_demo_data(owner_engine: Engine) -> None:
    """Scenarios without their own data rows: each figure's SQL runs on the demo agency and gives a value."""
    problems = []
    with owner_engine.connect() as conn:
        agency = conn.execute(text("SELECT id FROM agencies WHERE slug = 'digital-marketing-co'")).scalar_one()
        subs: dict[str, object] = dict(conn.execute(
            text("SELECT slug, id FROM sub_accounts WHERE agency_id = :a"), {"a": agency}).tuples().all())
        for s in _wild():
            if s.initial_state.data is not None:
                continue  # its figures count rows the scenario itself writes
            params = {"agency_id": agency, "sub_account_id": subs[s.initial_state.sub_account]}
            for figure in _figures(s.expected):
                rows = conn.execute(text(figure.query), {k: v for k, v in params.items()
                                                         if f":{k}" in figure.query}).all()
                if len(rows) != 1 or len(rows[0]) != 1 or rows[0][0] is None:
                    problems.append((s.id, figure.label, rows[:2]))
    assert problems == []


@pytest.mark.evals
def test_the_analyst_meets_the_splits_floor(server_url: str) -> None:
    """CI runs the split at k=1 against its floor in evals/baseline.json (its own test, so that pytest-xdist can
    run it beside the core split)."""
    from tests.evals.test_suite import run_split

    run_split(server_url, "analyst_wild")
