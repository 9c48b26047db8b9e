"""Provider webhooks. A request with a bad signature is refused before anything is stored."""

from __future__ import annotations

from urllib.parse import parse_qsl

import stripe
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.problems import problem
from leadpilot.settings import get_settings
from services.errors import Forbidden, InvalidInput, TooLarge
from services.stripe_events import handle_event, parse_event
from services.whop_events import receive as receive_whop

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
STRIPE_TOLERANCE_S = 300
# Stripe's events carry one object with its lists cut short (ten line items): far below this
STRIPE_MAX_BYTES = 1024 * 1024
FORM_FRAMING_BYTES = 1024 * 1024  # an inbound email post: the mail's parts plus multipart framing and fields


@router.post("/stripe", summary="Stripe events (signature verified with the Stripe SDK, each event applied once)")
async def stripe_webhook(request: Request) -> JSONResponse:
    """Verify `Stripe-Signature` (5-minute tolerance), then record and apply the event exactly once. A signed
    event not in Stripe's shape is a 400 and stores nothing; one whose sub-account cannot be told yet is a 503
    that Stripe retries (kept retryable here, never stored as ignored)."""
    secret = get_settings().stripe_signing_secret
    if not secret:
        return problem(503, "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
    payload = await capped_body(request, STRIPE_MAX_BYTES, "A Stripe event")
    try:
        stripe.WebhookSignature.verify_header(payload, request.headers.get("stripe-signature"), secret,
                                              tolerance=STRIPE_TOLERANCE_S)
    except stripe.SignatureVerificationError:
        return problem(400, "The Stripe signature or payload is invalid.", title="Invalid webhook")
    result = await run_in_threadpool(handle_event, parse_event(payload))
    return JSONResponse(result)


@router.post("/whop/{integration_id}",
             summary="Whop events of one integration (Standard Webhooks signature, each delivery applied once)")
async def whop_webhook(integration_id: str, request: Request) -> JSONResponse:
    """Verified with that integration's own signing secret (5-minute tolerance) before anything is stored: a bad
    signature or stale timestamp is a 400, an unknown or inactive integration a 404. A redelivered webhook-id
    changes nothing."""
    payload = await request.body()
    result = await run_in_threadpool(receive_whop, integration_id=integration_id, body=payload,
                                     headers=request.headers)
    return JSONResponse(result)


async def capped_body(request: Request, limit: int, what: str) -> bytes:
    """The raw body, refused (413) past `limit` bytes without holding more of it; kept on the request, so
    `request.form()` parses it from memory afterwards. The app's input guard (api/guard.py) caps /webhooks/ bodies
    too, more loosely, and spares them its NUL checks: the channels drop what Postgres cannot store."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{what} larger than {limit:,} bytes is not one we take.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{what} larger than {limit:,} bytes is not one we take.")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's own cache of the body: form parsing reads it instead of the spent stream
    return body


async def _twilio_form(request: Request) -> dict[str, str]:
    """Twilio posts application/x-www-form-urlencoded: parsed straight from the body (the multipart machinery
    of `request.form()` costs more than the rest of the parsing on the hot path)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise InvalidInput("Twilio webhooks are form-encoded (application/x-www-form-urlencoded).")
    from channels.sms import MAX_FORM_BYTES, TwilioParams

    body = await capped_body(request, MAX_FORM_BYTES, "A Twilio webhook")
    return TwilioParams(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@router.post("/twilio/sms", summary="Inbound SMS from Twilio (signature verified with Twilio's RequestValidator)")
async def twilio_sms(request: Request) -> Response:
    """Form-encoded, as Twilio posts it. The signature is checked against PUBLIC_BASE_URL + path (what Twilio
    called, also behind a proxy); a bad one is a 403 and nothing is stored. A retried MessageSid stores nothing
    new. The reply comes later, from the agent, through the outbound path; the webhook answers empty TwiML."""
    from channels.sms import receive_async

    form = await _twilio_form(request)
    url = get_settings().public_base_url.rstrip("/") + request.url.path
    await receive_async(url, form, request.headers.get("x-twilio-signature"))
    return Response(TWIML_EMPTY, media_type="application/xml")


@router.post("/twilio/status", summary="Twilio delivery status callbacks (verified, applied in order)")
async def twilio_status(request: Request) -> Response:
    """Any of Twilio's MessageStatus values for an outbound message, by MessageSid: verified first (403 for
    anything unsigned, whether or not the message exists); the ones that say something move it forward."""
    from channels.sms import status_callback

    form = await _twilio_form(request)
    url = get_settings().public_base_url.rstrip("/") + request.url.path
    await run_in_threadpool(status_callback, url, form, request.headers.get("x-twilio-signature"))
    return Response(status_code=204)


def _email_token(request: Request) -> str | None:
    """The channel's inbound secret, as `?token=` (what SendGrid's parse URL can carry) or a bearer token."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query_params.get("token")


@router.post("/email/inbound", summary="Inbound email from SendGrid's Inbound Parse (multipart, parsed or raw)")
async def email_inbound(request: Request) -> JSONResponse:
    """Authenticated by the channel's `inbound_secret` (`?token=` or a bearer token): the post is unsigned, so a
    missing or wrong token is a 403 and nothing is stored. A retried Message-ID stores nothing new; the
    attachments are recorded by name, type and size, their bytes are not kept."""
    from starlette.datastructures import UploadFile

    from channels.email import MAX_RAW_BYTES, NOT_VERIFIED, receive_parse

    token = _email_token(request)
    if not token:  # before reading a body of up to 40 MB for nobody
        raise Forbidden(NOT_VERIFIED)
    await capped_body(request, MAX_RAW_BYTES + FORM_FRAMING_BYTES, "An inbound email post")
    fields: dict[str, str] = {}
    attachments: list[dict[str, object]] = []
    async with request.form(max_part_size=MAX_RAW_BYTES) as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                size = len(await value.read())
                attachments.append({"field": key, "filename": value.filename, "content_type": value.content_type,
                                    "size": size})
            else:
                fields[key] = value
    received = await run_in_threadpool(receive_parse, fields, attachments, token=token)
    return JSONResponse(received.as_json())


@router.post("/email/mime", summary="Inbound email as raw RFC 822 (any relay that can forward the message)")
async def email_mime(request: Request, to: str | None = None) -> JSONResponse:
    """The whole message as the body (message/rfc822 or text/plain); `?to=` names the envelope recipient when it
    is not in the headers (Bcc, forwarding). Authenticated like the SendGrid route."""
    from channels.email import MAX_RAW_BYTES, NOT_VERIFIED, receive_mime

    token = _email_token(request)
    if not token:
        raise Forbidden(NOT_VERIFIED)
    raw = await capped_body(request, MAX_RAW_BYTES, "An email")
    received = await run_in_threadpool(receive_mime, raw, to_address=to, token=token)
    return JSONResponse(received.as_json())
