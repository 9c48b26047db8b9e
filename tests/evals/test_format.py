"""Each feature of the scenario format, shown by a scenario that passes when it should and fails when it should
not: the world a scenario builds is the one the real agent sees, and the expectations tell a right end state
from a wrong one."""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals.harness.scenario import Scenario, ScenarioError, load_scenario

pytestmark = pytest.mark.evals

PLUMBER: dict[str, Any] = {
    "id": "format-built-business",
    "capability": "book",
    "channel": "sms",
    "initial_state": {
        "clock": "2026-11-24T22:00:00+00:00",  # Wednesday 25 November, 09:00 in Sydney
        "business": {
            "name": "Harbour Plumbing", "vertical": "home services (plumbing)", "timezone": "Australia/Sydney",
            "currency": "AUD",
            "hours": {"tue": "07:00-15:00", "wed": "07:00-15:00", "thu": "07:00-15:00", "fri": "07:00-15:00",
                      "sat": "08:00-12:00"},
            "closed_dates": ["2026-11-26"],
            "calendars": [{"name": "Call-outs", "slot_minutes": 60, "min_notice_minutes": 120,
                           "team": ["Dave", "Priya"]}],
            "services": [{"name": "Blocked drain call-out", "duration_minutes": 60, "price": "149.00",
                          "deposit": "50.00"}],
            "knowledge": [{"question": "Do you charge a call-out fee?",
                           "answer": "Our call-out fee is $149, which includes the first hour."}],
            "agent": {"name": "Max", "persona": "A friendly dispatcher.",
                      "qualification_questions": [{"key": "property_type", "question": "Is it a house or a unit?",
                                                   "type": "select", "options": ["house", "unit"]}]},
        },
    },
    "user": {"goal": "Book a plumber at the first time offered.",
             "turns": ["I would like to book an appointment on Friday", {"say": "{offer[0]} works"}]},
    "expected": {
        "db": [
            # local time in the lead's timezone, which is the built business's (Sydney) when not given
            {"entity": "appointment", "where": {"status": "scheduled", "start": "2026-11-27 07:00"}, "count": 1},
            {"query": "SELECT count(*) FROM appointments a JOIN calendars c ON c.id = a.calendar_id "
                      "JOIN sub_accounts s ON s.id = c.sub_account_id WHERE a.contact_id = :contact_id "
                      "AND s.name = 'Harbour Plumbing' AND c.team_key = 'call-outs'", "equals": 1},
        ],
        "tools": ["check_availability", "book_appointment"],
    },
}


def _scenario(tmp_path: Path, raw: dict[str, Any]) -> Scenario:
    path = tmp_path / f"{raw['id']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_scenario(path)


