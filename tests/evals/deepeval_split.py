"""The scenarios of one small split as deepeval test cases, for `deepeval test run` (deepeval's pytest runner):
each scenario runs once on its own database copy and is asserted with `deepeval.assert_test` on the harness's
deepeval metrics (database end state, tool correctness, tool permission; GEval tone, helpfulness and
faithfulness when a judge model is configured). Not collected by the plain suite (no test_ prefix): run it as

    deepeval test run tests/evals/deepeval_split.py   # LP_DEEPEVAL_SPLIT=core LP_DEEPEVAL_CAPABILITY=opt_out
                                                      # LP_DEEPEVAL_LIMIT=4 by default
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deepeval import assert_test

from evals.harness.metrics import deterministic_metrics, judge_metrics
from evals.harness.scenario import load_scenarios

SCENARIOS = Path(__file__).resolve().parents[2] / "evals" / "scenarios"
SPLIT = load_scenarios([SCENARIOS], split=os.environ.get("LP_DEEPEVAL_SPLIT", "core"),
                       capability=os.environ.get("LP_DEEPEVAL_CAPABILITY", "opt_out"))[
    : int(os.environ.get("LP_DEEPEVAL_LIMIT", "4"))]


@pytest.fixture(scope="module")
def base(server_url: str) -> Iterator[Any]:
    from evals.harness.database import Databases
    from tests import dbutil

    dbs = Databases(server_url, dbutil.TEMPLATE_DB, f"lp_deepeval_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    with dbs.base() as copy:
        yield copy


@pytest.mark.evals
@pytest.mark.parametrize("scenario", SPLIT, ids=[s.id for s in SPLIT])
def test_scenario(scenario: Any, base: Any) -> None:
    from evals.harness.runner import run_trial

    trial = run_trial(scenario, base, 0)
    assert trial.error is None, trial.error
    assert_test(trial.case, deterministic_metrics() + judge_metrics(scenario.expected.nl_assertions,
                                                                    with_knowledge=bool(trial.case.retrieval_context)),
                run_async=False)
