"""Webchat: the widget on a business's site talks to the API over one websocket. A visitor session is a
signed token (kept in the browser's localStorage) naming the widget's channel, the contact and the
conversation, so a reload resumes the same conversation and its transcript. An optional pre-chat form
(name, email) creates or matches the contact; without it the visitor is an anonymous contact."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from channels import inbound, realtime
from leadpilot.settings import get_settings
from models.conversations import Channel, Conversation, Message
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import SubAccount
from services import crm
from services.errors import Forbidden, InvalidInput, NotFound
from services.storable import unstorable

MAX_BODY = 4000
MAX_KEY = 255  # channels.address
TRANSCRIPT_LIMIT = 200


@dataclass(frozen=True)
class Widget:
    """A webchat channel as its public key reaches it, before any visitor is known."""

    channel_id: uuid.UUID
    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    business: str
    config: dict[str, Any]

    @property
    def scope(self) -> TenantScope:
        return TenantScope(agency_id=self.agency_id, sub_account_id=self.sub_account_id)

    def public(self) -> dict[str, Any]:
        """What the widget may show before the chat starts."""
        prechat = self.config.get("prechat") or {}
        return {"business": self.business, "color": self.config.get("color") or "#2563eb",
                "greeting": self.config.get("greeting") or f"Hi! Ask {self.business} anything.",
                "prechat": {"enabled": bool(prechat.get("enabled")),
                            "fields": prechat.get("fields") or ["name", "email"],
                            "required": prechat.get("required") or []}}


@dataclass(frozen=True)
class Visitor:
    """A resumed visitor session."""

    widget: Widget
    contact_id: uuid.UUID
    conversation_id: uuid.UUID


def widget(key: str) -> Widget:
    """The active webchat channel with this public key (404 for an unknown or disabled widget)."""
    if unstorable(key) or len(key) > MAX_KEY:  # no channel has such an address: nothing to ask the database
        raise NotFound("No such chat widget.")
    with owner_session() as session:  # before any tenant is known: one lookup by the public key
        found = session.execute(select(Channel, SubAccount).join(SubAccount, SubAccount.id == Channel.sub_account_id)
                                .where(Channel.channel_type == "webchat", Channel.address == key, Channel.is_active,
                                       Channel.deleted_at.is_(None))).first()
    if found is None:
        raise NotFound("No such chat widget.")
    channel, sub = found
    return Widget(channel.id, sub.agency_id, sub.id, sub.name, dict(channel.config or {}))


def _sign(payload: dict[str, str]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    mac = hmac.new(get_settings().secret_key.encode(), f"webchat.{body}".encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _unsign(token: str) -> dict[str, str]:
    body, _, mac = token.partition(".")
    if not (body.isascii() and mac.isascii()):  # compare_digest takes ASCII text only; a real token is ASCII
        raise Forbidden("This chat session is not valid.")
    expected = hmac.new(get_settings().secret_key.encode(), f"webchat.{body}".encode(), hashlib.sha256).hexdigest()
    if not mac or not hmac.compare_digest(mac, expected):
        raise Forbidden("This chat session is not valid.")
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def start(key: str, *, name: str | None = None, email: str | None = None) -> tuple[str, Visitor]:
    """A new visitor session: the pre-chat answers create or match the contact, and a new conversation opens
    (with the sub-account's webchat agent attached). Returns the token the browser keeps."""
    found = widget(key)
    name, email = (name or "").strip()[:200] or None, (email or "").strip() or None
    required = (found.config.get("prechat") or {}).get("required") or []
    missing = [f for f in required if not {"name": name, "email": email}.get(f)]
    if missing:
        raise InvalidInput(f"Please fill in: {', '.join(missing)}.", field=missing[0])
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidInput(f"That email address looks wrong: {exc}", field="email") from exc
    first, _, last = (name or "").partition(" ")
    with tenant_session(found.scope) as session:
        channel = session.get(Channel, found.channel_id)
        assert channel is not None
        session_id = uuid.uuid4().hex
        defaults = {"source": "webchat", "first_name": first or "Visitor", "last_name": last or None}
        if email:
            contact, _ = crm.match_or_create_contact(session=session, sub_account_id=found.sub_account_id,
                                                     email=email, defaults=defaults)
        else:
            contact = crm.create_contact(session=session, sub_account_id=found.sub_account_id,
                                         fields={**defaults, "last_name": last or f"#{session_id[:6]}"})
        conversation = inbound.open_conversation(session, channel, contact.id, thread_id=session_id,
                                                 reuse_latest=False)
        visitor = Visitor(found, contact.id, conversation.id)
    token = _sign({"k": key, "c": str(visitor.conversation_id), "p": str(visitor.contact_id)})
    return token, visitor


def resume(key: str, token: str) -> Visitor:
    """The visitor session a stored token names (403 for a forged token or another widget's)."""
    claims = _unsign(token)
    if claims.get("k") != key:
        raise Forbidden("This chat session belongs to another widget.")
    found = widget(key)
    conversation_id, contact_id = uuid.UUID(claims["c"]), uuid.UUID(claims["p"])
    with tenant_session(found.scope) as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or conversation.deleted_at is not None or conversation.contact_id != contact_id:
            raise Forbidden("This chat session has ended.")
    return Visitor(found, contact_id, conversation_id)


def transcript(visitor: Visitor) -> list[dict[str, Any]]:
    """What the visitor may see of the conversation, oldest first (never drafts or internal notes)."""
    with tenant_session(visitor.widget.scope) as session:
        rows = list(session.scalars(select(Message).where(Message.conversation_id == visitor.conversation_id)
                                    .order_by(Message.created_at.desc()).limit(TRANSCRIPT_LIMIT)))
    return [realtime.message_payload(m) for m in reversed(rows) if realtime.visible_to_lead(m)]


def say(visitor: Visitor, body: str, client_id: str) -> dict[str, Any]:
    """Store what the visitor wrote (once per client id: a resend after a dropped socket is harmless) and
    queue the agent's turn; the message goes to every open inbox and widget through the realtime fan-out."""
    body = body.replace("\x00", "").strip()  # a JSON "\u0000" decodes to NUL, which Postgres text cannot hold
    if not body:
        raise InvalidInput("Write something.", field="body")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"Messages are at most {MAX_BODY} characters.", field="body")
    if not client_id or len(client_id) > 64:
        raise InvalidInput("Each message needs a client id (at most 64 characters).", field="client_id")
    now = datetime.now(UTC)
    with tenant_session(visitor.widget.scope) as session:
        conversation = session.get(Conversation, visitor.conversation_id)
        channel = session.get(Channel, visitor.widget.channel_id)
        assert conversation is not None and channel is not None
        key = f"webchat:{conversation.id}:{client_id}"
        stored = inbound.existing(session, key) or inbound.store_message(session, conversation, idempotency_key=key,
                                                                         body=body, now=now)
        if stored.created:
            inbound.queue_turn(session, conversation, stored.message_id, agency_id=visitor.widget.agency_id,
                               delay_seconds=inbound.reply_delay(channel), now=now)
    return {"id": str(stored.message_id), "client_id": client_id, "created": stored.created}


def page_view(visitor: Visitor, url: str, referrer: str | None) -> None:
    """The widget reports the page its visitor is on (the site's tracking, as GoHighLevel's script does)."""
    from services import analytics

    if not url:
        return
    with tenant_session(visitor.widget.scope) as session:
        analytics.record(session, visitor.widget.sub_account_id, "page_viewed", contact_id=visitor.contact_id,
                         properties={"page_url": url, "referrer": referrer}, source="web",
                         session_id=str(visitor.conversation_id))
