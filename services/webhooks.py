"""Outbound webhooks: a sub-account's endpoints subscribed to events (contact.created, message.received,
handoff.opened, appointment.booked, opportunity.won, ...).

`emit` runs inside the transaction of the change: one outbox row per subscribed endpoint, handed to the
`outbound` queue after the commit, so an event is never announced for a change that rolled back. `deliver`
POSTs the JSON body signed with HMAC-SHA256 over `"<timestamp>.<body>"` with the endpoint's secret:

    X-LeadPilot-Signature: sha256=<hex>     X-LeadPilot-Timestamp: <unix seconds>
    X-LeadPilot-Delivery: <delivery id>     X-LeadPilot-Event: <event type>

A receiver checks it with a few lines of standard library (see `verify`), rejecting old timestamps. Failures
(network, non-2xx) retry with backoff (every attempt a webhook_logs row with its status and time); after
MAX_CONSECUTIVE_FAILURES failed deliveries in a row the endpoint is disabled until someone enables it again.
A delivery can be sent again by hand (`redeliver`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.activity import Webhook, WebhookLog
from models.conversations import OutboxEvent
from models.db import TenantScope, after_commit, tenant_session
from models.tenancy import SubAccount
from services import outbox
from services.errors import InvalidInput, NotFound

EVENTS = ("contact.created", "contact.updated", "message.received", "handoff.opened", "appointment.booked",
          "appointment.cancelled", "opportunity.stage_changed", "opportunity.won", "invoice.paid",
          "form.submitted", "workflow.webhook")
MAX_ATTEMPTS = 5  # per delivery: then it is failed
RETRY_DELAYS_S = (10, 60, 300, 1800)
MAX_CONSECUTIVE_FAILURES = 10  # failed deliveries in a row disable the endpoint
TIMEOUT_S = 10.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_s: int = 300) -> bool:
    """What a receiver does (shown here for the docs and the tests): recompute, compare in constant time,
    refuse stale timestamps."""
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def get_webhook_or_raise(*, session: Session, sub_account_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook:
    """The sub-account's endpoint, or NotFound (another sub-account's id is not found either)."""
    hook = session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.sub_account_id == sub_account_id,
                                                Webhook.deleted_at.is_(None)))
    if hook is None:
        raise NotFound("No such webhook.")
    return hook


def create_webhook(*, session: Session, sub_account_id: uuid.UUID, url: str, events: list[str],
                   description: str | None = None) -> tuple[Webhook, str]:
    """A new endpoint and its signing secret (returned once)."""
    if not url.startswith(("https://", "http://")):
        raise InvalidInput("The URL must start with https:// (or http:// for local testing).", field="url")
    unknown = sorted(set(events) - set(EVENTS) - {"*"})
    if unknown or not events:
        raise InvalidInput(f"Unknown events: {', '.join(unknown)}." if unknown else "Subscribe to some events.",
                           field="events")
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = Webhook(sub_account_id=sub_account_id, url=url, events=sorted(set(events)), secret=secret,
                   description=description)
    session.add(hook)
    session.flush()
    return hook, secret


def emit(session: Session, sub_account_id: uuid.UUID, event_type: str, data: dict[str, Any]) -> int:
    """Queue `event_type` for every active endpoint of the sub-account subscribed to it (in this transaction;
    handed to workers after the commit). Returns how many deliveries were queued."""
    return emit_many(session, sub_account_id, event_type, [data])


def emit_many(session: Session, sub_account_id: uuid.UUID, event_type: str, datas: list[dict[str, Any]]) -> int:
    """`emit` for several events of one type at once (a batch of inbound messages): the endpoints are looked up
    once. Returns how many deliveries were queued."""
    assert event_type in EVENTS, event_type
    from services.subscribers import listening

    if not datas or not listening(session, "webhooks", sub_account_id):
        return 0
    hooks = session.scalars(select(Webhook).where(Webhook.sub_account_id == sub_account_id, Webhook.is_active,
                                                  Webhook.deleted_at.is_(None))).all()
    targets = [h for h in hooks if event_type in (h.events or []) or "*" in (h.events or [])]
    if not targets:
        return 0
    now = datetime.now(UTC)
    agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == sub_account_id))
    queued = []
    for data in datas:
        body = {"type": event_type, "created_at": now.isoformat(), "sub_account_id": str(sub_account_id),
                "data": data}
        for hook in targets:
            delivery = uuid.uuid4()
            event_id = session.execute(pg_insert(OutboxEvent).values(
                sub_account_id=sub_account_id, topic="webhook.deliver", aggregate_type="webhook",
                aggregate_id=hook.id, available_at=now, status="dispatched", dispatched_at=now, attempts=1,
                dedupe_key=f"webhook:{delivery}",
                payload={"webhook_id": str(hook.id), "delivery_id": str(delivery),
                         "event": {**body, "id": str(delivery)}},
            ).returning(OutboxEvent.id)).scalar_one()
            queued.append(event_id)

    def hand_over() -> None:
        from workers.tasks import deliver_webhook

        for event_id in queued:
            deliver_webhook.apply_async(args=[str(event_id), str(agency_id), str(sub_account_id), 1])

    after_commit(session, outbox.handing_over(queued, hand_over))
    return len(queued)


def deliver(scope: TenantScope, event_id: uuid.UUID, attempt: int, *,
            client: httpx.Client | None = None) -> float | None:
    """One attempt at one delivery; returns the seconds until the next attempt, or None when it is over
    (delivered, failed for good, or the endpoint is gone or disabled)."""
    with tenant_session(scope) as session:
        event = session.get(OutboxEvent, event_id)
        hook = session.get(Webhook, uuid.UUID(event.payload["webhook_id"])) if event else None
        if event is None or event.status == "done" or hook is None or not hook.is_active or hook.deleted_at:
            return None
        payload, delivery_id = event.payload["event"], uuid.UUID(event.payload["delivery_id"])
        url, secret, hook_id = hook.url, hook.secret, hook.id
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": "LeadPilot-Webhooks/1",
               "X-LeadPilot-Signature": sign(secret, timestamp, body), "X-LeadPilot-Timestamp": str(timestamp),
               "X-LeadPilot-Delivery": str(delivery_id), "X-LeadPilot-Event": payload["type"]}
    started = time.perf_counter()
    status, text, error = None, None, None
    try:
        if client is not None:
            response = client.post(url, content=body, headers=headers)
        else:
            with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as own:
                response = own.post(url, content=body, headers=headers)
        status, text = response.status_code, response.text[:2000]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
    elapsed = int((time.perf_counter() - started) * 1000)
    ok = status is not None and 200 <= status < 300
    last = attempt >= MAX_ATTEMPTS
    retry_in = None if ok or last else RETRY_DELAYS_S[min(attempt - 1, len(RETRY_DELAYS_S) - 1)]
    with tenant_session(scope) as session:
        session.add(WebhookLog(
            sub_account_id=scope.sub_account_id, webhook_id=hook_id,
            delivery_id=delivery_id, event_type=payload["type"], payload=payload, attempt=attempt,
            response_status=status, response_time_ms=elapsed, response_body=text,
            status="success" if ok else ("failed" if last else "retrying"),
            error=error or (None if ok else f"HTTP {status}"),
            next_retry_at=datetime.now(UTC) + timedelta(seconds=retry_in) if retry_in else None))
        hook = session.get(Webhook, hook_id, with_for_update=True)
        event = session.get(OutboxEvent, event_id)
        assert hook is not None and event is not None
        if ok:
            hook.consecutive_failures = 0
            event.status, event.done_at = "done", datetime.now(UTC)
        elif last:
            hook.consecutive_failures += 1
            event.status, event.last_error = "failed", error or f"HTTP {status}"
            if hook.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                hook.is_active, hook.disabled_at = False, datetime.now(UTC)
        else:
            event.last_error, event.dispatched_at = error or f"HTTP {status}", datetime.now(UTC)
    return retry_in


def redeliver(*, session: Session, delivery_id: uuid.UUID) -> uuid.UUID:
    """Send a past delivery again by hand (a new outbox row with the same delivery id and body)."""
    original = session.scalar(select(OutboxEvent).where(OutboxEvent.topic == "webhook.deliver",
                                                        OutboxEvent.payload["delivery_id"].astext == str(delivery_id)))
    if original is None:
        raise NotFound("No such delivery.")
    now = datetime.now(UTC)
    event = OutboxEvent(sub_account_id=original.sub_account_id, topic="webhook.deliver", aggregate_type="webhook",
                        aggregate_id=original.aggregate_id, available_at=now, status="dispatched", dispatched_at=now,
                        attempts=1, dedupe_key=f"webhook:{delivery_id}:manual:{uuid.uuid4().hex[:8]}",
                        payload=dict(original.payload))
    session.add(event)
    session.flush()
    agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == original.sub_account_id))
    event_id, sub_account_id = event.id, original.sub_account_id

    def hand_over() -> None:
        from workers.tasks import deliver_webhook

        deliver_webhook.apply_async(args=[str(event_id), str(agency_id), str(sub_account_id), 1])

    after_commit(session, outbox.handing_over([event_id], hand_over))
    return event_id
