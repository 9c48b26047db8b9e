"""`leadpilot sms send` and `leadpilot stripe event`: a request signed exactly as Twilio or Stripe signs it,
posted to the running API (PUBLIC_BASE_URL), with what comes back. For trying the product locally: with the
embedded default, `leadpilot run` verifies them with the development secrets in the state folder."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from leadpilot import dev_secrets
from leadpilot.settings import get_settings

sms_app = typer.Typer(help="Text the running API as Twilio would.", no_args_is_help=True)
stripe_app = typer.Typer(help="Send the running API a Stripe event as Stripe would.", no_args_is_help=True)
console = Console()
POLL_S = 0.2


def _post(path: str, **kwargs: Any) -> httpx.Response:
    url = get_settings().public_base_url.rstrip("/") + path
    try:
        return httpx.post(url, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach the API at {url} ({exc}); is `leadpilot run` running?[/red]")
        raise typer.Exit(1) from exc


def _refused(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    console.print(f"[red]{response.status_code}: {detail}[/red]")
    raise typer.Exit(1)


def _sms_channel(to: str | None) -> tuple[str, str | None]:
    """The number texted (the first demo SMS channel by default) and its own auth token, if it has one."""
    from sqlalchemy import select

    from models.conversations import Channel
    from models.db import owner_session

    query = select(Channel.address, Channel.config).where(Channel.channel_type == "sms", Channel.is_active,
                                                           Channel.deleted_at.is_(None))
    with owner_session() as session:
        found = session.execute(query.where(Channel.address == to) if to else
                                query.order_by(Channel.created_at, Channel.address).limit(1)).first()
    if found is None:
        raise typer.BadParameter(f"no active SMS channel {to or 'at all'}", param_hint="--to")
    return found[0], (found[1] or {}).get("auth_token")


def _replies(sid: str, deadline: float) -> list[tuple[str, str]]:
    """What the business answered the text with (sender type, body), waited for until `deadline`."""
    from sqlalchemy import select

    from models.conversations import Message
    from models.db import owner_session

    while True:
        with owner_session() as session:
            inbound = session.execute(select(Message.conversation_id, Message.created_at).where(
                Message.provider_message_id == sid, Message.direction == "inbound")).first()
            if inbound is not None:
                rows = session.execute(select(Message.sender_type, Message.body).where(
                    Message.conversation_id == inbound.conversation_id, Message.direction == "outbound",
                    Message.created_at >= inbound.created_at).order_by(Message.created_at)).all()
                if rows:
                    return [(r.sender_type, r.body) for r in rows]
        if time.monotonic() >= deadline:
            return []
        time.sleep(POLL_S)  # the reply is written by a worker in another process: nothing to wait on but the row


@sms_app.command("send")
def sms_send(
    text: Annotated[str, typer.Argument(help="What the lead writes.")],
    from_: Annotated[str, typer.Option("--from", help="The lead's phone number, E.164 (+1555...).")],
    to: Annotated[str | None, typer.Option(help="A business's SMS number (default: the first demo channel).")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the agent's reply (0: do not wait).")] = 30.0,
) -> None:
    """Post an inbound SMS signed with Twilio's RequestValidator, then print the agent's reply."""
    from twilio.request_validator import RequestValidator

    settings = get_settings()
    number, channel_token = _sms_channel(to)
    token = channel_token or dev_secrets.signing_secrets(settings)["twilio_auth_token"]
    if not token:
        raise typer.BadParameter("no Twilio auth token to sign with: set TWILIO_AUTH_TOKEN, or start the API with "
                                 "`leadpilot run` (it makes a development one)")
    sid = f"SM{uuid.uuid4().hex}"
    form = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": f"AC{'0' * 32}",
            "From": from_, "To": number, "Body": text, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
            "ApiVersion": "2010-04-01"}
    url = settings.public_base_url.rstrip("/") + "/webhooks/twilio/sms"
    signature = RequestValidator(token).compute_signature(url, form)
    response = _post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    _refused(response)
    console.print(f"[green]{from_} -> {number}[/green]: {text}  ({sid}, stored)")
    if wait <= 0:
        return
    with console.status("waiting for the reply..."):
        replies = _replies(sid, time.monotonic() + wait)
    if not replies:
        console.print(f"[yellow]no reply within {wait:g} s (is a worker running? `leadpilot run` starts one; a "
                      "conversation handed to a person is answered from the inbox)[/yellow]")
        raise typer.Exit(2)
    for sender, body in replies:
        console.print(f"[cyan]{number} -> {from_}[/cyan] ({sender}): {body}")


def _object(kind: str, *, amount: int, currency: str, email: str | None, metadata: dict[str, str],
            payment_intent: str) -> dict[str, Any]:
    """A data.object of the kind, with the fields Stripe sends that LeadPilot reads."""
    charge = f"ch_{uuid.uuid4().hex[:24]}"
    if kind == "payment_intent.succeeded":
        return {"id": payment_intent, "object": "payment_intent", "amount": amount, "amount_received": amount,
                "currency": currency, "receipt_email": email, "status": "succeeded", "metadata": metadata}
    if kind == "charge.succeeded":
        return {"id": charge, "object": "charge", "payment_intent": payment_intent, "amount": amount,
                "amount_captured": amount, "captured": True, "paid": True, "currency": currency,
                "billing_details": {"email": email, "name": None}, "metadata": metadata}
    if kind == "charge.refunded":
        return {"id": charge, "object": "charge", "payment_intent": payment_intent, "amount": amount,
                "amount_refunded": amount, "refunded": True, "currency": currency,
                "billing_details": {"email": email}, "metadata": metadata}
    if kind == "checkout.session.completed":
        return {"id": f"cs_test_{uuid.uuid4().hex[:24]}", "object": "checkout.session", "mode": "payment",
                "payment_intent": payment_intent, "payment_status": "paid", "amount_total": amount,
                "currency": currency, "customer_details": {"email": email, "name": None}, "metadata": metadata}
    return {"id": f"obj_{uuid.uuid4().hex[:24]}", "metadata": metadata}


def _sub_account_id(slug: str) -> str:
    from sqlalchemy import select

    from models.db import owner_session
    from models.tenancy import SubAccount

    with owner_session() as session:
        found = session.scalar(select(SubAccount.id).where(SubAccount.slug == slug))
    if found is None:
        raise typer.BadParameter(f"no sub-account {slug}", param_hint="--sub-account")
    return str(found)


def stripe_signature(payload: str, secret: str, timestamp: int) -> str:
    """Stripe's `Stripe-Signature` header: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@stripe_app.command("event")
