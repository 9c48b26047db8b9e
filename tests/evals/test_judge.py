"""The LLM-judged metrics run when a judge model is configured: deepeval's GEval for tone, helpfulness and
faithfulness to the knowledge base, asked of the model at OPENAI_BASE_URL (here a local server speaking the
chat-completions protocol), and are skipped with the reason when none is."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from evals.harness.metrics import judge_metrics, judge_reason, llm_test_case
from leadpilot.settings import get_settings


class _Judge(BaseHTTPRequestHandler):
    """Answers GEval's two prompts: the evaluation steps, then a score with its reason (low for invented facts)."""

    prompts: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = request["messages"][-1]["content"]
        _Judge.prompts.append(prompt)
        if '"steps"' in prompt:
            content = json.dumps({"steps": ["Read the replies.", "Judge them against the criteria."]})
        else:
            invented = "$99" in prompt and "Retrieval Context" in prompt
            content = json.dumps({"score": 2 if invented else 9, "reason": "invented a price" if invented else "ok"})
        body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": request["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": content}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(get_settings(), "openai_base_url", f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.setattr(get_settings(), "eval_judge_model", "judge-model")
    _Judge.prompts = []
    yield
    server.shutdown()


def _case(reply: str) -> Any:
    return llm_test_case([{"role": "user", "text": "How much is a call-out?"}, {"role": "agent", "text": reply}],
                         [], [], [], None, [], ["Do you charge a call-out fee?\nOur call-out fee is $149."])


def test_without_a_judge_the_llm_metrics_are_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "openai_base_url", None)
    assert judge_metrics([], with_knowledge=True) == []
    assert "OPENAI_BASE_URL" in (judge_reason() or "")
    monkeypatch.setattr(get_settings(), "openai_base_url", "http://127.0.0.1:9/v1")  # a user simulator only
    monkeypatch.setattr(get_settings(), "llm_provider", "local")
    monkeypatch.setattr(get_settings(), "eval_judge_model", None)
    assert judge_metrics([], with_knowledge=True) == [] and judge_reason() is not None


def test_geval_judges_tone_helpfulness_and_faithfulness(judge: None) -> None:
    names = [m.__name__ for m in judge_metrics(["The agent states the fee"], with_knowledge=True)]
    assert names[:3] == ["Tone [GEval]", "Helpfulness [GEval]", "Faithfulness to the knowledge base [GEval]"]
    assert judge_reason() is None
    scored = {}
    for reply in ("Our call-out fee is $149.", "It's just $99 to come out!"):
        for metric in judge_metrics(["The agent states the fee"], with_knowledge=True):
            metric.measure(_case(reply))
            scored[(reply[:8], metric.__name__)] = (metric.score, metric.is_successful())
    assert scored[("Our call", "Faithfulness to the knowledge base [GEval]")] == (0.9, True)
    assert scored[("It's jus", "Faithfulness to the knowledge base [GEval]")] == (0.2, False)
    assert scored[("It's jus", "Tone [GEval]")] == (0.9, True)  # the tone judge is not shown the knowledge
    assert any("Our call-out fee is $149" in p and "Retrieval Context" in p for p in _Judge.prompts)
