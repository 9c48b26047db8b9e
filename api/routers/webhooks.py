"""Provider webhooks. A request with a bad signature is refused before anything is stored."""

from __future__ import annotations

import json

import stripe
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.problems import problem
from leadpilot.settings import get_settings
from services.stripe_events import handle_event

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
STRIPE_TOLERANCE_S = 300


@router.post("/stripe", summary="Stripe events (signature verified with the Stripe SDK, each event applied once)")
async def stripe_webhook(request: Request) -> JSONResponse:
    """Verify `Stripe-Signature` (5-minute tolerance), then record and apply the event exactly once."""
    secret = get_settings().stripe_webhook_secret
    if not secret:
        return problem(503, "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
    payload = await request.body()
    try:
        stripe.Webhook.construct_event(payload, request.headers.get("stripe-signature"), secret,
                                       tolerance=STRIPE_TOLERANCE_S)
    except (ValueError, stripe.SignatureVerificationError):
        return problem(400, "The Stripe signature or payload is invalid.", title="Invalid webhook")
    result = await run_in_threadpool(handle_event, json.loads(payload))
    return JSONResponse(result)
