"""Hand-made hostile requests: a NUL (raw, `%00` or `\\u0000`), a lone surrogate or bytes that are not UTF-8 where
text goes, bodies past their route's limit, values outside a parameter's vocabulary or bounds, and bad webchat
frames. Each gets the exact 4xx with a problem-details body (an error frame on the socket, which stays open),
and nothing is stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from starlette.websockets import WebSocketDisconnect

from api.app import app
from api.guard import DEFAULT_LIMIT
from models.activity import Integration
from models.ai import KnowledgeSource
from models.calendars import AvailabilityRule, Calendar
from models.conversations import Channel
from models.crm import Contact, Note
from models.db import owner_session
from models.performance import FinancialRecord
from models.tenancy import Role
from tests.api.test_rest import base, key_for, problem
from tests.conftest import Demo

pytestmark = pytest.mark.integration
client = TestClient(app, raise_server_exceptions=False)
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def john(demo: Demo) -> dict[str, str]:
    return key_for(demo, "john@restaurant.com")


@pytest.fixture(scope="module")
def admin(demo: Demo) -> dict[str, str]:
    return key_for(demo, "admin@digitalmarketing.com")


def _count(model: Any, *where: Any) -> int:
    with owner_session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def unstorable(response: Any, where: str) -> dict[str, Any]:
    """A 422 problem from the input guard, naming where the bad text was."""
    body = problem(response, 422)
    assert body["title"] == "Invalid request"
    assert body["errors"][0]["loc"] == [where] and body["errors"][0]["type"] == "unstorable_text"
    return body


def invalid_param(response: Any, location: str, name: str) -> None:
    """A 422 problem from schema validation, naming the parameter."""
    body = problem(response, 422)
    assert ["query" if location == "query" else location, name] in [e["loc"] for e in body["errors"]], body


# ------------------------------------------------------------------ NUL and lone surrogates in text

@pytest.mark.parametrize("raw", [b'{"first_name": "Ada\\u0000", "last_name": "Hostile"}',
                                 b'{"first_name": "Ada\\ud800", "last_name": "Hostile"}',
                                 b'{"first_name": "Ada", "last_name": "Hostile", "custom_fields": {"k\\u0000": 1}}',
                                 b'{"first_name": "Ada\xff", "last_name": "Hostile"}'])
def test_a_contact_named_with_unstorable_text_is_422_and_not_stored(raw: bytes, john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    before = _count(Contact, Contact.sub_account_id == demo.a)
    body = unstorable(client.post(f"{base(demo.a)}/contacts", content=raw, headers={**john, **JSON}), "body")
    assert "JSON body" in body["detail"]
    assert _count(Contact, Contact.sub_account_id == demo.a) == before


def test_a_note_with_a_nul_is_422_and_not_stored(john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with owner_session() as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.sub_account_id == demo.a,
                                                             Contact.deleted_at.is_(None)).limit(1))
    before = _count(Note, Note.contact_id == contact_id)
    body = unstorable(client.post(f"{base(demo.a)}/contacts/{contact_id}/notes", json={"body": "call back\x00"},
                                  headers=john), "body")
    assert body["detail"] == "A string in the JSON body contains a NUL character."
    assert _count(Note, Note.contact_id == contact_id) == before


@pytest.mark.parametrize("query", ["q=%00", "q=ada%00", "q=%FF", "q=%ED%A0%80", "tag=vip%00"])
def test_a_search_with_unstorable_text_in_the_query_is_422(query: str, john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    body = unstorable(client.get(f"{base(demo.a)}/contacts?{query}", headers=john), "query string")
    assert body["instance"] == f"{base(demo.a)}/contacts"


@pytest.mark.parametrize("path", ["/contacts/%00", "/contacts/a%ED%A0%80", "/contacts/%FF"])
def test_unstorable_text_in_the_path_is_422(path: str, john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    body = unstorable(client.get(f"{base(demo.a)}{path}", headers=john), "path")
    assert "instance" not in body or "\x00" not in body["instance"]


def test_a_nul_in_a_header_is_422(john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"{base(demo.a)}/contacts", headers={**john, "User-Agent": "probe\x00"})
    assert "user-agent" in unstorable(response, "header")["detail"]


def test_a_role_with_a_nul_in_a_permission_name_is_422_and_not_created(admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    name = f"Hostile {uuid.uuid4().hex[:6]}"
    unstorable(client.post("/v1/agency/roles", json={"name": name, "permissions": ["contacts.read\x00"]},
                           headers=admin), "body")
    assert _count(Role, Role.name == name) == 0


def test_a_form_body_with_a_nul_is_422(demo: Demo) -> None:
    response = client.post(f"/s/restaurant-a/demo/_form/{uuid.uuid4()}", content=b"first_name=Ada%00&email=a%40b.co",
                           headers=FORM)
    assert unstorable(response, "form body")["detail"] == "The form body contains a NUL character."


def test_provider_webhooks_are_spared_the_nul_check_but_not_the_size_limit() -> None:
    # Stripe's own signature check answers (nothing configured or a bad signature), not the guard's 422
    stripe = client.post("/webhooks/stripe", content=b'{"id": "evt_\\u0000"}', headers=JSON)
    assert stripe.status_code in (400, 503) and stripe.json().get("errors") is None
    twilio = client.post("/webhooks/twilio/sms", content=b"Body=" + b"x" * (65 * 1024), headers=FORM)
    problem(twilio, 413)


# ------------------------------------------------------------------ body size

def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_a_body_past_one_mib_is_413_whether_declared_or_streamed(john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    before = _count(Contact, Contact.sub_account_id == demo.a)
    declared = client.post(f"{base(demo.a)}/contacts", content=b" " * (DEFAULT_LIMIT + 1), headers={**john, **JSON})
    assert "1,048,576 bytes" in problem(declared, 413)["detail"]
    # chunked, no Content-Length: counted as it arrives
    streamed = client.post(f"{base(demo.a)}/contacts", content=_chunks(DEFAULT_LIMIT + 1), headers={**john, **JSON})
    problem(streamed, 413)
    assert _count(Contact, Contact.sub_account_id == demo.a) == before


def test_a_knowledge_upload_may_be_bigger_than_one_mib(john, admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    kb = client.post(f"{base(demo.a)}/knowledge-bases", json={"name": f"Big {uuid.uuid4().hex[:6]}"}, headers=admin)
    assert kb.status_code == 201, kb.text
    text_file = ("Opening hours are posted at the door. " * 40_000).encode()  # 1.5 MB
    assert len(text_file) > DEFAULT_LIMIT
    response = client.post(f"{base(demo.a)}/knowledge-bases/{kb.json()['id']}/sources", headers=admin,
                           files={"file": ("hours.txt", text_file, "text/plain")}, data={"source_type": "text"})
    assert response.status_code in (201, 202), response.text


# ------------------------------------------------------------------ typed parameters

@pytest.mark.parametrize(("query", "name"), [("stage=not-a-stage", "stage"), ("page=0", "page"),
                                             ("page_size=100000", "page_size"), ("q=" + "a" * 201, "q")])
def test_contact_search_parameters_are_typed(query: str, name: str, john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    invalid_param(client.get(f"{base(demo.a)}/contacts?{query}", headers=john), "query", name)
    assert client.get(f"{base(demo.a)}/contacts?stage=lead", headers=john).status_code == 200


def test_an_unknown_inbox_channel_is_422(john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    invalid_param(client.get(f"{base(demo.a)}/inbox/conversations?channel=pigeon", headers=john), "query", "channel")
    assert client.get(f"{base(demo.a)}/inbox/conversations?channel=sms", headers=john).status_code == 200


@pytest.mark.parametrize("limit", ["-1", "0", "501", "99999999999999999999999"])
def test_log_and_execution_limits_are_bounded(limit: str, john, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with owner_session() as session:
        workflow_id = session.scalar(text("SELECT id FROM workflows WHERE sub_account_id = :s LIMIT 1"), {"s": demo.a})
    hook = client.post(f"{base(demo.a)}/webhooks", json={"url": "https://example.com/hook", "events": ["*"]},
                       headers=john)
    assert hook.status_code == 201, hook.text
    invalid_param(client.get(f"{base(demo.a)}/webhooks/{hook.json()['id']}/logs?limit={limit}", headers=john),
                  "query", "limit")
    invalid_param(client.get(f"{base(demo.a)}/workflows/{workflow_id}/executions?limit={limit}", headers=john),
                  "query", "limit")
    assert client.get(f"{base(demo.a)}/webhooks/{hook.json()['id']}/logs?limit=5", headers=john).status_code == 200
    client.delete(f"{base(demo.a)}/webhooks/{hook.json()['id']}", headers=john)


@pytest.mark.parametrize(("query", "name"), [("start=0154-03-20T03:05:23Z&end=1347-07-20T04:23:54Z", "start"),
                                             ("tz=Not/AZone", "tz"), ("anchor=0001-01-01", "anchor")])
def test_report_dates_and_timezones_are_checked(query: str, name: str, admin) -> None:  # type: ignore[no-untyped-def]
    invalid_param(client.get(f"/v1/agency/reports?{query}", headers=admin), "query", name)


def test_an_unknown_timezone_in_a_body_is_422(admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/analyst/ask", json={"question": "revenue last month", "sub_account_id": str(demo.a),
                                                    "timezone": "Mars/Olympus"}, headers=admin)
    assert ["body", "timezone"] in [e["loc"] for e in problem(response, 422)["errors"]]


# ------------------------------------------------------------------ the webchat websocket

@pytest.fixture
def widget_key(demo: Demo) -> str:
    with owner_session() as session:
        return session.scalars(select(Channel.address).where(Channel.sub_account_id == demo.a,
                                                              Channel.channel_type == "webchat")
                               .order_by(Channel.created_at).limit(1)).one()


def _error_then_pong(socket: Any, status: int) -> dict[str, Any]:
    error = socket.receive_json()
    assert error["type"] == "error" and error["status"] == status, error
    socket.send_json({"type": "ping"})  # still open
    assert socket.receive_json() == {"type": "pong"}
    return error


def test_bad_webchat_frames_get_an_error_frame_and_the_socket_stays_open(widget_key: str, demo: Demo) -> None:
    before = _count(Contact, Contact.sub_account_id == demo.a)
    with TestClient(app).websocket_connect(f"/widget/ws?key={widget_key}") as socket:
        assert socket.receive_json()["type"] == "hello"
        socket.send_text("this is not json")
        assert "JSON" in _error_then_pong(socket, 422)["detail"]
        socket.send_text("[1, 2, 3]")
        _error_then_pong(socket, 422)
        socket.send_bytes(b"\xff\xfe not utf-8")
        _error_then_pong(socket, 422)
        socket.send_text('{"type": "start", "name": "Ada\\u0000", "email": "ada@example.com"}')
        assert "NUL" in _error_then_pong(socket, 422)["detail"]
        socket.send_text('{"type": "start", "name": "Ada\\ud800"}')
        assert "surrogate" in _error_then_pong(socket, 422)["detail"]
        socket.send_json({"type": "start", "name": ["not", "text"]})
        _error_then_pong(socket, 422)
        socket.send_json({"type": "message", "body": "x" * 20_000, "client_id": "c1"})
        _error_then_pong(socket, 413)
    assert _count(Contact, Contact.sub_account_id == demo.a) == before


@pytest.mark.parametrize("key", ["%00", "abc%00def", "x" * 300])
def test_a_widget_key_with_a_nul_is_refused_cleanly(key: str) -> None:
    with TestClient(app).websocket_connect(f"/widget/ws?key={key}") as socket:
        error = socket.receive_json()
        assert (error["type"], error["status"]) == ("error", 404)
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 4404
    problem(client.get(f"/widget/demo?key={key}"), 422 if "%00" in key else 404)


def test_a_forged_non_ascii_session_token_starts_over(widget_key: str) -> None:
    with TestClient(app).websocket_connect(f"/widget/ws?key={widget_key}&token=abc.%C3%A9") as socket:
        hello = socket.receive_json()
        assert hello["type"] == "hello" and hello["session"] is False


# ------------------------------------------------------------------ files: knowledge sources, CSV imports, iCalendar

def test_a_knowledge_file_keeps_its_text_without_nul_and_a_nul_in_its_name_is_422(admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    kb = client.post(f"{base(demo.a)}/knowledge-bases", json={"name": f"Nul {uuid.uuid4().hex[:6]}"}, headers=admin)
    url = f"{base(demo.a)}/knowledge-bases/{kb.json()['id']}/sources"
    named = client.post(url, headers=admin, files={"file": ("hours.txt", b"Open daily", "text/plain")},
                        data={"source_type": "text", "name": "hours\x00"})
    assert problem(named, 422)["field"] == "name"
    assert _count(KnowledgeSource, KnowledgeSource.knowledge_base_id == kb.json()["id"]) == 0
    stored = client.post(url, headers=admin, data={"source_type": "text"},
                         files={"file": ("hours.txt", b"We open\x00 at nine every day.", "text/plain")})
    assert stored.status_code == 201, stored.text
    with owner_session() as session:
        content = session.scalar(select(KnowledgeSource.content).where(KnowledgeSource.id == stored.json()["id"]))
    assert content == "We open at nine every day."


def test_a_csv_import_with_a_nul_is_422_and_imports_nothing(admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with owner_session() as session:
        meta = session.scalar(select(Integration.id).where(Integration.sub_account_id == demo.a,
                                                           Integration.provider_name == "meta",
                                                           Integration.deleted_at.is_(None)).limit(1))
    before = _count(FinancialRecord, FinancialRecord.sub_account_id == demo.a)
    export = b"Day,Campaign ID,Campaign name,Amount spent (USD)\n2026-11-01,123\x00,Brunch,10.00\n"
    response = client.post(f"{base(demo.a)}/integrations/{meta}/import-csv", content=export,
                           headers={**admin, "content-type": "text/csv"})
    assert "NUL" in problem(response, 422)["detail"]
    assert _count(FinancialRecord, FinancialRecord.sub_account_id == demo.a) == before


def test_an_icalendar_feed_with_a_nul_in_an_event_id_is_imported_without_it(admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with owner_session() as session:
        calendar_id = session.scalar(select(Calendar.id).where(Calendar.sub_account_id == demo.a,
                                                                Calendar.deleted_at.is_(None)).limit(1))
    feed = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:busy\x00-1\r\nDTSTART:20301210T100000Z\r\n"
            b"DTEND:20301210T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    url = f"{base(demo.a)}/calendars/{calendar_id}/busy"
    response = client.post(url, content=feed, headers={**admin, "content-type": "text/calendar"})
    assert response.json() == {"imported": 1}, response.text
    assert _count(AvailabilityRule, AvailabilityRule.calendar_id == calendar_id,
                  AvailabilityRule.label == "ical:busy-1") == 1
    no_start = feed.replace(b"DTSTART:20301210T100000Z\r\n", b"")
    assert "DTSTART" in problem(client.post(url, content=no_start, headers={**admin, "content-type": "text/calendar"}),
                                422)["detail"]
    client.post(url, content=b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
                headers={**admin, "content-type": "text/calendar"})  # the demo's calendar without the closure again
