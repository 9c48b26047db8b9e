"""Email and SMS campaigns: templates with `{{variables}}` and defaults, audiences resolved at send time,
exactly one message per eligible contact, batches sent within a provider rate, open / click / unsubscribe
tracking, and analytics computed from the recipients (never stored stale).

- Rendering: Jinja2's sandbox; a variable the contact lacks takes the template's default (`variables:
  [{"name": "first_name", "default": "there"}]`) or renders empty: a campaign never crashes on one contact.
- Audience (`campaign.audience`): `tags` (all required), `any_tags`, `lifecycle_stage`, `source`,
  `exclude_tags`; contacts opted out of the channel (DND, unsubscribed) and without an address are left out.
- `launch` writes one recipient row per eligible contact in one INSERT ... SELECT (unique per campaign and
  contact: a second launch adds nobody twice) and queues the batches; `send_batch` renders and stores the
  messages of up to BATCH recipients and hands them to the outbound path, which sends each exactly once.
- Email carries an open pixel, click-tracked links (signed, so the redirect is no open redirect) and a
  one-click unsubscribe link with `List-Unsubscribe` / `List-Unsubscribe-Post` headers."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, literal, not_, select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from leadpilot.settings import get_settings
from models.bulk import insert_rows
from models.conversations import Channel, Conversation, ConversationAIConfig, Message
from models.crm import Contact, ContactTag, Tag
from models.marketing import EmailClick, EmailTemplate, MessageCampaign, MessageCampaignRecipient, SmsTemplate
from services.errors import Conflict, InvalidInput, NotFound

BATCH = 500
# messages a second a campaign hands to each provider (a Twilio long code takes about 1/s per number, a
# toll-free or short code far more; relays throttle too): the pause between batches keeps to it
RATE_PER_S = {"sms": 10.0, "email": 50.0}
LINK = re.compile(r'href="(https?://[^"]+)"')


class _Blank(ChainableUndefined):
    """A missing variable renders as nothing (never an error), whatever is done with it."""

    def __str__(self) -> str:
        return ""


_env = SandboxedEnvironment(undefined=_Blank, autoescape=False)


def compile_template(text: str) -> Any:
    """A template, or 422 naming the syntax error."""
    try:
        return _env.from_string(text)
    except TemplateSyntaxError as exc:
        raise InvalidInput(f"Template error on line {exc.lineno}: {exc.message}", field="template") from exc


def variables_of(contact: Contact, defaults: dict[str, Any]) -> dict[str, Any]:
    """The values a template sees: the contact's fields and custom fields, else the template's defaults."""
    values = {"first_name": contact.first_name, "last_name": contact.last_name, "name": contact.name,
              "email": contact.email, "phone": contact.phone, "company_name": contact.company_name,
              **(contact.custom_fields or {})}
    return {**defaults, **{k: v for k, v in values.items() if v not in (None, "", [])}}


def _defaults(variables: list[Any]) -> dict[str, Any]:
    return {v["name"]: v.get("default", "") for v in variables or [] if isinstance(v, dict) and v.get("name")}


def audience_query(campaign: MessageCampaign) -> Any:
    """The eligible contacts of a campaign, as a SELECT of contact ids (resolved when it runs)."""
    spec = campaign.audience or {}
    channel = campaign.channel_type
    query = select(Contact.id).where(Contact.sub_account_id == campaign.sub_account_id, Contact.deleted_at.is_(None),
                                     not_(Contact.dnd_all), not_(Contact.dnd_channels.has_key(channel)))
    query = query.where(Contact.email.is_not(None) if channel == "email" else Contact.phone.is_not(None))

    def tagged(names: list[str]) -> Any:
        return select(ContactTag.contact_id).join(Tag, Tag.id == ContactTag.tag_id).where(
            func.lower(Tag.name).in_([n.lower() for n in names]))

    for name in spec.get("tags") or []:
        query = query.where(Contact.id.in_(tagged([name])))
    if spec.get("any_tags"):
        query = query.where(Contact.id.in_(tagged(spec["any_tags"])))
    if spec.get("exclude_tags"):
        query = query.where(Contact.id.not_in(tagged(spec["exclude_tags"])))
    if spec.get("lifecycle_stage"):
        query = query.where(Contact.lifecycle_stage == spec["lifecycle_stage"])
    if spec.get("source"):
        query = query.where(Contact.source == spec["source"])
    return query


def launch(*, session: Session, campaign_id: uuid.UUID, now: datetime | None = None) -> int:
    """Resolve the audience now and queue it: one recipient per eligible contact (a second launch adds no
    one twice). Returns the number of recipients; the batches go to the `campaigns` queue after commit."""
    now = now or datetime.now(UTC)
    campaign = session.get(MessageCampaign, campaign_id, with_for_update=True)
    if campaign is None or campaign.deleted_at is not None:
        raise NotFound("No such campaign.")
    if campaign.status in ("sent", "cancelled"):
        raise Conflict(f"The campaign is already {campaign.status}.")
    template = _template(session, campaign)
    compile_template(template[1])  # a broken template fails the launch, not 10,000 sends
    eligible = audience_query(campaign).subquery()
    session.execute(pg_insert(MessageCampaignRecipient).from_select(
        ["sub_account_id", "message_campaign_id", "contact_id", "status"],
        select(literal(campaign.sub_account_id), literal(campaign.id), eligible.c.id, literal("queued")),
        include_defaults=False,  # the database gives each row its own id and tracking token
    ).on_conflict_do_nothing(index_elements=["message_campaign_id", "contact_id"]))
    total = session.scalar(select(func.count()).select_from(MessageCampaignRecipient).where(
        MessageCampaignRecipient.message_campaign_id == campaign.id)) or 0
    campaign.status, campaign.started_at, campaign.total_recipients = "sending", campaign.started_at or now, total
    session.flush()
    return total


def _template(session: Session, campaign: MessageCampaign) -> tuple[str | None, str, str | None, dict[str, Any]]:
    """(subject, body, html, defaults) of the campaign's template."""
    if campaign.channel_type == "email":
        email = session.get(EmailTemplate, campaign.email_template_id) if campaign.email_template_id else None
        if email is None:
            raise InvalidInput("An email campaign needs an email template.", field="email_template_id")
        return email.subject, email.text_content or "", email.html_content, _defaults(email.variables)
    sms = session.get(SmsTemplate, campaign.sms_template_id) if campaign.sms_template_id else None
    if sms is None:
        raise InvalidInput("An SMS campaign needs an SMS template.", field="sms_template_id")
    return None, sms.body, None, _defaults(sms.variables)


