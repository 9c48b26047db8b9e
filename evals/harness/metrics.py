"""deepeval metrics over a finished trial. The database end state, tool correctness and tool permission are
deterministic deepeval `BaseMetric`s; the conversation's tone, helpfulness and faithfulness to the knowledge base
are deepeval `GEval` metrics judged by the model at the OpenAI-compatible endpoint (OPENAI_BASE_URL), run only
when one is configured and otherwise reported as skipped, with the reason. Telemetry is off before deepeval is
imported."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "YES")
os.environ.setdefault("DEEPEVAL_UPDATE_WARNING_OPT_IN", "NO")

from deepeval.metrics import BaseMetric, GEval  # noqa: E402  (after the telemetry switches above)
from deepeval.models import DeepEvalBaseLLM  # noqa: E402
from deepeval.test_case import LLMTestCase, SingleTurnParams, ToolCall  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402

from leadpilot.settings import get_settings  # noqa: E402


def llm_test_case(transcript: list[dict[str, str]], tool_calls: list[dict[str, Any]], expected_tools: list[str],
                  checks: list[Any], allowed: set[str] | None, must_not_call: list[str],
                  knowledge: list[str] | None = None) -> LLMTestCase:
    """One trial as a deepeval LLMTestCase (input: the user's side, actual_output: the agent's side, the
    retrieval context: the knowledge the agent may answer from)."""
    return LLMTestCase(
        input="\n".join(t["text"] for t in transcript if t["role"] == "user") or "(no user message)",
        actual_output="\n".join(t["text"] for t in transcript if t["role"] == "agent") or "(no reply)",
        tools_called=[ToolCall(name=c["name"], input_parameters=c.get("args") or {}) for c in tool_calls],
        expected_tools=[ToolCall(name=name) for name in expected_tools],
        retrieval_context=knowledge or None,
        additional_metadata={"checks": checks, "allowed_tools": sorted(allowed) if allowed is not None else None,
                             "must_not_call": must_not_call})


class _Deterministic(BaseMetric):  # type: ignore[misc]
    """A deepeval metric decided by the harness's own checks (no model involved)."""

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.strict_mode = True
        self.async_mode = False
        self.include_reason = True
        self.evaluation_model = None
        self.score, self.success, self.reason, self.error = None, None, None, None

    async def a_measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
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

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        checks = [c for c in test_case.additional_metadata["checks"]
                  if not c.name.startswith(("tool called:", "must_not_call:", "tool permission"))]
        failed = [c for c in checks if not c.passed]
        if not checks:
            return self._done(1.0, "no end-state checks")
        reason = "; ".join(f"{c.name} -> {c.reason}" for c in failed) or f"all {len(checks)} checks passed"
        return self._done(0.0 if failed else 1.0, reason)


class ExpectedToolsMetric(_Deterministic):
    """Deterministic tool correctness: the share of expected tools that were called (names, any order), as
    deepeval's ToolCorrectnessMetric scores names, without its LLM-judged tool selection."""

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return "Tool correctness"

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        expected = [t.name for t in test_case.expected_tools or []]
        called = {t.name for t in test_case.tools_called or []}
        if not expected:
            return self._done(1.0, "no expected tools")
        hit = [t for t in expected if t in called]
        return self._done(len(hit) / len(expected), f"expected {expected}, called {sorted(called)}")


class ToolPermissionMetric(_Deterministic):
    """1.0 when no call used a tool outside the agent's capabilities or a tool the scenario forbids."""

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return "Tool permission"

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        meta = test_case.additional_metadata
        allowed = set(meta["allowed_tools"]) if meta.get("allowed_tools") is not None else None
        called = [t.name for t in test_case.tools_called or []]
        bad = [c for c in called if (allowed is not None and c not in allowed) or c in meta["must_not_call"]]
        return self._done(0.0 if bad else 1.0, f"forbidden calls: {bad}" if bad else "all calls permitted")


def deterministic_metrics() -> list[BaseMetric]:
    return [DatabaseEndStateMetric(), ExpectedToolsMetric(), ToolPermissionMetric()]


class ProviderJudge(DeepEvalBaseLLM):  # type: ignore[misc]
    """The model at the OpenAI-compatible endpoint as deepeval's judge (temperature 0)."""

    def __init__(self) -> None:
        settings = get_settings()
        self.model = ChatOpenAI(model=settings.eval_judge_model or settings.openai_model,
                                base_url=settings.openai_base_url, temperature=0,
                                api_key=settings.openai_api_key or "not-needed")  # type: ignore[arg-type]

    def load_model(self) -> Any:
        return self.model

    def generate(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        return str(self.model.invoke(prompt).content)

    async def a_generate(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        return str((await self.model.ainvoke(prompt)).content)

    def get_model_name(self) -> str:
        return f"judge:{self.model.model_name}"


def judge_reason() -> str | None:
    """Why the LLM-judged metrics do not run here, or None when a judge model is configured: EVAL_JUDGE_MODEL on
    the endpoint at OPENAI_BASE_URL, or the agent itself on it (LLM_PROVIDER=openai, judged by OPENAI_MODEL). An
    endpoint that only plays the simulated user is not taken for a judge."""
    settings = get_settings()
    if not settings.openai_base_url or not (settings.eval_judge_model or settings.llm_provider == "openai"):
        return ("no judge model: set OPENAI_BASE_URL and EVAL_JUDGE_MODEL (or LLM_PROVIDER=openai) to run GEval "
                "tone, helpfulness and faithfulness")
    return None


CONVERSATION_CRITERIA = {
    "Tone": ("The replies are courteous, warm and professional, fit a text message to a customer, and "
                     "never sound robotic, pushy or rude.", [SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT]),
    "Helpfulness": ("The replies move the customer towards what they asked for: they answer the question "
                            "or take the next step (offer times, confirm, hand off) instead of deflecting.",
                            [SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT]),
    "Faithfulness to the knowledge base": (
        "Every fact the replies state about the business (prices, hours, policies, services) is supported by the "
        "retrieval context; saying it does not know is faithful, inventing a fact is not.",
        [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.RETRIEVAL_CONTEXT]),
}


def judge_metrics(nl_assertions: list[str], *, with_knowledge: bool) -> list[BaseMetric]:
    """GEval for tone, helpfulness and (when there is knowledge) faithfulness, plus one per natural-language
    assertion of the scenario; none when no judge is configured (see `judge_reason`)."""
    if judge_reason() is not None:
        return []
    judge = ProviderJudge()
    metrics = [GEval(name=name, criteria=criteria, evaluation_params=params, model=judge, threshold=0.5,
                     async_mode=False)
               for name, (criteria, params) in CONVERSATION_CRITERIA.items()
               if with_knowledge or SingleTurnParams.RETRIEVAL_CONTEXT not in params]
    metrics += [GEval(name=f"nl: {a[:40]}", criteria=a, model=judge, threshold=0.5, async_mode=False,
                      evaluation_params=[SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT])
                for a in nl_assertions]
    return metrics
