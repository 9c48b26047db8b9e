"""The offline scenario suite at k=1 inside the test server (each trial on its own copy of the test template),
held to the per-capability floors in evals/baseline.json; plus the pass^k arithmetic and the loader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evals.harness.report import below_floor, build_report, diff_reports, pass_hat_k
from evals.harness.scenario import ScenarioError, load_scenario, load_scenarios

EVALS = Path(__file__).resolve().parents[2] / "evals"


def test_pass_hat_k_is_the_tau_bench_estimator() -> None:
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(3, 4, 1) == 0.75
    assert pass_hat_k(3, 4, 2) == 0.5  # C(3,2)/C(4,2) = 3/6
    assert pass_hat_k(3, 4, 4) == 0.0
    assert pass_hat_k(0, 4, 1) == 0.0
    with pytest.raises(ValueError):
        pass_hat_k(1, 1, 2)


def test_report_averages_pass_hat_k_per_capability_and_diff_finds_regressions() -> None:
    from evals.harness.runner import Trial

    trials = [Trial("a", "book", i, passed=i < 3) for i in range(4)] + [Trial("b", "book", i, True) for i in range(4)]
    report = build_report(trials, k=4)
    assert report["capabilities"]["book"] == {"scenarios": 2, "pass^1": 0.875, "pass^2": 0.75, "pass^3": 0.625,
                                              "pass^4": 0.5}
    worse = build_report([Trial("a", "book", i, False) for i in range(4)] + trials[4:], k=4)
    diff = diff_reports(report, worse)
    assert [r.get("id", r.get("capability")) for r in diff["regressions"]] == ["book", "split:core", "a"]
    assert below_floor(worse, {"floors": {"book": 0.6}}) == ["book: pass^1 0.5 < floor 0.6"]


def test_splits_are_reported_and_floored_apart() -> None:
    from evals.harness.runner import Trial

    trials = [Trial("a", "book", 0, True), Trial("w1", "book", 0, False, split="wild"),
              Trial("w2", "faq", 0, True, split="wild")]
    report = build_report(trials, k=1)
    assert report["splits"]["core"]["capabilities"]["book"]["pass^1"] == 1.0
    assert report["splits"]["wild"]["pass^1"] == 0.5
    assert report["splits"]["wild"]["capabilities"] == {"book": {"scenarios": 1, "pass^1": 0.0},
                                                        "faq": {"scenarios": 1, "pass^1": 1.0}}
    baseline = {"floors": {"book": 0.9}, "splits": {"wild": {"floors": {"all": 0.6, "faq": 1.0, "book": 0.0}}}}
    assert below_floor(report, baseline) == ["wild/all: pass^1 0.5 < floor 0.6"]
    assert below_floor(build_report(trials[:1], k=1), baseline) == []  # a run without the split is not judged


def test_the_loader_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ncapability: book\nuser: {goal: g, turns: []}\nexpected: {db: [{entity: spaceship}]}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(bad)
    assert "bad.yaml" in str(err.value) and "user.turns" in str(err.value) and "spaceship" in str(err.value)
    (tmp_path / "dup1.yaml").write_text("id: same\ncapability: faq\nuser: {goal: g, turns: [hi]}\nexpected: {}\n")
    (tmp_path / "dup2.yaml").write_text("id: same\ncapability: faq\nuser: {goal: g, turns: [hi]}\nexpected: {}\n")
    bad.unlink()
    with pytest.raises(ScenarioError, match="already used"):
        load_scenarios([tmp_path])


def test_every_shipped_scenario_loads_and_every_capability_is_covered() -> None:
    scenarios = load_scenarios([EVALS / "scenarios"])
    capabilities = {s.capability for s in scenarios}
    assert len(scenarios) >= 120
    assert capabilities == {"faq", "qualify", "book", "reschedule", "cancel", "pay", "handoff", "opt_out", "analyst",
                            "injection"}


def run_split(server_url: str, split: str) -> None:
    """Every scenario of a split at k=1 inside the test server, held to its floors in evals/baseline.json."""
    from evals.harness.database import Databases
    from evals.harness.runner import run_suite
    from tests import dbutil

    scenarios = load_scenarios([EVALS / "scenarios"], split=split)
    assert scenarios, f"no scenario of split {split}"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    dbs = Databases(server_url, dbutil.TEMPLATE_DB, f"lp_eval_{split}_{worker}")
    trials = run_suite(scenarios, k=1, dbs=dbs)
    report = build_report(trials, k=1)
    baseline = json.loads((EVALS / "baseline.json").read_text())
    failing = {s["id"]: s["failures"][0]["why"][:200] for s in report["scenarios"] if s["failures"]}
    print(f"split {split}: pass^1 {report['overall']['pass^1']} over {len(scenarios)} scenarios; per capability "
          f"{ {c: v['pass^1'] for c, v in report['capabilities'].items()} }")
    assert below_floor(report, baseline) == [], json.dumps({"capabilities": report["capabilities"],
                                                            "failing": failing}, indent=1)


@pytest.mark.evals
def test_offline_suite_meets_the_baseline_floors(server_url: str) -> None:  # type: ignore[no-untyped-def]
    run_split(server_url, "core")
