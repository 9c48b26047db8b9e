"""Whop webhooks: payments and refunds of a Whop company become financial_records of the sub-account its
integration belongs to, attributed to a campaign through the buyer's contact.

What Whop documents (https://docs.whop.com/developer/guides/webhooks for the v1 webhooks; the payloads at
https://docs.whop.com/api-reference/payments/payment, https://docs.whop.com/api-reference/refunds/refund and
https://docs.whop.com/api-reference/refunds/refund-created; the same shapes in whopio/whopsdk-python's
`PaymentSucceededWebhookEvent` and `RefundCreatedWebhookEvent`):
- Signing follows the Standard Webhooks spec. Headers `webhook-id` (msg_..., the same on every retry of one
  delivery), `webhook-timestamp` (Unix seconds) and `webhook-signature` ("v1,<base64 HMAC-SHA256>", several
  space-separated while a secret rotates), computed over "{webhook-id}.{webhook-timestamp}.{raw body}".
- The key: Whop tells SDK users to pass `webhookKey: btoa(WHOP_WEBHOOK_SECRET)`, so the HMAC key is the bytes of the
  secret string the dashboard shows (`ws_...`) and not a base64 decoding of it. A secret stored in the generic
  Standard Webhooks form `whsec_<base64>` is decoded as that spec says.
- The envelope: {"id": "msg_...", "api_version": "v1", "type": ..., "timestamp": ISO 8601, "data": {...},
  "company_id": "biz_..."} (webhooks pinned to an api_version_date from 2026-08-14 on say `account_id`).
- `payment.succeeded`: data is a Payment: `id` (pay_...), `total` / `subtotal` / `usd_total` as DECIMAL amounts of
  the currency (10.43 for $10.43: not cents), `currency` lower-case ("usd"), `paid_at`, `created_at`, and `user`
  {id, username, name, email}; the email is null unless the webhook has the member:email:read permission.
- Refunds: `refund.created` and `refund.updated` (v1 has no payment.refunded). data is a Refund: `id` (rf_...),
  `amount` (decimal), `currency`, `status` (pending | requires_action | succeeded | failed | canceled),
  `created_at`, and the `payment` it reverses {id, user {email, ...}}. A partial refund is a Refund of its own.

Here: `POST /webhooks/whop/{integration_id}`, one URL per integration (Integration.provider_name 'whop', its signing
secret Fernet-encrypted in credentials_encrypted as {"webhook_secret": ...}); the webhook must be created on API
version v1 (older versions were signed another way and are refused). A delivery is verified (5 minutes' tolerance)
before anything is stored, recorded once per integration and webhook-id in provider_events, then applied under the
sub-account's scope: a payment becomes a `payment` record `whop:{payment id}` (the `total`, in its currency), a
refund a `refund` record `whop:{refund id}` (paid once succeeded, pending before, failed when it fails). The buyer is
matched by email in the sub-account, or created with source 'whop' as GoHighLevel files a new buyer; the record is
attributed to the contact's campaign, and a refund to the campaign its payment was attributed to.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from models.activity import Integration
from models.db import TenantScope, owner_session, tenant_session
from models.payments import ProviderEvent
from models.performance import FinancialRecord
from services.errors import DomainError, NotConfigured, NotFound
from services.payment_records import CENT, buyer_contact, record_money
from services.secrets import decrypt

HANDLED = ("payment.succeeded", "refund.created", "refund.updated")
# Whop's refund status -> financial_records.payment_status (reports count `paid` rows only)
REFUND_STATUS = {"succeeded": "paid", "pending": "pending", "requires_action": "pending", "failed": "failed",
                 "canceled": "failed"}


class InvalidWebhook(DomainError):
    """A delivery whose signature, timestamp or payload does not hold up: refused, nothing stored."""

    status = 400
    title = "Invalid webhook"


@dataclass(frozen=True)
class WhopIntegration:
    """A live Whop integration bound to a sub-account, with its signing secret."""

    id: uuid.UUID
    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    secret: str


def integration_or_raise(*, integration_id: str) -> WhopIntegration:
    """The active Whop integration at this address (owner session: no tenant is known yet), or NotFound;
    NotConfigured when it has no signing secret this install can read."""
    try:
        wanted = uuid.UUID(integration_id)
    except ValueError as exc:
        raise NotFound("No active Whop integration at this address.") from exc
    with owner_session() as session:
        row = session.scalars(select(Integration).where(
            Integration.id == wanted, Integration.provider_name == "whop", Integration.is_active,
            Integration.deleted_at.is_(None), Integration.sub_account_id.is_not(None))).first()
        if row is None or row.sub_account_id is None:
            raise NotFound("No active Whop integration at this address.")
        try:
            secret = decrypt(row.credentials_encrypted).get("webhook_secret")
        except ValueError:
            secret = None
        if not secret:
            raise NotConfigured("This Whop integration has no webhook secret.")
        return WhopIntegration(row.id, row.agency_id, row.sub_account_id, str(secret))


def signing_key(secret: str) -> str | bytes:
    """The key as `standardwebhooks.Webhook` takes it: `whsec_<base64>` as is (it decodes that), Whop's plain
    secret as its own bytes (what Whop's `btoa(secret)` amounts to)."""
    return secret if secret.startswith("whsec_") else secret.encode()


def verify(*, secret: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The event, once its Standard Webhooks signature and timestamp (5 minutes either way) hold; else
    InvalidWebhook."""
    try:
        event = Webhook(signing_key(secret)).verify(body, dict(headers))
    except (WebhookVerificationError, ValueError) as exc:  # ValueError: malformed header, base64, UTF-8 or JSON
        raise InvalidWebhook("The Whop signature, timestamp or payload is invalid.") from exc
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict) or not isinstance(event.get("type"), str):
        raise InvalidWebhook("A Whop event has a type and a data object.")
    return event


def receive(*, integration_id: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Check the integration and the signature, then record the delivery once and apply it."""
    integration = integration_or_raise(integration_id=integration_id)
    lowered = {k.lower(): v for k, v in headers.items()}
    event = verify(secret=integration.secret, body=body, headers=lowered)
    return handle_event(integration=integration, webhook_id=lowered["webhook-id"], event=event)


def handle_event(*, integration: WhopIntegration, webhook_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Record a verified delivery once, apply it under the sub-account's scope; raise to make Whop retry."""
    # per integration: one Whop message sent to two of our integrations (two sub-accounts) counts in each
    event_id = f"{integration.id}:{webhook_id}"
    with owner_session() as session:
        session.execute(pg_insert(ProviderEvent).values(
            provider="whop", event_id=event_id, event_type=event["type"][:255],
            sub_account_id=integration.sub_account_id, payload=event).on_conflict_do_nothing())
        record = session.scalars(select(ProviderEvent).where(ProviderEvent.provider == "whop",
                                                             ProviderEvent.event_id == event_id)
                                 .with_for_update()).one()
        if record.status in ("processed", "ignored"):
            return {"event": webhook_id, "status": record.status, "duplicate": True}
        record.attempts += 1
        if event["type"] not in HANDLED:
            record.status, record.processed_at = "ignored", datetime.now(UTC)
            return {"event": webhook_id, "status": "ignored"}
        try:
            scope = TenantScope(agency_id=integration.agency_id, sub_account_id=integration.sub_account_id)
            with tenant_session(scope) as tenant:
                outcome = apply_event(session=tenant, integration=integration, event=event)
        except Exception as exc:
            record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            raise
        record.status, record.processed_at, record.error = outcome, datetime.now(UTC), None
        return {"event": webhook_id, "status": outcome}


def apply_event(*, session: Session, integration: WhopIntegration, event: dict[str, Any]) -> str:
    """Apply one verified event inside the sub-account's session; returns 'processed' or 'ignored'."""
    data = event["data"]
    if not data.get("id"):
        return "ignored"
    if event["type"] == "payment.succeeded":
        return _payment(session, integration, data, event.get("timestamp"))
    return _refund(session, integration, data, event.get("timestamp"))


def _decimal(value: Any) -> Decimal | None:
    """A Whop amount (a JSON number of the currency's units) as Decimal cents, via its shortest text form so 6.9
    stays 6.90; None when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        return None


def _money(data: dict[str, Any], field: str) -> tuple[Decimal | None, str]:
    """The amount in `field` and its ISO currency; Whop also settles in codes that are not ISO 4217 (crypto), whose
    payments count by their `usd_total` in USD."""
    currency = str(data.get("currency") or "usd")
    if len(currency) == 3 and currency.isalpha():
        return _decimal(data.get(field)), currency.upper()
    return _decimal(data.get("usd_total")), "USD"


def _when(*values: Any) -> datetime:
    """The first of these timestamps that parses (ISO 8601 or Unix seconds), in UTC; now when none does."""
    for value in values:
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.fromtimestamp(value, UTC)
            if isinstance(value, str) and value:
                parsed = datetime.fromisoformat(value)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (ValueError, OverflowError, OSError):
            continue
    return datetime.now(UTC)


def _payment(session: Session, integration: WhopIntegration, data: dict[str, Any], sent_at: Any) -> str:
    """A paid Whop payment: one `payment` record per payment id, attributed through the buyer's contact."""
    amount, currency = _money(data, "total")
    if amount is None:
        amount, currency = _money(data, "subtotal")
    if amount is None or amount <= 0:
        return "ignored"  # free checkouts are not revenue
    user = data.get("user") or {}
    contact = buyer_contact(session, sub_account_id=integration.sub_account_id, email=user.get("email"),
                            name=user.get("name"), source="whop")
    record_money(session, sub_account_id=integration.sub_account_id, integration_id=integration.id, kind="payment",
                 amount=amount, reference=f"whop:{data['id']}", when=_when(data.get("paid_at"), data.get("created_at"),
                                                                          sent_at),
                 contact_id=contact.id if contact else None, campaign_id=contact.campaign_id if contact else None,
                 currency=currency, metadata={"provider": "whop", "payment": data["id"], "user": user.get("id"),
                                              "product": (data.get("product") or {}).get("id"),
                                              "membership": (data.get("membership") or {}).get("id")})
    return "processed"


def _refund(session: Session, integration: WhopIntegration, data: dict[str, Any], sent_at: Any) -> str:
    """A Whop refund (created or updated): its own `refund` record, its status following Whop's."""
    amount, currency = _money(data, "amount")
    if amount is None or amount <= 0:
        return "ignored"
    payment = data.get("payment") or {}
    paid = session.scalars(select(FinancialRecord).where(
        FinancialRecord.sub_account_id == integration.sub_account_id, FinancialRecord.transaction_type == "payment",
        FinancialRecord.reference_number == f"whop:{payment.get('id')}")).first() if payment.get("id") else None
    if paid is not None:
        contact_id, campaign_id = paid.contact_id, paid.campaign_id
    else:  # the payment predates the integration: attribute by the buyer, never invent one for a refund
        contact = buyer_contact(session, sub_account_id=integration.sub_account_id,
                                email=(payment.get("user") or {}).get("email"), source="whop", create=False)
        contact_id, campaign_id = (contact.id, contact.campaign_id) if contact else (None, None)
    record_money(session, sub_account_id=integration.sub_account_id, integration_id=integration.id, kind="refund",
                 amount=amount, reference=f"whop:{data['id']}", when=_when(data.get("created_at"), sent_at),
                 contact_id=contact_id, campaign_id=campaign_id, currency=currency,
                 status=REFUND_STATUS.get(str(data.get("status")), "pending"),
                 metadata={"provider": "whop", "refund": data["id"], "payment": payment.get("id")})
    return "processed"