def _sign(token: str, url: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"click.{token}.{url}".encode(), hashlib.sha256).hexdigest()[:32]


def tracked_html(html: str, token: str) -> str:
    """Links through the click tracker (signed), the unsubscribe link and the open pixel."""
    base = get_settings().public_base_url.rstrip("/")

    def link(match: re.Match[str]) -> str:
        url = match.group(1)
        return f'href="{base}/t/c/{token}?{urlencode({"u": url, "s": _sign(token, url)})}"'

    body = LINK.sub(link, html)
    footer = (f'<p style="font-size:12px;color:#6b7280"><a href="{base}/u/{token}">Unsubscribe</a></p>'
              f'<img src="{base}/t/o/{token}.gif" width="1" height="1" alt="">')
    return body.replace("</body>", footer + "</body>") if "</body>" in body else body + footer


def send_batch(*, session: Session, campaign_id: uuid.UUID, limit: int = BATCH) -> list[uuid.UUID]:
    """Render and store the messages of up to `limit` queued recipients (rows locked, skipped by other
    workers), each on the contact's conversation of the campaign's channel; returns the new message ids, to
    hand to the outbound path. An empty list: the campaign is fully queued (and is marked sent)."""
    campaign = session.get(MessageCampaign, campaign_id)
    if campaign is None:
        raise NotFound("No such campaign.")
    subject, body, html, defaults = _template(session, campaign)
    subject_t, body_t = compile_template(subject or ""), compile_template(body)
    html_t = compile_template(html) if html else None
    channel = session.scalars(select(Channel).where(Channel.channel_type == campaign.channel_type,
                                                    Channel.is_active, Channel.deleted_at.is_(None))
                              .order_by(Channel.created_at).limit(1)).first()
    if channel is None:
        raise Conflict(f"The sub-account has no active {campaign.channel_type} channel.")
    rows = session.execute(select(MessageCampaignRecipient, Contact).join(
        Contact, Contact.id == MessageCampaignRecipient.contact_id).where(
        MessageCampaignRecipient.message_campaign_id == campaign_id, MessageCampaignRecipient.message_id.is_(None),
        MessageCampaignRecipient.status == "queued").limit(limit)
        .with_for_update(of=MessageCampaignRecipient, skip_locked=True)).all()
    if not rows:
        campaign.status, campaign.completed_at = "sent", campaign.completed_at or datetime.now(UTC)
        return []
    contact_ids = [c.id for _, c in rows]
    conversations = dict(session.execute(select(Conversation.contact_id, Conversation.id).where(
        Conversation.channel_id == channel.id, Conversation.contact_id.in_(contact_ids),
        Conversation.deleted_at.is_(None)).order_by(Conversation.contact_id, Conversation.created_at.desc())
        .ext(distinct_on(Conversation.contact_id))).all())
    missing = [cid for cid in contact_ids if cid not in conversations]
    if missing:
        created = insert_rows(session, Conversation, [
            {"sub_account_id": campaign.sub_account_id, "channel_id": channel.id, "contact_id": cid,
             "status": "resolved"} for cid in missing], returning=["contact_id", "id"])
        conversations.update({contact_id: conversation_id for contact_id, conversation_id in created})
        # a lead who answers the campaign is answered by the channel's AI agent, as on any conversation
        from channels.inbound import agent_for

        found = agent_for(session, channel.channel_type)
        if found is not None:
            insert_rows(session, ConversationAIConfig, [
                {"sub_account_id": campaign.sub_account_id, "conversation_id": conversation_id,
                 "ai_agent_id": found[0].id, "mode": found[1]} for _, conversation_id in created])
    now = datetime.now(UTC)
    messages = []
    for recipient, contact in rows:
        values = variables_of(contact, defaults)
        text = body_t.render(values).strip()
        messages.append({
            "id": uuid.uuid4(), "sub_account_id": campaign.sub_account_id,
            "conversation_id": conversations[contact.id], "channel_id": channel.id, "contact_id": contact.id,
            "direction": "outbound", "sender_type": "system", "content_type": "email" if subject else "text",
            "subject": subject_t.render(values).strip() or None, "body": text,
            "html_body": tracked_html(html_t.render(values), recipient.tracking_token) if html_t else None,
            "status": "queued", "idempotency_key": f"campaign:{campaign_id}:{contact.id}",
            "metadata_": {"campaign_id": str(campaign_id), "recipient_id": str(recipient.id),
                          **({"list_unsubscribe": f"{get_settings().public_base_url.rstrip('/')}/u/"
                                                  f"{quote(recipient.tracking_token)}"} if subject else {})},
        })
    insert_rows(session, Message, messages)
    session.execute(sql_text("UPDATE message_campaign_recipients AS r SET message_id = u.message_id, sent_at = :now "
                         "FROM unnest(CAST(:recipients AS uuid[]), CAST(:messages AS uuid[])) AS u(id, message_id) "
                         "WHERE r.id = u.id"),
                    {"now": now, "recipients": [r.id for r, _ in rows], "messages": [m["id"] for m in messages]})
    return [m["id"] for m in messages]


