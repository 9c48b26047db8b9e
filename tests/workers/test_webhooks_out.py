"""Outbound webhooks as a customer receives them: a receiver checks the signature with a few lines of the
standard library, answers 500 first and sees the retry; every attempt is logged; an endpoint failing again
and again is disabled; a rolled-back change announces nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from models.activity import Webhook, WebhookLog
from models.conversations import OutboxEvent
from models.db import TenantScope, owner_session, tenant_session
from services import crm, webhooks
from tests.conftest import Demo

pytestmark = pytest.mark.integration


class Receiver:
    """A customer's endpoint: verifies like the docs say, answers with the scripted statuses (then 200)."""

    def __init__(self, secret: str) -> None:
        self.secret, self.script, self.seen = secret, [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp, signature = self.headers["X-LeadPilot-Timestamp"], self.headers["X-LeadPilot-Signature"]
                expected = "sha256=" + hmac.new(outer.secret.encode(), timestamp.encode() + b"." + body,
                                                hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(expected, signature) and abs(time.time() - int(timestamp)) < 300
                outer.seen.append({"valid": valid, "event": json.loads(body),
                                   "delivery": self.headers["X-LeadPilot-Delivery"]})
                status = outer.script.pop(0) if outer.script else 200
                self.send_response(status if valid else 401)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _endpoint(demo: Demo, events: list[str]) -> tuple[Receiver, uuid.UUID]:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    receiver = Receiver("")
    with tenant_session(scope) as session:
        hook, secret = webhooks.create_webhook(session=session, sub_account_id=demo.a, url=receiver.url,
                                               events=events)
        hook_id = hook.id
    receiver.secret = secret
    return receiver, hook_id


def _events(hook_id: uuid.UUID) -> list[OutboxEvent]:
    with owner_session() as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "webhook.deliver",
                                                              OutboxEvent.aggregate_id == hook_id)))


def test_a_signed_delivery_is_retried_after_a_500_and_logged(demo: Demo) -> None:
    receiver, hook_id = _endpoint(demo, ["contact.created"])
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    email = f"hook-{uuid.uuid4().hex[:6]}@example.com"
    with tenant_session(scope) as session:
        contact = crm.create_contact(session=session, sub_account_id=demo.a, fields={"email": email})
    (event,) = _events(hook_id)
    receiver.script = [500]
    assert webhooks.deliver(scope, event.id, 1) == webhooks.RETRY_DELAYS_S[0]  # the worker waits, then:
    assert webhooks.deliver(scope, event.id, 2) is None
    assert webhooks.deliver(scope, event.id, 3) is None  # a redelivered task: already done, nothing sent
    assert [s["valid"] for s in receiver.seen] == [True, True]
    assert receiver.seen[0]["delivery"] == receiver.seen[1]["delivery"]  # the same delivery id on the retry
    sent = receiver.seen[1]["event"]
    assert sent["type"] == "contact.created" and sent["data"]["contact_id"] == str(contact.id)
    assert sent["data"]["email"] == email
    with owner_session() as session:
        logs = session.scalars(select(WebhookLog).where(WebhookLog.webhook_id == hook_id)
                               .order_by(WebhookLog.attempt)).all()
        assert [(log.attempt, log.response_status, log.status) for log in logs] == [(1, 500, "retrying"),
                                                                                   (2, 200, "success")]
        assert logs[0].next_retry_at is not None and logs[1].response_time_ms is not None


def test_a_rollback_announces_nothing_and_unsubscribed_events_are_not_sent(demo: Demo) -> None:
    receiver, hook_id = _endpoint(demo, ["appointment.booked"])
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:  # not subscribed to contact.created
        crm.create_contact(session=session, sub_account_id=demo.a, fields={"email": f"x{uuid.uuid4().hex[:6]}@ex.com"})
    with pytest.raises(RuntimeError), tenant_session(scope) as session:
        webhooks.emit(session, demo.a, "appointment.booked", {"appointment_id": "nope"})
        raise RuntimeError("rolled back")
    assert _events(hook_id) == [] and receiver.seen == []


def test_an_endpoint_failing_again_and_again_is_disabled(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "MAX_CONSECUTIVE_FAILURES", 2)
    receiver, hook_id = _endpoint(demo, ["*"])
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    for _ in range(2):
        with tenant_session(scope) as session:
            webhooks.emit(session, demo.a, "invoice.paid", {"invoice_id": str(uuid.uuid4())})
    receiver.script = [503] * (2 * webhooks.MAX_ATTEMPTS)
    for event in _events(hook_id):
        for attempt in range(1, webhooks.MAX_ATTEMPTS + 1):
            webhooks.deliver(scope, event.id, attempt)
    with owner_session() as session:
        hook = session.get(Webhook, hook_id)
        assert (hook.is_active, hook.consecutive_failures) == (False, 2) and hook.disabled_at is not None
        failed = session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == hook_id)).all()
    assert {e.status for e in failed} == {"failed"} and len(receiver.seen) == 2 * webhooks.MAX_ATTEMPTS
    with tenant_session(scope) as session:  # disabled: nothing more is queued
        assert webhooks.emit(session, demo.a, "invoice.paid", {"invoice_id": "x"}) == 0
