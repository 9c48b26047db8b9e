"""deepeval metrics over a finished trial. The database end state, tool correctness and tool permission are
deterministic `BaseMetric`s; conversation metrics judged by an LLM run only when a judge model is configured
(LLM_PROVIDER=openai), through a `DeepEvalBaseLLM` over the same provider. Telemetry is off before deepeval is
imported. Without deepeval installed, the same metric classes run on a minimal stand-in base class, so the
offline suite never depends on it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "YES")
os.environ.setdefault("DEEPEVAL_UPDATE_WARNING_OPT_IN", "NO")

try:  # deepeval is optional: the offline suite is scored by the deterministic metrics below either way
    from deepeval.metrics import BaseMetric
    from deepeval.test_case import LLMTestCase, ToolCall

    HAVE_DEEPEVAL = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_DEEPEVAL = False

    class BaseMetric:  # type: ignore[no-redef]
        """The part of deepeval's BaseMetric interface the harness uses."""

        threshold: float = 1.0
        score: float | None = None
        success: bool | None = None
        reason: str | None = None
        async_mode = False
        strict_mode = True

        def is_successful(self) -> bool:
            return bool(self.success)

    @dataclass
    class ToolCall:  # type: ignore[no-redef]
        name: str
        input_parameters: dict[str, Any] | None = None

    @dataclass
    class LLMTestCase:  # type: ignore[no-redef]
        input: str
        actual_output: str
        tools_called: list[Any] = field(default_factory=list)
        expected_tools: list[Any] = field(default_factory=list)
        additional_metadata: dict[str, Any] = field(default_factory=dict)


def test_case_for(transcript: list[dict[str, str]], tool_calls: list[dict[str, Any]], expected_tools: list[str],
                  checks: list[Any], allowed: set[str] | None, must_not_call: list[str]) -> Any:
    """One trial as a deepeval LLMTestCase (input: the user's side, actual_output: the agent's side)."""
    return LLMTestCase(
        input="\n".join(t["text"] for t in transcript if t["role"] == "user") or "(no user message)",
        actual_output="\n".join(t["text"] for t in transcript if t["role"] == "agent") or "(no reply)",
        tools_called=[ToolCall(name=c["name"], input_parameters=c.get("args") or {}) for c in tool_calls],
        expected_tools=[ToolCall(name=name) for name in expected_tools],
        additional_metadata={"checks": checks, "allowed_tools": sorted(allowed) if allowed is not None else None,
                             "must_not_call": must_not_call})


class _Deterministic(BaseMetric):  # type: ignore[misc]
    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.strict_mode = True
        self.async_mode = False
        self.include_reason = True
        self.evaluation_model = None
        self.score, self.success, self.reason, self.error = None, None, None, None

    async def a_measure(self, test_case: Any, *args: Any, **kwargs: Any) -> float:
        return self.measure(test_case)

    def is_successful(self) -> bool:
        return bool(self.success)

    def _done(self, score: float, reason: str) -> float:
        self.score, self.reason = score, reason
        self.success = score >= self.threshold
        return score


class DatabaseEndStateMetric(_Deterministic):
    """1.0 when every db assertion, must_say, must_not_say, handoff and analyst figure check passed."""

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return "Database end state"

    def measure(self, test_case: Any, *args: Any, **kwargs: Any) -> float:
        checks = [c for c in test_case.additional_metadata["checks"]
                  if not c.name.startswith(("tool called:", "must_not_call:", "tool permission"))]
        failed = [c for c in checks if not c.passed]
        if not checks:
            return self._done(1.0, "no end-state checks")
        reason = "; ".join(f"{c.name} -> {c.reason}" for c in failed) or f"all {len(checks)} checks passed"
        return self._done(0.0 if failed else 1.0, reason)


class ExpectedToolsMetric(_Deterministic):
    """Deterministic tool correctness: the share of expected tools that were called (names, any order), as
    deepeval's ToolCorrectnessMetric computes it without an LLM."""

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return "Tool correctness"

    def measure(self, test_case: Any, *args: Any, **kwargs: Any) -> float:
        expected = [t.name for t in test_case.expected_tools]
        called = {t.name for t in test_case.tools_called}
        if not expected:
            return self._done(1.0, "no expected tools")
        hit = [t for t in expected if t in called]
        return self._done(len(hit) / len(expected), f"expected {expected}, called {sorted(called)}")


class ToolPermissionMetric(_Deterministic):
    """1.0 when no call used a tool outside the agent's capabilities or a tool the scenario forbids."""

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return "Tool permission"

    def measure(self, test_case: Any, *args: Any, **kwargs: Any) -> float:
        meta = test_case.additional_metadata
        allowed = set(meta["allowed_tools"]) if meta.get("allowed_tools") is not None else None
        called = [t.name for t in test_case.tools_called]
        bad = [c for c in called if (allowed is not None and c not in allowed) or c in meta["must_not_call"]]
        return self._done(0.0 if bad else 1.0, f"forbidden calls: {bad}" if bad else "all calls permitted")


def deterministic_metrics() -> list[Any]:
    return [DatabaseEndStateMetric(), ExpectedToolsMetric(), ToolPermissionMetric()]


def judge_metrics(nl_assertions: list[str]) -> list[Any]:
    """LLM-judged metrics (GEval per natural-language assertion) when deepeval and a judge model are configured;
    none otherwise, so offline runs never reach a network."""
    from leadpilot.settings import get_settings

    if not HAVE_DEEPEVAL or get_settings().llm_provider != "openai" or not nl_assertions:
        return []
    from deepeval.metrics import GEval
    from deepeval.models import DeepEvalBaseLLM
    from deepeval.test_case import LLMTestCaseParams

    class ProviderJudge(DeepEvalBaseLLM):  # type: ignore[misc]
        """The configured OpenAI-compatible chat model as deepeval's judge."""

        def __init__(self) -> None:
            from agents.models import chat_model

            self.model = chat_model()

        def load_model(self) -> Any:
            return self.model

        def generate(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            return str(self.model.invoke(prompt).content)

        async def a_generate(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            return str((await self.model.ainvoke(prompt)).content)

        def get_model_name(self) -> str:
            return "leadpilot-provider"

    judge = ProviderJudge()
    return [GEval(name=f"nl: {a[:40]}", criteria=a, model=judge, threshold=0.5,
                  evaluation_params=[LLMTestCaseParams.INPUT, LLMTestCaseParams.ACTUAL_OUTPUT])
            for a in nl_assertions]