@pytest.fixture(scope="module")
def run(server_url: str) -> Iterator[Any]:
    """Run one scenario once on its own database copy; returns the trial."""
    from evals.harness.database import Databases
    from evals.harness.runner import run_trial
    from tests import dbutil

    dbs = Databases(server_url, dbutil.TEMPLATE_DB, f"lp_format_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    with dbs.base() as base:
        yield lambda scenario: run_trial(scenario, base, 0)


def test_a_business_built_from_scratch_is_what_the_agent_books_in(tmp_path: Path, run: Any) -> None:
    trial = run(_scenario(tmp_path, PLUMBER))
    assert trial.passed, (trial.why(), trial.transcript)
    assert "(Australia/Sydney)" in trial.transcript[-1]["text"]


def test_the_same_expectation_fails_when_the_built_hours_put_the_booking_elsewhere(tmp_path: Path,
                                                                                   run: Any) -> None:
    """Friday opens at 13:00 instead: the agent (rightly) books 1 PM, so the 7 AM expectation fails."""
    later = copy.deepcopy(PLUMBER)
    later["id"] = "format-built-business-afternoon"
    later["initial_state"]["business"]["hours"]["fri"] = "13:00-15:00"
    trial = run(_scenario(tmp_path, later))
    assert not trial.passed
    failed = [c for c in trial.checks if not c["passed"]]
    assert failed and failed[0]["name"].startswith("db:") and "2026-11-27 07:00" in failed[0]["name"], failed
    assert "Fri Nov 27 at 1 PM" in trial.transcript[1]["text"], trial.transcript


def test_a_closed_date_of_the_built_business_is_never_offered(tmp_path: Path, run: Any) -> None:
    closed = copy.deepcopy(PLUMBER)
    closed["id"] = "format-built-business-closed-day"
    closed["user"]["turns"] = ["I would like to book an appointment on Thursday", {"say": "{offer[0]} works"}]
    closed["expected"]["db"] = [{"query": "SELECT count(*) FROM appointments WHERE contact_id = :contact_id AND "
                                          "(start_time AT TIME ZONE 'Australia/Sydney')::date = '2026-11-26'",
                                 "equals": 0}]
    closed["expected"]["tools"] = ["check_availability"]
    trial = run(_scenario(tmp_path, closed))
    assert trial.passed, (trial.why(), trial.transcript)
    said = " ".join(t["text"] for t in trial.transcript if t["role"] == "agent")
    assert "Nov 26 at" not in said, said  # no time of the closed day is offered
    assert "closed on Thu Nov 26" in said, said  # and the day asked for is said to be closed


@pytest.mark.parametrize(("change", "field"), [
    ({"timezone": "Mars/Olympus"}, "initial_state.business.timezone"),
    ({"hours": {"mon": "17:00-09:00"}}, "initial_state.business.hours"),
    ({"agent": {"on_booked": "Paid"}}, "initial_state.business.agent"),
    ({"agent": {"qualification_questions": [{"key": "size", "question": "?", "type": "select"}]}},
     "initial_state.business.agent.qualification_questions.0"),
    ({"calendars": [{"name": "A"}, {"name": "A"}]}, "initial_state.business"),
    ({"colour": "blue"}, "initial_state.business.colour"),
])
def test_a_bad_business_names_the_file_and_the_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    raw = copy.deepcopy(PLUMBER)
    raw["initial_state"]["business"].update(change)
    with pytest.raises(ScenarioError) as err:
        _scenario(tmp_path, raw)
    assert f"{raw['id']}.yaml" in str(err.value) and f"{field}:" in str(err.value), str(err.value)


def _variant(id_: str, turns: list[Any], expected: dict[str, Any], **state: Any) -> dict[str, Any]:
    raw = copy.deepcopy(PLUMBER)
    raw["id"], raw["user"]["turns"], raw["expected"] = id_, turns, {"handoff": None, **expected}
    raw["initial_state"].update(state)
    return raw


def _outcome(tmp_path: Path, run: Any, raw: dict[str, Any]) -> dict[str, bool]:
    """Each check's name -> passed, for one trial."""
    trial = run(_scenario(tmp_path, raw))
    assert trial.error is None, trial.error
    return {c["name"]: c["passed"] for c in trial.checks}


def test_a_burst_is_answered_once_and_the_alternatives_tell_the_booked_time(tmp_path: Path, run: Any) -> None:
    """Two messages before one reply; `any_of` holds if one alternative holds in full, `one_of` if one phrase
    is said, tool arguments are matched as a subset."""
    seven = {"db": [{"entity": "appointment", "where": {"start": "2026-11-27 07:00"}, "count": 1}]}
    nine = {"db": [{"entity": "appointment", "where": {"start": "2026-11-27 09:00"}, "count": 1}]}
    raw = _variant("format-burst", [{"burst": ["hi there", "I would like to book an appointment on Friday"]},
                                    {"say": "{offer[0]} works"}], {
        "db": [{"query": "SELECT count(*) FROM messages WHERE conversation_id = :conversation_id AND "
                         "direction = 'outbound'", "equals": 2}],
        "any_of": [nine, seven], "one_of": ["See you then", "nos vemos"],
        "tools": [{"name": "check_availability", "args": {"from_date": "2026-11-27"}}]})
    trial = run(_scenario(tmp_path, raw))
    assert trial.passed, (trial.why(), trial.transcript)
    assert [t["role"] for t in trial.transcript] == ["user", "user", "agent", "user", "agent"]
    wrong = _variant("format-burst-wrong", raw["user"]["turns"], {
        "any_of": [nine, {"db": [{"entity": "appointment", "where": {"start": "2026-11-27 10:00"}}]}],
        "one_of": ["nos vemos"], "tools": [{"name": "check_availability", "args": {"from_date": "2026-11-28"}}]})
    checks = _outcome(tmp_path, run, wrong)
    assert checks == {"any_of (2 alternatives)": False, "one_of: ['nos vemos']": False,
                      "tool called: check_availability with {'from_date': '2026-11-28'}": False,
                      "tool permission": True}, checks


def test_an_opted_out_lead_provably_receives_nothing(tmp_path: Path, run: Any) -> None:
    """The outbound sender runs on the sandbox transport: the same conversation delivers one reply to a lead
    who may be texted and none to one who opted out of SMS."""
    ask = ["Do you charge a call-out fee?"]
    opted_out = {"first_name": None, "dnd_channels": {"sms": {"reason": "STOP"}}}
    assert _outcome(tmp_path, run, _variant("format-dnd", ask, {"delivered": 0}, lead=opted_out)) == {
        "delivered: 0": True, "tool permission": True}
    assert _outcome(tmp_path, run, _variant("format-dnd-not", ask, {"delivered": 0}))["delivered: 0"] is False


def test_language_no_reply_and_not_knowing(tmp_path: Path, run: Any) -> None:
    fee = ["Do you charge a call-out fee?"]
    english = _outcome(tmp_path, run, _variant("format-lang", fee, {
        "language": "en", "all_of": [{"must_say": ["$149"]}, {"handoff": "none"}]}))
    assert english == {"language: en": True, "must_say: $149": True, "handoff: none": True,
                       "tool permission": True}, english
    spanish = _outcome(tmp_path, run, _variant("format-lang-es", fee, {"language": "es", "says_unknown": True}))
    assert spanish == {"language: es": False, "says it does not know": False, "tool permission": True}, spanish
    unknown = _outcome(tmp_path, run, _variant("format-unknown", ["Do you also fix solar panels on the roof?"],
                                               {"says_unknown": True}))
    assert unknown["says it does not know"], unknown
    silent = _outcome(tmp_path, run, _variant("format-off", fee, {"no_reply": True},
                                              agent={"mode": "off"}))
    assert silent["no reply"], silent
    assert not _outcome(tmp_path, run, _variant("format-on", fee, {"no_reply": True}))["no reply"]


def test_the_lead_on_file_and_the_other_tenants_contacts(tmp_path: Path, run: Any) -> None:
    """A lead without a name, with tags and a deal at a stage of the built pipeline; a contact of the other
    sub-account exists there and nowhere else."""
    raw = _variant("format-lead", ["Do you charge a call-out fee?"], {"db": [
        {"entity": "contact", "where": {"first_name": "absent", "email": "absent"}},
        {"query": "SELECT count(*) FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id "
                  "WHERE ct.contact_id = :contact_id AND t.name IN ('vip', 'repeat customer')", "equals": 2},
        {"entity": "opportunity", "where": {"name": "Hot water system", "monetary_value": 1800}, "count": 1},
        {"query": "SELECT s.name FROM opportunities o JOIN pipeline_stages s ON s.id = o.stage_id "
                  "WHERE o.contact_id = :contact_id", "equals": "Qualified"},
        {"query": "SELECT count(*) FROM contacts WHERE email = 'ana@elsewhere.example' AND "
                  "sub_account_id <> :sub_account_id", "equals": 1},
    ], "must_not_say": ["ana@elsewhere.example"]},
        lead={"first_name": None, "email": None, "tags": ["vip", "repeat customer"],
              "deals": [{"name": "Hot water system", "stage": "Qualified", "value": "1800"}]},
        other_contacts=[{"key": "ana", "first_name": "Ana", "email": "ana@elsewhere.example"}])
    checks = _outcome(tmp_path, run, raw)
    assert all(checks.values()), checks
    raw["id"], raw["initial_state"]["lead"]["deals"][0]["stage"] = "format-lead-wrong", "Booked"
    assert not all(_outcome(tmp_path, run, raw).values())


def test_a_business_file_is_shared_by_name(tmp_path: Path) -> None:
    (tmp_path / "businesses").mkdir()
    (tmp_path / "businesses" / "harbour-plumbing.yaml").write_text(
        yaml.safe_dump(PLUMBER["initial_state"]["business"]))
    folder = tmp_path / "scenarios" / "wild"
    folder.mkdir(parents=True)
    raw = copy.deepcopy(PLUMBER)
    raw["initial_state"]["business"] = "harbour-plumbing"
    (folder / "a.yaml").write_text(yaml.safe_dump(raw))
    loaded = load_scenario(folder / "a.yaml")
    assert loaded.initial_state.business is not None
    assert loaded.initial_state.business.timezone == "Australia/Sydney"
    raw["initial_state"]["business"] = "nowhere"
    (folder / "a.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ScenarioError, match=r"a.yaml: initial_state.business: no businesses/nowhere.yaml"):
        load_scenario(folder / "a.yaml")


ANALYST: dict[str, Any] = {
    "id": "format-analyst-data",
    "capability": "analyst",
    "channel": "staff",
    "initial_state": {
        "clock": "2026-11-25T15:00:00+00:00",
        "business": {**PLUMBER["initial_state"]["business"], "timezone": "America/Denver"},
        "user_email": "manager", "timezone": "America/Denver",
        "data": {
            "campaigns": [{"key": "fb", "name": "Facebook Hot Water", "platform": "facebook", "start": "2026-10-01"}],
            "money": [{"type": "ad_spend", "amount": "400.00", "at": "2026-10-02", "campaign": "fb", "count": 3},
                      {"type": "payment", "amount": "250.00", "at": "2026-10-20 11:00"},
                      {"type": "refund", "amount": "50.00", "at": "2026-10-31 23:30"}],
            "sales_calls": [{"count": 2, "outcome": "closed", "closer": "Dave", "at": "2026-10-06 10:00",
                             "campaign": "fb"},
                            {"count": 1, "outcome": "no_show", "closer": "Priya", "at": "2026-10-07 10:00"}],
            "conversations": [{"count": 3, "at": "2026-10-08 09:00", "first_reply_seconds": 90,
                               "handoff": "human_requested", "claimed_after_minutes": 12}],
            "generate": {"seed": 3, "leads": 101, "start": "2026-10-01", "end": "2026-11-01",
                         "sources": {"facebook": 0.5, "google": 0.3, "referral": 0.2},
                         "calls": {"completed": 7, "closed": 3, "no_show": 2}, "closers": ["Dave", "Priya"]},
        },
    },
    "user": {"goal": "Know the leads.", "turns": ["how many leads did we get in october?"]},
    "expected": {"handoff": None},
}


def test_analyst_rows_and_a_generator_with_exact_totals(tmp_path: Path, run: Any) -> None:
    """Explicit rows and a seeded generator land in the built sub-account, in its timezone, with the totals
    they state; a figure check reads the scenario's own SQL."""
    sub = "sub_account_id = :sub_account_id"
    october = ("BETWEEN '2026-10-01T00:00:00-06:00' AND '2026-10-31T23:59:59-06:00'")
    raw = copy.deepcopy(ANALYST)
    raw["expected"]["db"] = [
        {"query": f"SELECT count(*) FROM contacts WHERE {sub} AND lead_source = 'facebook'", "equals": 51},
        {"query": f"SELECT count(*) FROM contacts WHERE {sub} AND lead_source = 'google'", "equals": 30},
        {"query": f"SELECT count(*) FROM contacts WHERE {sub} AND lead_source = 'referral'", "equals": 20},
        {"query": f"SELECT count(*) FROM contacts WHERE {sub} AND created_at {october}", "equals": 101 + 3},
        {"query": f"SELECT count(*) FROM sales_calls WHERE {sub} AND call_outcome = 'closed'", "equals": 5},
        {"query": "SELECT count(*) FROM sales_calls s JOIN users u ON u.id = s.user_id "
                  f"WHERE s.{sub} AND u.name = 'Dave'", "equals": 2 + 6},
        {"query": "SELECT sum(amount) FROM financial_records f JOIN campaigns c ON c.id = f.campaign_id "
                  f"WHERE f.{sub} AND c.platform = 'facebook' AND transaction_type = 'ad_spend'", "equals": 1200},
        {"query": f"SELECT count(*) FROM financial_records WHERE {sub} AND transaction_type = 'refund' AND "
                  f"transaction_date {october}", "equals": 1},
        {"query": f"SELECT count(*) FROM handoffs WHERE {sub} AND reason = 'human_requested' AND "
                  "claimed_at - requested_at = interval '12 minutes'", "equals": 3},
    ]
    checks = _outcome(tmp_path, run, raw)
    assert all(checks.values()), checks
    counted = copy.deepcopy(ANALYST)
    counted["id"] = "format-analyst-figure"
    counted["expected"]["figures"] = [{"query": f"SELECT count(*) + 1000 FROM contacts WHERE {sub}",
                                       "label": "a count no answer states"}]
    assert _outcome(tmp_path, run, counted) == {"figure a count no answer states: 1,104": False,
                                                "tool permission": True}


class _UserModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat-completions endpoint playing the lead: takes the first time offered, then ends."""

    requests: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _UserModel.requests.append(request)
        agent = request["messages"][-1]["content"]  # roles flip: the agent speaks as the 'user'
        offered = re.search(r"I can offer ([^,.]+ [AP]M)", agent)
        said = f"{offered.group(1)} is good" if offered else "<done>" if "booked" in agent else "friday if u can"
        body = {"id": "chatcmpl-user", "object": "chat.completion", "created": 0, "model": request["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": said}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_the_llm_user_plays_the_goal_seeded_per_trial(tmp_path: Path, run: Any, server_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline agent faces a user played by a model at OPENAI_BASE_URL: persona, goal and facts in its
    instructions, temperature 1, one seed per (scenario, trial), stable across runs; it ends the conversation."""
    from evals.harness.database import Databases
    from evals.harness.runner import run_trial
    from evals.harness.simulator import trial_seed
    from leadpilot.settings import get_settings
    from tests import dbutil

    server = ThreadingHTTPServer(("127.0.0.1", 0), _UserModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")  # trials re-read settings
    get_settings.cache_clear()
    _UserModel.requests = []
    raw = copy.deepcopy(PLUMBER)
    raw["id"] = "format-llm-user"
    raw["user"].update({"persona": "A busy tradie who texts in lowercase.", "known_facts": {"suburb": "Manly"},
                        "turns": ["I would like to book an appointment on Friday"]})
    scenario = _scenario(tmp_path, raw)
    dbs = Databases(server_url, dbutil.TEMPLATE_DB, f"lp_llmuser_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    try:
        with dbs.base() as base:
            trials = [run_trial(scenario, base, i, simulator="llm") for i in range(2)]
    finally:
        server.shutdown()
        monkeypatch.delenv("OPENAI_BASE_URL")
        get_settings.cache_clear()
    assert all(t.passed for t in trials), json.dumps([(t.why(), t.transcript) for t in trials])[:3000]
    assert [t["text"] for t in trials[0].transcript if t["role"] == "user"] == [
        "I would like to book an appointment on Friday", "Fri Nov 27 at 7 AM is good"]
    seeds = [r["seed"] for r in _UserModel.requests]
    assert set(seeds) == {trial_seed("format-llm-user", 0), trial_seed("format-llm-user", 1)}
    assert all(r["temperature"] == 1.0 for r in _UserModel.requests)
    system = _UserModel.requests[0]["messages"][0]
    assert system["role"] == "system" and "Persona: A busy tradie" in system["content"]
    assert "Manly" in system["content"] and "give one only when asked" in system["content"]


def test_trials_with_a_business_of_their_own_share_one_database(tmp_path: Path) -> None:
    """Cheaper isolation: no template copy per trial when a trial's world is a sub-account of its own."""
    from evals.harness.runner import isolation_group

    assert isolation_group(_scenario(tmp_path, PLUMBER)) == "own-business"
    demo = copy.deepcopy(PLUMBER)
    del demo["initial_state"]["business"]
    leaking = copy.deepcopy(PLUMBER)
    leaking["initial_state"]["other_contacts"] = [{"key": "ana", "first_name": "Ana"}]
    assert [isolation_group(_scenario(tmp_path, raw)) for raw in (demo, leaking, ANALYST)] == [None, None, None]
    reading = copy.deepcopy(ANALYST)
    del reading["initial_state"]["business"], reading["initial_state"]["data"]
    reading["initial_state"]["user_email"] = "john@restaurant.com"
    assert isolation_group(_scenario(tmp_path, reading)) == "read-only"


def test_the_world_moves_mid_conversation_and_the_clock_waits(tmp_path: Path, run: Any) -> None:
    """`take_slot`: someone else books the offered time between the offer and the answer, so the lead cannot
    have it; `advance_clock`: two days and an hour later "today" is Friday 10:00, and its first bookable time
    is noon (the calendar's two hours' notice)."""
    taken = _variant("format-taken", ["I would like to book an appointment on Friday",
                                      {"action": "take_slot", "slot": "{offer[0]}"}, {"say": "{offer[0]} works"}], {
        "db": [{"entity": "appointment", "where": {"start": "2026-11-27 07:00"}, "count": 0}],
        "must_say": ["re:(?:taken|no longer available|isn't available|not available)"]})
    checks = _outcome(tmp_path, run, taken)
    assert all(checks.values()), checks
    wrong = copy.deepcopy(taken)
    wrong["id"], wrong["expected"]["db"][0]["count"] = "format-taken-wrong", 1
    assert not _outcome(tmp_path, run, wrong)["db: 1 appointment where {'start': '2026-11-27 07:00'}"]
    later = _variant("format-later", [{"action": "advance_clock", "minutes": 2 * 24 * 60 + 60},
                                      "I would like to book an appointment today", {"say": "{offer[0]} works"}],
                     {"db": [{"entity": "appointment", "where": {"start": "2026-11-27 12:00"}, "count": 1}]})
    moved = run(_scenario(tmp_path, later))  # Fri 10:00 local + 120 min notice: 12:00 is the first
    assert moved.passed, (moved.why(), moved.transcript)


def test_a_handoff_is_checked_by_its_reason(tmp_path: Path, run: Any) -> None:
    person = ["I want to talk to a real person please"]
    assert _outcome(tmp_path, run, _variant("format-human", person, {"handoff": "human_requested"})) == {
        "handoff: human_requested": True, "tool permission": True}
    assert _outcome(tmp_path, run, _variant("format-human-not", person, {"handoff": "negative_sentiment"}))[
        "handoff: negative_sentiment"] is False


def test_the_scripted_user_answers_only_what_it_is_asked(tmp_path: Path) -> None:
    """It says its next line unless the agent's message matches an answer's `when`; a fact is given only then,
    once, and never ahead of the question."""
    from evals.harness.simulator import ScriptedUser

    raw = copy.deepcopy(PLUMBER)
    raw["user"] = {"goal": "Book.", "known_facts": {"suburb": "Manly", "kind": "house"},
                   "turns": ["need a plumber", "friday is best"],
                   "answers": [{"when": "house or a unit", "say": "a {kind}"}, {"when": "suburb", "say": "{suburb}"}]}
    user = ScriptedUser(_scenario(tmp_path, raw))
    said = [user.next(""), user.next("Sure! What day suits you?"), user.next("Is it a house or a unit?"),
            user.next("Is it a house or a unit?"), user.next("Which suburb are you in?")]
    assert [s.say if s else None for s in said] == ["need a plumber", "friday is best", "a house", None, "Manly"]
