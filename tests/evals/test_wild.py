"""The shape of the `wild` split (issue 21): lead conversations written the way people write to a business,
over several shared businesses of different verticals, timezones and languages, every capability in each."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from evals.harness.scenario import CAPABILITIES, load_scenarios

EVALS = Path(__file__).resolve().parents[2] / "evals"


@pytest.fixture(scope="module")
def wild():  # type: ignore[no-untyped-def]
    return load_scenarios([EVALS / "scenarios"], split="wild")


def test_the_wild_split_is_large_enough(wild) -> None:  # type: ignore[no-untyped-def]
    assert len(wild) >= 150, len(wild)
    assert all(s.id.startswith("wild-") for s in wild)


def test_it_spans_businesses_and_timezones(wild) -> None:  # type: ignore[no-untyped-def]
    assert all(s.initial_state.business is not None for s in wild)
    names = {s.initial_state.business.name for s in wild}
    assert len(names) >= 5, names
    zones = {s.initial_state.business.timezone for s in wild}
    assert len(zones) >= 3, zones
    assert any(not z.startswith("America/") for z in zones), zones


def test_a_fifth_is_in_spanish(wild) -> None:  # type: ignore[no-untyped-def]
    spanish = [s for s in wild if s.expected.language == "es" or s.initial_state.business.language == "es"]
    assert len(spanish) >= 0.2 * len(wild), (len(spanish), len(wild))


def test_every_capability_in_every_business(wild) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, set[str]] = defaultdict(set)
    for s in wild:
        seen[s.initial_state.business.name].add(s.capability)
    wanted = set(CAPABILITIES) - {"analyst"}
    missing = {name: sorted(wanted - caps) for name, caps in seen.items() if wanted - caps}
    assert not missing, missing


def test_each_scenario_checks_something_a_wrong_agent_would_fail(wild) -> None:  # type: ignore[no-untyped-def]
    for s in wild:
        e = s.expected
        assert (e.db or e.must_say or e.one_of or e.says_unknown or e.delivered is not None or e.tools
                or e.all_of or e.any_of or (e.handoff not in (None, "none"))), s.id
        assert s.split == "wild" and s.description, s.id


@pytest.mark.evals
def test_the_lead_agent_meets_the_splits_floor(server_url: str) -> None:
    """CI runs the split at k=1 against its floors in evals/baseline.json (its own test, so that pytest-xdist can
    run it beside the core split)."""
    from tests.evals.test_suite import run_split

    run_split(server_url, "wild")