RECIPIENT_PROGRESS = ("queued", "sent", "delivered", "opened", "clicked")


def _advance(recipient: MessageCampaignRecipient, status: str) -> None:
    """Move the recipient forward on the progress ladder only (a late "sent" never undoes "opened"; a bounce,
    failure, opt-out or unsubscribe is not on the ladder and stays)."""
    if recipient.status in RECIPIENT_PROGRESS and \
            RECIPIENT_PROGRESS.index(status) > RECIPIENT_PROGRESS.index(recipient.status):
        recipient.status = status


def mirror_status(session: Session, message: Message) -> None:
    """A campaign message's delivery news (sent, delivered, bounced, failed, skipped for an opt-out) onto its
    recipient row, forward only: a late "sent" never undoes "delivered" or "opened"; bounces and failures are
    final. Messages of no campaign are left alone (no query)."""
    recipient_id = (message.metadata_ or {}).get("recipient_id")
    if not recipient_id:
        return
    recipient = session.get(MessageCampaignRecipient, uuid.UUID(recipient_id), with_for_update=True)
    if recipient is None or recipient.status not in RECIPIENT_PROGRESS:
        return
    now = datetime.now(UTC)
    rank = RECIPIENT_PROGRESS.index(recipient.status)
    if message.status in ("sent", "delivered"):
        if message.status == "delivered":
            recipient.delivered_at = recipient.delivered_at or message.delivered_at or now
        _advance(recipient, message.status)
    elif message.status in ("failed", "undelivered") and rank < RECIPIENT_PROGRESS.index("opened"):
        if message.error_code == "dnd":
            recipient.status = "skipped"
        elif message.status == "undelivered" or message.error_code in BOUNCE_CODES or \
                (message.error_code or "").startswith("smtp_5"):
            recipient.status, recipient.bounced_at = "bounced", now
        else:
            recipient.status = "failed"
        recipient.error = message.error_message


