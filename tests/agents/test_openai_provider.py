"""LLM_PROVIDER=openai: ChatOpenAI (streaming) drives the same lead graph against a local server that speaks
the OpenAI chat-completions protocol (SSE chunks, tool calls, tool results), so no test reaches the internet."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agents.checkpoint import checkpointer
from agents.lead.graph import build_lead_graph
from agents.lead.runner import run_turn
from leadpilot.settings import get_settings

pytestmark = pytest.mark.integration


class Completions(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": 0, "model": "local-test",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body)}\n\n".encode()

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Completions.requests.append({"auth": self.headers.get("Authorization"), **request})
        last = request["messages"][-1]
        if last["role"] == "tool":  # answer from what the tool returned
            result = json.loads(last["content"])
            top = result["results"][0]["text"].split("\n", 1)[-1]
            chunks = [self._chunk({"role": "assistant", "content": top}), self._chunk({}, "stop")]
        else:  # look it up first
            call = {"index": 0, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                    "function": {"name": "search_knowledge", "arguments": json.dumps({"query": last["content"]})}}
            chunks = [self._chunk({"role": "assistant", "tool_calls": [call]}), self._chunk({}, "tool_calls")]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Completions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = get_settings()
    monkeypatch.setattr(settings, "llm_provider", "openai")
    monkeypatch.setattr(settings, "openai_api_key", "sk-local-test")
    monkeypatch.setattr(settings, "openai_base_url", f"http://127.0.0.1:{server.server_port}/v1")
    from agents.models import chat_model

    chat_model.cache_clear()
    Completions.requests = []
    yield
    chat_model.cache_clear()
    server.shutdown()


def test_chat_openai_runs_the_lead_graph_with_real_tool_calls(openai_server, lead) -> None:  # type: ignore[no-untyped-def]
    from agents.models import chat_model

    model = chat_model()
    assert type(model).__name__ == "ChatOpenAI" and model.streaming
    graph = build_lead_graph(model, checkpointer())
    result = run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                      conversation_id=lead.conversation_id, message_id=lead.says("when do you open on sundays?"),
                      graph=graph)
    assert result.decision == "answer" and "Sunday 10:00-21:00" in result.reply
    first, second = Completions.requests
    assert first["auth"] == "Bearer sk-local-test" and first["stream"] is True
    offered = {t["function"]["name"] for t in first["tools"]}
    assert "search_knowledge" in offered and "book_appointment" in offered
    assert "search_contacts" not in offered  # a staff-only capability is never offered to the lead agent
    assert first["messages"][0]["role"] == "system" and "CONTEXT " in first["messages"][0]["content"]
    assert second["messages"][-1]["role"] == "tool" and '"confident": true' in second["messages"][-1]["content"]
