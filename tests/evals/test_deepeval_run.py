"""`deepeval test run` works on the suite as deepeval's users expect: its CLI runs a small split through
deepeval's pytest runner and reports every case passed (the same command a developer runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.evals


def test_deepeval_test_run_passes_on_a_small_split() -> None:
    deepeval = Path(sys.executable).with_name("deepeval")
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw9", "DEEPEVAL_TELEMETRY_OPT_OUT": "YES", "NO_COLOR": "1",
           "LP_DEEPEVAL_LIMIT": "3"}
    env.pop("DATABASE_URL", None)  # the run points itself at its own copy of the test template
    done = subprocess.run([str(deepeval), "test", "run", "tests/evals/deepeval_split.py", "--color", "no"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "3 passed" in out and "Pass Rate: 100.0%" in out, out[-4000:]