# provider refusals that mean the address does not take mail/texts (SMTP 5xx, Twilio's unreachable numbers)
BOUNCE_CODES = frozenset({"no_recipient", "rejected", "30003", "30005", "30006", "21211", "21614"})


def _workflow_message(session: Session, token: str) -> Message | None:
    """The workflow email a tracking token ("m-...") belongs to."""
    return session.scalar(select(Message).where(Message.metadata_["tracking_token"].astext == token))


def _recipient(session: Session, token: str) -> MessageCampaignRecipient | None:
    """The campaign recipient a tracking token belongs to."""
    return session.scalar(select(MessageCampaignRecipient).where(MessageCampaignRecipient.tracking_token == token))


def record_open(*, session: Session, token: str, now: datetime | None = None) -> bool:
    """The open pixel was loaded (mail clients preload: counted, first time kept)."""
    now = now or datetime.now(UTC)
    if token.startswith("m-"):  # a workflow's email: the message itself records the open
        message = _workflow_message(session, token)
        if message is None:
            return False
        message.read_at = message.read_at or now
        return True
    recipient = _recipient(session, token)
    if recipient is None:
        return False
    recipient.open_count += 1
    recipient.opened_at = recipient.opened_at or now
    _advance(recipient, "opened")
    return True


def record_click(*, session: Session, token: str, url: str, signature: str, ip: str | None, user_agent: str | None,
                 now: datetime | None = None) -> str | None:
    """A tracked link was followed: returns where to send the reader (None: forged or unknown)."""
    if not hmac.compare_digest(_sign(token, url), signature):
        return None
    now = now or datetime.now(UTC)
    if token.startswith("m-"):  # a workflow's email: a click proves the open
        message = _workflow_message(session, token)
        if message is None:
            return None
        message.read_at = message.read_at or now
        return url
    recipient = _recipient(session, token)
    if recipient is None:
        return None
    session.add(EmailClick(sub_account_id=recipient.sub_account_id, recipient_id=recipient.id, url=url,
                           clicked_at=now, ip_address=ip, user_agent=(user_agent or "")[:500]))
    recipient.click_count += 1
    recipient.first_clicked_at = recipient.first_clicked_at or now
    recipient.opened_at = recipient.opened_at or now  # a click proves the open the pixel may have missed
    if recipient.status not in ("unsubscribed", "bounced"):
        recipient.status = "clicked"
    return url


def unsubscribe(*, session: Session, token: str, now: datetime | None = None) -> bool:
    """One-click unsubscribe: the contact gets no more of this channel's campaigns."""
    from services import crm

    now = now or datetime.now(UTC)
    if token.startswith("m-"):  # a workflow's email
        message = _workflow_message(session, token)
        if message is None or message.contact_id is None:
            return False
        crm.set_dnd(session=session, contact_id=message.contact_id, channel="email", enabled=True,
                    reason="unsubscribed")
        return True
    recipient = _recipient(session, token)
    if recipient is None:
        return False
    campaign = session.get(MessageCampaign, recipient.message_campaign_id)
    assert campaign is not None
    crm.set_dnd(session=session, contact_id=recipient.contact_id, channel=campaign.channel_type, enabled=True,
                reason="unsubscribed")
    recipient.status, recipient.unsubscribed_at = "unsubscribed", recipient.unsubscribed_at or now
    return True


