"""LLM_PROVIDER=openai: ChatOpenAI (streaming) drives the same lead graph against a local server that speaks
the OpenAI chat-completions protocol (SSE chunks, tool calls, tool results), so no test reaches the internet."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from agents.checkpoint import checkpointer
from agents.lead.graph import build_lead_graph
from agents.lead.runner import run_turn
from evals.harness import clock
from leadpilot.settings import get_settings
from models.calendars import Appointment
from models.crm import Contact
from models.db import tenant_session

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
    Completions.requests = []
    with _serving(Completions, monkeypatch):
        yield


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local chat-completions server, and the settings that point ChatOpenAI at it."""
    from agents.models import chat_model

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = get_settings()
    monkeypatch.setattr(settings, "llm_provider", "openai")
    monkeypatch.setattr(settings, "openai_api_key", "sk-local-test")
    monkeypatch.setattr(settings, "openai_base_url", f"http://127.0.0.1:{server.server_port}/v1")
    chat_model.cache_clear()
    try:
        yield
    finally:
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


RECORDING = Path(__file__).with_name("recordings") / "openai_booking.json"


class Replay(Completions):
    """Serves a recorded tool-calling conversation, one response per request, filling `{result.PATH}` from the
    tool result the graph sent back (as the recorded model read it)."""

    script: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Completions.requests.append(request)
        step = Replay.script[len(Completions.requests) - 1]
        last = request["messages"][-1]
        result = json.loads(last["content"]) if last["role"] == "tool" else {}
        if "tool" in step:
            args = {k: _filled(v, result) for k, v in step["arguments"].items()}
            call = {"index": 0, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                    "function": {"name": step["tool"], "arguments": json.dumps(args)}}
            chunks = [self._chunk({"role": "assistant", "tool_calls": [call]}), self._chunk({}, "tool_calls")]
        else:
            chunks = [self._chunk({"role": "assistant", "content": step["content"]}), self._chunk({}, "stop")]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)
        self.wfile.write(b"data: [DONE]\n\n")


def _filled(value: Any, result: dict[str, Any]) -> Any:
    if not (isinstance(value, str) and value.startswith("{result.")):
        return value
    found: Any = result
    for part in value[len("{result."):-1].split("."):
        found = found[int(part)] if isinstance(found, list) else found[part]
    return found


def test_a_recorded_tool_calling_conversation_replays_through_the_same_graph(  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch, lead) -> None:
    """The OpenAI-compatible tier reads the same configuration and frame as the offline one and gets the same
    typed tools: a recorded conversation (details saved, the exact time asked for, the slot booked) replays
    through the real graph, tools and database."""
    recording = json.loads(RECORDING.read_text())
    Replay.script = recording["responses"]
    Completions.requests = []
    from agents.models import chat_model

    now = datetime(2026, 11, 25, 15, tzinfo=ZoneInfo("UTC"))
    with _serving(Replay, monkeypatch), clock.frozen(now):
        result = run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                          conversation_id=lead.conversation_id, message_id=lead.says(recording["lead_says"]),
                          graph=build_lead_graph(chat_model(), checkpointer()), now=now)
    assert result.reply == recording["responses"][-1]["content"]
    system = Completions.requests[0]["messages"][0]["content"]
    assert "Reply in English" in system and "dialogue frame" in system and '"email": "maria.lopez@example.com"' in \
        system  # the frame the parsers filled, shown to the model
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in Completions.requests[0]["tools"]}
    assert {"preferred", "after", "before"} <= set(schemas["check_availability"]["properties"])
    assert {"first_name", "email", "phone"} <= set(schemas["update_contact"]["properties"])
    availability = json.loads(Completions.requests[2]["messages"][-1]["content"])
    assert availability["requested"]["free"] is True, availability["requested"]
    with tenant_session(lead.scope) as session:
        contact = session.get(Contact, lead.contact_id)
        booked = session.scalars(select(Appointment).where(Appointment.contact_id == lead.contact_id)).all()
    assert (contact.first_name, contact.last_name, contact.email) == ("Maria", "Lopez", "maria.lopez@example.com")
    assert [a.start_time.astimezone(ZoneInfo("America/Chicago")).hour for a in booked] == [13]