def stripe_event(
    kind: Annotated[str, typer.Argument(help="The event type, e.g. payment_intent.succeeded, charge.refunded.")],
    account: Annotated[str | None, typer.Option(help="A connected account (acct_...): a Connect event.")] = None,
    amount: Annotated[int, typer.Option(help="In the currency's minor unit (cents).")] = 2500,
    currency: Annotated[str, typer.Option()] = "usd",
    email: Annotated[str | None, typer.Option(help="The buyer's email.")] = None,
    sub_account: Annotated[str | None, typer.Option(help="Name this sub-account (slug) in the metadata.")] = None,
    payment_intent: Annotated[str | None, typer.Option(help="Reuse a PaymentIntent id (pi_...).")] = None,
) -> None:
    """Post a Stripe event signed as Stripe signs it (t=...,v1=... HMAC-SHA256) and print the API's answer."""
    secret = dev_secrets.signing_secrets(get_settings())["stripe_webhook_secret"]
    if not secret:
        raise typer.BadParameter("no Stripe webhook secret to sign with: set STRIPE_WEBHOOK_SECRET, or start the "
                                 "API with `leadpilot run` (it makes a development one)")
    metadata = {"sub_account_id": _sub_account_id(sub_account)} if sub_account else {}
    now = int(time.time())
    event: dict[str, Any] = {
        "id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2024-06-20", "created": now,
        "livemode": False, "type": kind, "pending_webhooks": 1,
        "data": {"object": _object(kind, amount=amount, currency=currency.lower(), email=email, metadata=metadata,
                                   payment_intent=payment_intent or f"pi_{uuid.uuid4().hex[:24]}")}}
    if account:
        event["account"] = account
    payload = json.dumps(event)
    response = _post("/webhooks/stripe", content=payload,
                     headers={"Stripe-Signature": stripe_signature(payload, secret, now),
                              "Content-Type": "application/json"})
    console.print(f"{kind} {event['id']} -> {response.status_code}")
    _refused(response)
    console.print_json(response.text)
