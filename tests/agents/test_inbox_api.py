"""Staff sign-in (argon2, session cookie, rate limit, same-origin changes) and the live inbox API end to end:
a lead asks for a person, the handoff shows in needs-human and on the inbox socket, two staff race to claim
it (one wins), the reply leaves through the outbound path, and returning it to the AI resumes the graph."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import app
from channels import outbound
from models.conversations import Conversation, ConversationAIConfig, Handoff, Message
from models.db import owner_session
from models.sandbox import SandboxDelivery
from models.tenancy import User
from services.auth import MAX_FAILURES

pytestmark = pytest.mark.integration
PASSWORD = "demo1234"
ORIGIN = {"Origin": "http://testserver"}


def signed_in(email: str) -> TestClient:
    client = TestClient(app)
    response = client.post("/auth/sign-in", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client


def test_sign_in_sets_a_session_cookie_and_sign_out_ends_it(demo) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    wrong = client.post("/auth/sign-in", json={"email": "john@restaurant.com", "password": "nope"})
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
    response = client.post("/auth/sign-in", json={"email": "JOHN@restaurant.com", "password": PASSWORD})
    cookie = response.headers["set-cookie"]
    assert response.status_code == 200 and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert [s["name"] for s in response.json()["sub_accounts"]] == ["Restaurant Location A"]  # a client user
    assert client.get("/auth/me").json()["user"]["email"] == "john@restaurant.com"
    admin = signed_in("admin@digitalmarketing.com").get("/auth/me").json()
    assert {s["name"] for s in admin["sub_accounts"]} == {"Restaurant Location A", "Restaurant Location B",
                                                          "Bright Smile Dental"}  # every client of the agency
    assert client.post("/auth/sign-out", headers=ORIGIN).status_code == 204
    client.cookies.set("lp_session", cookie.split(";")[0].split("=", 1)[1])  # the old cookie, replayed
    assert client.get("/auth/me").status_code == 401


def test_sign_in_is_rate_limited(demo) -> None:  # type: ignore[no-untyped-def]
    client, email = TestClient(app), f"guess-{uuid.uuid4().hex[:6]}@example.com"
    for _ in range(MAX_FAILURES):
        assert client.post("/auth/sign-in", json={"email": email, "password": "x"}).status_code == 401
    blocked = client.post("/auth/sign-in", json={"email": email, "password": "x"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


def test_cookie_changes_must_come_from_the_app(turn, lead) -> None:  # type: ignore[no-untyped-def]
    turn("can I talk to a real person please")
    client = signed_in("jane@restaurant.com")
    url = f"/v1/sub-accounts/{lead.demo.a}/inbox/conversations/{lead.conversation_id}/claim"
    refused = client.post(url, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.json()["permission"] == "same-origin"
    assert client.post(url, headers=ORIGIN).status_code == 200


def test_the_handoff_flow_through_the_inbox(turn, lead) -> None:  # type: ignore[no-untyped-def]
    sub = lead.demo.a
    base = f"/v1/sub-accounts/{sub}/inbox"
    jane, john = signed_in("jane@restaurant.com"), signed_in("john@restaurant.com")
    with jane.websocket_connect(f"/v1/ws/inbox?sub_account_id={sub}") as live:
        live.send_json({"type": "ping"})
        assert live.receive_json() == {"type": "pong"}
        assert turn("can I talk to a real person please").decision == "handoff"
        events = [live.receive_json()]
        while events[-1]["type"] != "handoff.opened" and len(events) < 10:
            events.append(live.receive_json())
    assert events[-1]["type"] == "handoff.opened" and events[-1]["conversation_id"] == str(lead.conversation_id)

    queue = jane.get(f"{base}/conversations", params={"view": "needs_human"}).json()
    mine = next(c for c in queue if c["id"] == str(lead.conversation_id))
    assert mine["handoff"]["reason"] == "human_requested" and mine["handoff"]["wait_seconds"] >= 0

    results: dict[str, Any] = {}

    def claim(name: str, client: TestClient) -> None:
        results[name] = client.post(f"{base}/conversations/{lead.conversation_id}/claim", headers=ORIGIN)

    racers = [threading.Thread(target=claim, args=(n, c)) for n, c in (("jane", jane), ("john", john))]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 409]  # exactly one of two simultaneous claims wins
    winner = jane if results["jane"].status_code == 200 else john
    loser = results["john" if winner is jane else "jane"].json()
    assert "already claimed" in loser["detail"]

    detail = winner.get(f"{base}/conversations/{lead.conversation_id}").json()
    assert detail["handoff"]["claimed_by"] and detail["contact"]["email"]
    assert winner.post(f"{base}/conversations/{lead.conversation_id}/notes", headers=ORIGIN,
                       json={"body": "VIP, be nice"}).status_code == 201
    sent = winner.post(f"{base}/conversations/{lead.conversation_id}/reply", headers=ORIGIN,
                       json={"body": "Hi, this is the manager. We don't sell insurance, sorry!"})
    assert sent.status_code == 201
    assert outbound.deliver(lead.scope, uuid.UUID(sent.json()["id"])).outcome == "sent"  # as the worker does
    with owner_session() as session:
        delivery = session.scalars(select(SandboxDelivery).where(
            SandboxDelivery.request["message_id"].astext == sent.json()["id"])).one()
        note = session.scalars(select(Message).where(Message.conversation_id == lead.conversation_id,
                                                     Message.content_type == "note")).one()
    assert "manager" in delivery.request["body"] and note.status == "sent"

    back = winner.post(f"{base}/conversations/{lead.conversation_id}/return-to-ai", headers=ORIGIN)
    assert back.status_code == 200
    with owner_session() as session:
        config = session.scalars(select(ConversationAIConfig).where(
            ConversationAIConfig.conversation_id == lead.conversation_id)).one()
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == lead.conversation_id)).one()
    assert config.is_active and handoff.status == "returned_to_ai"
    assert handoff.returned_to_ai_at is not None and handoff.returned_to_ai_at == handoff.resolved_at
    assert turn("ok, and do you have parking?").decision == "answer"  # the AI answers the next message


def test_other_sub_accounts_and_missing_permissions(turn, lead) -> None:  # type: ignore[no-untyped-def]
    bob = signed_in("bob@restaurant.com")  # restaurant B's manager
    base = f"/v1/sub-accounts/{lead.demo.a}/inbox"
    assert bob.get(f"{base}/conversations").status_code == 404
    assert bob.post(f"{base}/conversations/{lead.conversation_id}/claim", headers=ORIGIN).status_code == 404
    own = f"/v1/sub-accounts/{lead.demo.b}/inbox/conversations/{lead.conversation_id}"
    assert bob.get(own).status_code == 404  # A's conversation through B's path: row-level security hides it
    assert TestClient(app).get(f"{base}/conversations").status_code == 401


def test_handoff_metrics_time_to_claim_resolve_and_rate(lead) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from models.db import tenant_session
    from services import inbox
    from services.handoff import open_handoff

    asked = datetime(2020, 1, 1, 10, 0, tzinfo=UTC)  # a day no other test uses
    with tenant_session(lead.scope) as session:
        jane = session.scalars(select(User.id).where(User.email == "jane@restaurant.com")).one()
        conversation = session.get(Conversation, lead.conversation_id)
        session.add(Message(sub_account_id=lead.demo.a, conversation_id=lead.conversation_id,
                            channel_id=conversation.channel_id, contact_id=lead.contact_id, direction="inbound",
                            sender_type="contact", body="old message", status="received", created_at=asked))
        open_handoff(session=session, conversation_id=lead.conversation_id, reason="lack_of_information", now=asked)
        inbox.claim(session=session, conversation_id=lead.conversation_id, user_id=jane,
                    now=asked + timedelta(minutes=4))
        inbox.resolve(session=session, conversation_id=lead.conversation_id, user_id=jane,
                      now=asked + timedelta(minutes=30))
    client = signed_in("john@restaurant.com")
    url = f"/v1/sub-accounts/{lead.demo.a}/reports/handoffs"
    window = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}
    metrics = client.get(url, params=window).json()
    assert (metrics["handoffs"], metrics["ai_conversations"], metrics["handoff_rate"]) == (1, 1, 1.0)
    assert metrics["time_to_claim"]["p50_s"] == 240.0 and metrics["time_to_resolve"]["p50_s"] == 1800.0
    assert metrics["by_reason"][0]["reason"] == "lack_of_information"
    assert metrics["by_person"][0]["name"] and metrics["by_person"][0]["resolved"] == 1
    png = client.get(url, params={**window, "format": "png"})
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert signed_in("bob@restaurant.com").get(url, params=window).status_code == 404


def test_canned_responses_and_calendars_for_the_inbox(lead) -> None:  # type: ignore[no-untyped-def]
    base = f"/v1/sub-accounts/{lead.demo.a}/inbox/canned-responses"
    manager, staff = signed_in("john@restaurant.com"), signed_in("jane@restaurant.com")
    shortcut = f"hours{uuid.uuid4().hex[:4]}"
    made = manager.put(base, headers=ORIGIN, json={"shortcut": f"/{shortcut}", "title": "Opening hours",
                                                   "body": "We open at 11:30 every day."})
    assert made.status_code == 200 and made.json()["shortcut"] == shortcut
    again = manager.put(base, headers=ORIGIN, json={"shortcut": shortcut.upper(), "body": "Open 11:30-22:00."})
    assert again.json()["id"] == made.json()["id"]  # the same shortcut, case-insensitively: replaced
    listed = {r["shortcut"]: r["body"] for r in staff.get(base).json()}
    assert listed[shortcut] == "Open 11:30-22:00."
    refused = staff.put(base, headers=ORIGIN, json={"shortcut": "x", "body": "y"})
    assert refused.status_code == 403 and refused.json()["permission"] == "settings.manage"
    assert signed_in("bob@restaurant.com").get(base).status_code == 404
    assert manager.delete(f"{base}/{made.json()['id']}", headers=ORIGIN).status_code == 204
    assert shortcut not in {r["shortcut"] for r in staff.get(base).json()}
    calendars = staff.get(f"/v1/sub-accounts/{lead.demo.a}/calendars").json()
    assert calendars and all(c["timezone"] for c in calendars)


def test_the_board_and_the_week_of_appointments(lead) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    manager = signed_in("john@restaurant.com")
    root = f"/v1/sub-accounts/{lead.demo.a}"
    pipeline = next(p for p in manager.get(f"{root}/pipelines").json() if p["is_default"])
    board = manager.get(f"{root}/pipelines/{pipeline['id']}/board").json()
    assert [s["name"] for s in board["stages"]] == [s["name"] for s in pipeline["stages"]]
    cards = [o for s in board["stages"] for o in s["opportunities"]]
    assert cards and all(o["contact"] and o["days_in_stage"] >= 0 for o in cards)
    now = datetime.now(UTC)
    week = manager.get(f"{root}/appointments", params={"start": (now - timedelta(days=30)).isoformat(),
                                                         "end": (now + timedelta(days=30)).isoformat()}).json()
    assert week and all(a["contact"] and a["calendar"] for a in week)
    assert [a["start"] for a in week] == sorted(a["start"] for a in week)
    too_long = manager.get(f"{root}/appointments", params={"start": now.isoformat(),
                                                             "end": (now + timedelta(days=90)).isoformat()})
    assert too_long.status_code == 422
    assert signed_in("jane@restaurant.com").get(f"{root}/pipelines/{pipeline['id']}/board").status_code == 403


def test_a_custom_role_is_enforced_like_a_seeded_one(lead) -> None:  # type: ignore[no-untyped-def]
    from models.db import TenantScope, tenant_session
    from services.auth import hash_password

    admin = signed_in("admin@digitalmarketing.com")
    name = f"Inbox watcher {uuid.uuid4().hex[:4]}"
    made = admin.post("/v1/agency/roles", headers=ORIGIN, json={"name": name, "scope": "sub_account",
                                                                "permissions": ["conversations.read", "inbox.claim"]})
    assert made.status_code == 201, made.text
    assert admin.post("/v1/agency/roles", headers=ORIGIN, json={"name": "x", "permissions": ["no.such"]}
                      ).status_code == 422
    assert any(r["name"] == name and r["custom"] for r in admin.get("/v1/agency/roles").json())
    email = f"watcher-{uuid.uuid4().hex[:6]}@restaurant.com"
    with tenant_session(TenantScope(agency_id=lead.demo.agency_id)) as session:
        role_id = uuid.UUID(made.json()["id"])
        user = User(agency_id=lead.demo.agency_id, role_id=role_id, email=email, name="Wanda Watcher",
                    password_hash=hash_password(PASSWORD))
        session.add(user)
        session.flush()
        user_id = user.id
    granted = admin.put(f"/v1/agency/users/{user_id}/sub-accounts/{lead.demo.a}/role", headers=ORIGIN,
                        json={"role_id": str(role_id)})
    assert granted.status_code == 200, granted.text
    wanda = signed_in(email)
    base = f"/v1/sub-accounts/{lead.demo.a}"
    assert wanda.get(f"{base}/inbox/conversations").status_code == 200
    refused = wanda.post(f"{base}/inbox/conversations/{lead.conversation_id}/reply", headers=ORIGIN,
                         json={"body": "hi"})
    assert refused.status_code == 403 and refused.json()["permission"] == "conversations.write"
    assert wanda.get(f"{base}/contacts").json()["permission"] == "contacts.read"
    assert wanda.get(f"/v1/sub-accounts/{lead.demo.b}/inbox/conversations").status_code == 404
    assert signed_in("john@restaurant.com").post("/v1/agency/roles", headers=ORIGIN, json={
        "name": "mine", "permissions": ["contacts.read"]}).status_code == 403  # a client user is not an admin
    admin.put(f"/v1/agency/users/{user_id}/sub-accounts/{lead.demo.a}/role", headers=ORIGIN, json={"role_id": None})
    assert signed_in(email).get(f"{base}/inbox/conversations").status_code == 404  # taken out again


def test_assign_by_hand_in_turn_and_by_skill(lead) -> None:  # type: ignore[no-untyped-def]
    manager = signed_in("john@restaurant.com")
    base = f"/v1/sub-accounts/{lead.demo.a}/inbox"
    staff = manager.get(f"{base}/staff").json()
    names = {u["name"]: u["id"] for u in staff}
    assert len(staff) >= 2 and all(u["id"] for u in staff)
    url = f"{base}/conversations/{lead.conversation_id}/assign"
    someone = next(iter(names.values()))
    assert manager.post(url, headers=ORIGIN, json={"strategy": "manual", "user_id": someone}
                        ).json()["assigned_user_id"] == someone
    assert manager.post(url, headers=ORIGIN, json={"strategy": "manual", "user_id": str(uuid.uuid4())}
                        ).status_code == 422  # not someone of this inbox
    turn = manager.post(url, headers=ORIGIN, json={"strategy": "round_robin"})
    assert turn.status_code == 200 and turn.json()["assigned_user_id"] in names.values()
    nobody = manager.post(url, headers=ORIGIN, json={"strategy": "skill", "skill": "klingon"})
    assert nobody.status_code == 409 and "klingon" in nobody.json()["detail"]