def stats(*, session: Session, campaign_id: uuid.UUID) -> dict[str, Any]:
    """Counts and rates from the recipients themselves, with the formulas."""
    r = MessageCampaignRecipient
    row = session.execute(select(
        func.count(), func.count(r.message_id), func.count(r.delivered_at), func.count(r.opened_at),
        func.count(r.first_clicked_at), func.count(r.bounced_at), func.count(r.unsubscribed_at),
        func.count().filter(r.status == "failed"),
    ).where(r.message_campaign_id == campaign_id)).one()
    total, sent, delivered, opened, clicked, bounced, unsubscribed, failed = row

    def rate(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {"recipients": total, "sent": sent, "delivered": delivered, "opened": opened, "clicked": clicked,
            "bounced": bounced, "unsubscribed": unsubscribed, "failed": failed,
            "open_rate": rate(opened, sent), "click_rate": rate(clicked, sent),
            "click_to_open_rate": rate(clicked, opened), "unsubscribe_rate": rate(unsubscribed, sent),
            "bounce_rate": rate(bounced, sent),
            "formulas": {"open_rate": "opened / sent", "click_rate": "clicked / sent",
                         "click_to_open_rate": "clicked / opened", "unsubscribe_rate": "unsubscribed / sent",
                         "bounce_rate": "bounced / sent"}}



def channel_of(session: Session, campaign_id: uuid.UUID) -> str:
    campaign = session.get(MessageCampaign, campaign_id)
    return campaign.channel_type if campaign else "email"


def schedule(*, session: Session, campaign_id: uuid.UUID, at: datetime) -> None:
    """Send later: the beat task launches it when `at` comes (the audience is resolved then)."""
    campaign = session.get(MessageCampaign, campaign_id, with_for_update=True)
    if campaign is None or campaign.deleted_at is not None:
        raise NotFound("No such campaign.")
    if campaign.status not in ("draft", "scheduled", "paused"):
        raise Conflict(f"The campaign is already {campaign.status}.")
    compile_template(_template(session, campaign)[1])
    campaign.status, campaign.scheduled_at = "scheduled", at


def due_scheduled(session: Session, now: datetime) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    """(campaign, agency, sub-account) of scheduled campaigns that are due (owner session: every tenant)."""
    from models.tenancy import SubAccount

    return [(c, a, s) for c, a, s in session.execute(
        select(MessageCampaign.id, SubAccount.agency_id, MessageCampaign.sub_account_id).join(
            SubAccount, SubAccount.id == MessageCampaign.sub_account_id).where(
            MessageCampaign.status == "scheduled", MessageCampaign.scheduled_at <= now,
            MessageCampaign.deleted_at.is_(None)))]


def queue_batch(*, session: Session, campaign_id: uuid.UUID, limit: int = BATCH) -> int:
    """One batch of the `campaigns` worker: render and store up to `limit` messages (`send_batch`) and queue
    them all for the outbound path in one go; the inbox hears of the batch once. Returns how many."""
    from channels import realtime
    from channels.outbound import Queued, queue_sends
    from models.db import after_commit

    ids = send_batch(session=session, campaign_id=campaign_id, limit=limit)
    if not ids:
        return 0
    campaign = session.get(MessageCampaign, campaign_id)  # loaded by send_batch: no query
    assert campaign is not None
    sub_account_id = campaign.sub_account_id
    queue_sends(session, [Queued(message_id, sub_account_id) for message_id in ids], announce=False)
    event = {"type": "campaign.batch", "campaign_id": str(campaign_id), "messages": len(ids)}
    after_commit(session, lambda: realtime.publish([realtime.sub_channel(sub_account_id)], event))
    return len(ids)
