"""A sub-account's outbound webhooks: endpoints, their delivery log, manual redelivery, re-enabling."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import Tenant, sub_account
from api.params import Limit
from models.activity import Webhook, WebhookLog
from services import webhooks

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}/webhooks", tags=["Webhooks"])
Manage = Annotated[Tenant, Depends(sub_account("settings.manage"))]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000)
    events: list[str] = Field(min_length=1, description=f"Any of {', '.join(webhooks.EVENTS)}, or *.")
    description: str | None = Field(None, max_length=500)


def _hook(h: Webhook) -> dict[str, Any]:
    return {"id": str(h.id), "url": h.url, "events": h.events, "description": h.description, "active": h.is_active,
            "consecutive_failures": h.consecutive_failures,
            "disabled_at": h.disabled_at.isoformat() if h.disabled_at else None}


@router.get("", summary="Endpoints")
def list_webhooks(t: Manage) -> list[dict[str, Any]]:
    with t.session() as s:
        return [_hook(h) for h in s.scalars(select(Webhook).where(Webhook.deleted_at.is_(None))
                                            .order_by(Webhook.created_at))]


@router.post("", status_code=201, summary="Add an endpoint (the signing secret is shown once)")
def create(t: Manage, body: WebhookIn) -> dict[str, Any]:
    """Deliveries are signed: `X-LeadPilot-Signature: sha256=HMAC_SHA256(secret, "<X-LeadPilot-Timestamp>.<body>")`."""
    with t.session() as s:
        hook, secret = webhooks.create_webhook(session=s, sub_account_id=t.sub_account_id, url=body.url,
                                               events=body.events, description=body.description)
        return {**_hook(hook), "secret": secret}


@router.post("/{webhook_id}/enable", summary="Re-enable an endpoint disabled after repeated failures")
def enable(t: Manage, webhook_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        hook = webhooks.get_webhook_or_raise(session=s, sub_account_id=t.sub_account_id, webhook_id=webhook_id)
        hook.is_active, hook.disabled_at, hook.consecutive_failures = True, None, 0
        return _hook(hook)


@router.delete("/{webhook_id}", status_code=204, summary="Remove an endpoint")
def delete(t: Manage, webhook_id: uuid.UUID) -> Response:
    from datetime import UTC, datetime

    with t.session() as s:
        hook = webhooks.get_webhook_or_raise(session=s, sub_account_id=t.sub_account_id, webhook_id=webhook_id)
        hook.deleted_at, hook.is_active = datetime.now(UTC), False
    return Response(status_code=204)


@router.get("/{webhook_id}/logs", summary="Delivery attempts, newest first")
def logs(t: Manage, webhook_id: uuid.UUID, limit: Limit = 100) -> list[dict[str, Any]]:
    with t.session() as s:
        webhooks.get_webhook_or_raise(session=s, sub_account_id=t.sub_account_id, webhook_id=webhook_id)
        rows = s.scalars(select(WebhookLog).where(WebhookLog.webhook_id == webhook_id)
                         .order_by(WebhookLog.created_at.desc()).limit(limit))
        return [{"delivery_id": str(r.delivery_id), "event_type": r.event_type, "attempt": r.attempt,
                 "status": r.status, "response_status": r.response_status, "response_time_ms": r.response_time_ms,
                 "error": r.error, "created_at": r.created_at.isoformat(),
                 "next_retry_at": r.next_retry_at.isoformat() if r.next_retry_at else None} for r in rows]


@router.post("/deliveries/{delivery_id}/redeliver", status_code=202, summary="Send a delivery again")
def redeliver(t: Manage, delivery_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return {"queued": str(webhooks.redeliver(session=s, delivery_id=delivery_id))}
