"""Email in and out. Inbound mail (SendGrid's Inbound Parse post, or the raw MIME any relay can forward) is
authenticated with the channel's shared secret, routed by recipient address, threaded by In-Reply-To /
References into the conversation it continues, and stored once per Message-ID, its body stripped of quoted
history and signature (the full text and the attachments' metadata kept). Outbound mail goes over SMTP to the
configured relay (the sandbox otherwise), carrying the headers that keep it in the lead's thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import smtplib
import ssl
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.parser import BytesParser, Parser
from email.utils import format_datetime, formataddr, getaddresses
from typing import Any

from bs4 import BeautifulSoup, NavigableString
from email_reply_parser import EmailReplyParser
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from channels import inbound
from channels.outbound import Outgoing, PermanentError, SandboxTransport, Sent, TransientError
from leadpilot.settings import get_settings
from models.conversations import Channel, Conversation, Message
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import SubAccount
from services import crm
from services.errors import Forbidden, InvalidInput, NotFound

log = logging.getLogger("leadpilot.email")
MAX_RAW_BYTES = 40 * 1024 * 1024
MAX_FULL_TEXT = 50_000
# the stored reply: as much as the full text kept beside it (a longer mail is cut, not refused: a person wrote
# it, and the sender cannot send it shorter); the text is cut before the reply parser sees it, which bounds
# its work too
MAX_BODY = MAX_FULL_TEXT
MAX_HTML = 1_000_000
MAX_REFERENCES = 30  # the root and the newest ids: enough for every client to thread, short enough for relays
SMTP_TIMEOUT_S = 30

MESSAGE_ID = re.compile(r"<[^<>\s]+>")
REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|antw)\s*(\[\d+\])?\s*:\s*)+", re.I)
# where quoted history or a signature starts, line by line
SIGNATURE = re.compile(r"^-- ?$")  # RFC 3676's "-- " (clients often drop the space)
ORIGINAL = re.compile(r"^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original)"
                      r"\s*-{2,}$", re.I)
MOBILE = re.compile(r"^(sent from my \w+( \w+){0,3}|sent from (mail|outlook) for \w+|get outlook for (ios|android))"
                    r"\.?$", re.I)
ATTRIBUTION_START = re.compile(r"^(on|am|le|el)\s", re.I)
ATTRIBUTION = re.compile(r"^(on|am|le|el)\s.{4,400}(wrote|schrieb|a écrit|escribió)\s?:$", re.I | re.S)
RULE = re.compile(r"^_{8,}$")  # Outlook's line above the quoted "From:" block
FROM_LINE = re.compile(r"^\*?(from|von|de)\s*:\*?\s*\S", re.I)
HEADER_LINE = re.compile(r"^\*?(sent|date|to|subject|cc|gesendet|an|betreff|envoyé|objet|enviado|para|asunto)"
                         r"\s*:\*?\s", re.I)
FORWARDED = re.compile(r"^(-{2,}\s*forwarded message\s*-{2,}|begin forwarded message:)$", re.I)
BLOCKS = ["p", "div", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr",
          "pre", "section", "article", "header", "footer"]
QUOTED_HTML = "blockquote, .gmail_quote, .yahoo_quoted, #divRplyFwdMsg, #appendonsend"


@dataclass(frozen=True)
class Received:
    """What the webhook stored."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    created: bool  # False: a retry of a mail already stored
    agency_id: uuid.UUID | None = None
    sub_account_id: uuid.UUID | None = None

    def as_json(self) -> dict[str, Any]:
        """What the webhook answers."""
        return {"message_id": str(self.message_id), "conversation_id": str(self.conversation_id),
                "created": self.created}


@dataclass(frozen=True)
class Mail:
    """One inbound email, whichever format it arrived in."""

    message_id: str
    in_reply_to: str | None
    references: list[str]
    sender_name: str
    sender: str
    to: str
    recipients: list[str]  # where it was delivered, most telling first
    subject: str
    plain: str | None
    html: str | None
    attachments: list[dict[str, Any]]
    automatic: bool  # an auto-reply, bounce or bulk mail: stored, never answered by the agent

    def full_text(self) -> str:
        """The plain part, else the HTML as text: quoted history and all."""
        return self.plain or html_to_text(self.html or "")

    def body(self) -> str:
        """The new part, as a person reads it."""
        if self.plain:
            return strip_reply(self.plain)
        return strip_reply(html_to_text(self.html or "", drop_quotes=True))


# ---- inbound -------------------------------------------------------------------------------------------------


# one answer for every post that does not carry a channel's secret (none, a wrong one, an address we do not have,
# a channel without a secret): a prober learns nothing about which addresses exist
NOT_VERIFIED = "The inbound email token does not match."


def receive_mime(raw: bytes, *, to_address: str | None = None, token: str | None = None) -> Received:
    """A whole RFC 822 message: authenticate, then store it and queue its agent turn, all or nothing."""
    if not token:
        raise Forbidden(NOT_VERIFIED)
    return _receive(parse_mime(raw, recipients=[to_address] if to_address else []), token)


def receive_parse(fields: dict[str, str], attachments: list[dict[str, Any]], *, token: str | None = None) -> Received:
    """SendGrid's Inbound Parse post (parsed fields and `attachmentN` files, or the whole MIME in `email`)."""
    if not token:
        raise Forbidden(NOT_VERIFIED)
    fields = {_no_nul(k): _no_nul(v) for k, v in fields.items()}
    envelope = _json(fields.get("envelope"))
    envelope_to = envelope.get("to") or []
    envelope_to = [envelope_to] if isinstance(envelope_to, str) else [str(a) for a in envelope_to]
    if fields.get("email"):
        return _receive(parse_mime(fields["email"].encode("utf-8", "surrogateescape"), recipients=envelope_to), token)
    headers = Parser(policy=policy.default).parsestr(fields.get("headers") or "", headersonly=True)
    info = _json(fields.get("attachment-info"))
    files = []
    for item in attachments:
        described = info.get(item.get("field") or "") or {}
        files.append({"filename": _no_nul(str(described.get("filename") or item.get("filename") or "attachment")),
                      "content_type": _no_nul(str(described.get("type") or item.get("content_type")
                                                  or "application/octet-stream")),
                      "size": int(item.get("size") or 0)})
    digest = hashlib.sha256(json.dumps({k: v for k, v in fields.items() if k not in ("charsets", "spam_report")},
                                       sort_keys=True).encode()).hexdigest()
    sender = _addresses(fields.get("from") or _header(headers, "From"))
    recipients = [*envelope_to, *(a for _, a in _header_addresses(headers, "Delivered-To", "X-Original-To")),
                  *(a for _, a in _addresses(fields.get("to") or _header(headers, "To"))),
                  *(a for _, a in _addresses(fields.get("cc") or _header(headers, "Cc")))]
    return _receive(_mail(headers, digest=digest, sender=sender, recipients=recipients,
                          subject=fields.get("subject") or _header(headers, "Subject"),
                          to=fields.get("to") or _header(headers, "To"), plain=fields.get("text") or None,
                          html=fields.get("html") or None, attachments=files), token)


def parse_mime(raw: bytes, *, recipients: list[str] | None = None) -> Mail:
    """Read a raw email (InvalidInput when it is not one); `recipients` come first when routing it."""
    if len(raw) > MAX_RAW_BYTES:
        raise InvalidInput(f"The email is larger than {MAX_RAW_BYTES // 1024 // 1024} MB.")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; whatever still breaks it is not an email we can read
        raise InvalidInput("The body is not an RFC 822 email.") from exc
    sender = _header_addresses(message, "From")
    if not sender:
        raise InvalidInput("The email has no From address.")
    plain, html = _part_text(message, "plain"), _part_text(message, "html")
    return _mail(message, digest=hashlib.sha256(raw).hexdigest(), sender=sender,
                 recipients=[*(recipients or []), *(a for _, a in _header_addresses(
                     message, "Delivered-To", "X-Original-To", "To", "Cc"))],
                 subject=_header(message, "Subject"), to=_header(message, "To"), plain=plain, html=html,
                 attachments=list(_attachments(message, _bodies(message))))


def _mail(headers: MimeMessage, *, digest: str, sender: list[tuple[str, str]], recipients: list[str], subject: str,
          to: str, plain: str | None, html: str | None, attachments: list[dict[str, Any]]) -> Mail:
    if not sender:
        raise InvalidInput("The email has no From address.")
    # a mail without a Message-ID gets one from its content, so a retry of it stores nothing new
    message_id = next(iter(_ids(_header(headers, "Message-ID"))), f"<{digest[:40]}@generated.leadpilot.invalid>")
    # NUL bytes can arrive encoded (quoted-printable =00, base64) and Postgres text cannot hold them
    plain = _no_nul(plain)[:MAX_FULL_TEXT] if plain else plain
    html = _no_nul(html)[:MAX_HTML] if html else html
    sender = [(_no_nul(n), _no_nul(a)) for n, a in sender]
    attachments = [{k: _no_nul(v) if isinstance(v, str) else v for k, v in a.items()} for a in attachments]
    auto = _header(headers, "Auto-Submitted").strip().lower()
    local_part = sender[0][1].partition("@")[0].lower()
    automatic = (auto not in ("", "no") or _header(headers, "Precedence").strip().lower() in ("bulk", "junk", "list",
                 "auto_reply") or bool(_header(headers, "X-Autoreply") or _header(headers, "X-Autorespond"))
                 or local_part in ("mailer-daemon", "postmaster"))
    return Mail(message_id=message_id, in_reply_to=next(iter(_ids(_header(headers, "In-Reply-To"))), None),
                references=_ids(_header(headers, "References")), sender_name=sender[0][0], sender=sender[0][1],
                to=_no_nul(to), recipients=recipients, subject=" ".join(_no_nul(subject).split()), plain=plain,
                html=html, attachments=attachments, automatic=automatic)


def _receive(mail: Mail, token: str | None) -> Received:
    try:
        channel, agency_id = _route(mail.recipients)
    except NotFound:
        raise Forbidden(NOT_VERIFIED) from None
    verify(channel, token)
    sender = crm.normalize_email(mail.sender)
    assert sender is not None
    key = _idempotency_key(channel, mail.message_id)
    now = datetime.now(UTC)
    with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=channel.sub_account_id)) as session:
        found = inbound.existing(session, key)
        if found is not None:
            return Received(found.message_id, found.conversation_id, False)
        contact, _ = crm.match_or_create_contact(session=session, sub_account_id=channel.sub_account_id, email=sender,
                                                 defaults={"source": "email", **_names(mail.sender_name)})
        conversation = _continued(session, channel, contact.id, mail) or inbound.open_conversation(
            session, channel, contact.id, thread_id=(mail.references or [mail.in_reply_to or mail.message_id])[0][:998],
            subject=topic(mail.subject) or None, reuse_latest=False)
        stored = inbound.store_message(
            session, conversation, idempotency_key=key, body=mail.body()[:MAX_BODY], now=now,
            provider_message_id=_provider_id(session, channel, mail.message_id),
            subject=mail.subject or None, html_body=mail.html, content_type="email", attachments=mail.attachments,
            metadata={"message_id": mail.message_id, "in_reply_to": mail.in_reply_to, "references": mail.references,
                      "from": mail.sender, "to": mail.to, "full_text": mail.full_text()[:MAX_FULL_TEXT],
                      **({"automatic": True} if mail.automatic else {})})
        if stored.created and not mail.automatic:
            inbound.queue_turn(session, conversation, stored.message_id, agency_id=agency_id,
                               delay_seconds=inbound.reply_delay(channel), now=now)
        return Received(stored.message_id, stored.conversation_id, stored.created, agency_id, channel.sub_account_id)


def _route(recipients: list[str]) -> tuple[Channel, uuid.UUID]:
    """The email channel the mail was sent to, and its agency (owner role: no tenant is known yet)."""
    candidates = list(dict.fromkeys(c for r in recipients for c in _mailbox(r)))
    if not candidates:
        raise NotFound("The email has no recipient address.")
    with owner_session() as session:
        rows = session.execute(select(Channel, SubAccount.agency_id).join(
            SubAccount, SubAccount.id == Channel.sub_account_id).where(
            Channel.channel_type == "email", func.lower(Channel.address).in_(candidates),
            Channel.deleted_at.is_(None), Channel.is_active)).all()
    if not rows:
        raise NotFound(f"No email channel for {', '.join(candidates[:3])}.")
    rank = {address: i for i, address in enumerate(candidates)}
    channel, agency_id = min(rows, key=lambda row: rank[row[0].address.lower()])
    return channel, agency_id


def verify(channel: Channel, token: str | None) -> None:
    """Inbound parse posts are unsigned: the channel's shared secret must come with them."""
    secret = (channel.config or {}).get("inbound_secret")
    if not secret:
        log.warning("inbound email refused: channel %s has no inbound_secret", channel.id)
        raise Forbidden(NOT_VERIFIED)
    if not token or not hmac.compare_digest(token.encode(), str(secret).encode()):
        raise Forbidden(NOT_VERIFIED)


def _continued(session: Session, channel: Channel, contact_id: uuid.UUID, mail: Mail) -> Conversation | None:
    """The conversation this mail replies into: the newest of our messages it names (the lead's own threads only,
    so a colleague on Cc is never filed as the lead)."""
    ids = list(dict.fromkeys(i for i in (mail.in_reply_to, *reversed(mail.references)) if i))
    if not ids:
        return None
    return session.scalar(select(Conversation).join(Message, Message.conversation_id == Conversation.id).where(
        # the contact's own messages (indexed): the metadata lookup never scans the whole inbox
        Message.contact_id == contact_id, Message.channel_id == channel.id, Conversation.deleted_at.is_(None),
        or_(Message.provider_message_id.in_(ids), Message.metadata_["message_id"].astext.in_(ids)),
    ).order_by(Message.created_at.desc()).limit(1))


def _provider_id(session: Session, channel: Channel, message_id: str) -> str | None:
    """The Message-ID as the provider id, unless it is already one of ours: our own mail echoed back (a bounce, a
    redirect) is stored, its id kept in the metadata only."""
    if len(message_id) > 255 or session.scalar(select(Message.id).where(
            Message.channel_id == channel.id, Message.provider_message_id == message_id)) is not None:
        return None
    return message_id


def _idempotency_key(channel: Channel, message_id: str) -> str:
    # per channel: the same mail sent to two of our inboxes is a message in each
    key = f"email:{channel.id}:{message_id}"
    return key if len(key) <= 255 else f"email:{channel.id}:{hashlib.sha256(message_id.encode()).hexdigest()}"


# ---- reading mail ----------------------------------------------------------------------------------------------


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


def _header(message: MimeMessage, name: str) -> str:
    try:
        return _no_nul(str(message.get(name) or ""))
    except Exception:  # a header too malformed for the policy to render
        return ""


def _header_addresses(message: MimeMessage, *names: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in names:
        for header in message.get_all(name) or []:
            parsed = getattr(header, "addresses", None)  # none: not an address header to the policy (Delivered-To)
            if parsed:
                found += [(a.display_name, a.addr_spec) for a in parsed]
            else:
                found += _addresses(str(header))
    return [(n, a) for n, a in found if "@" in a]


def _addresses(value: str) -> list[tuple[str, str]]:
    return [(n, a) for n, a in getaddresses([value or ""]) if "@" in a]


def _mailbox(address: str) -> list[str]:
    """The address as written and without its +tag, lower-cased."""
    address = address.strip().strip("<>").lower()
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        return []
    return list(dict.fromkeys((address, f"{local.split('+', 1)[0]}@{domain}")))


def _ids(value: str) -> list[str]:
    found = MESSAGE_ID.findall(value or "")
    if not found and value.strip() and " " not in value.strip():
        found = [f"<{value.strip().strip('<>')}>"]
    return list(dict.fromkeys(found))


def _json(value: str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(value or "{}")
    except ValueError as exc:
        raise InvalidInput("A JSON field of the inbound post is not valid JSON.") from exc
    return parsed if isinstance(parsed, dict) else {}


def _part_text(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, ValueError):  # an unknown or lying charset
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None


def _bodies(message: EmailMessage) -> list[MimeMessage]:
    return [p for p in (message.get_body(("plain",)), message.get_body(("html",))) if p is not None]


def _attachments(part: EmailMessage, bodies: list[MimeMessage]) -> Iterator[dict[str, Any]]:
    """Name, type and size of every attachment (inline images and attached emails too); the bytes stay out."""
    for sub in part.iter_parts():
        kind = sub.get_content_type()
        if any(sub is b for b in bodies):
            continue
        if kind == "message/rfc822":
            yield {"filename": sub.get_filename() or "message.eml", "content_type": kind, "size": len(sub.as_bytes())}
        elif sub.is_multipart():
            yield from _attachments(sub, bodies)  # type: ignore[arg-type]
        elif sub.get_filename() or sub.get_content_disposition() == "attachment":
            payload = sub.get_payload(decode=True)
            yield {"filename": sub.get_filename() or "attachment", "content_type": kind,
                   "size": len(payload) if isinstance(payload, bytes) else 0}


def _names(display: str) -> dict[str, str]:
    display = " ".join(display.replace('"', "").split())
    if not display or "@" in display:
        return {}
    if "," in display:  # "Doe, Jane"
        last, _, first = display.partition(",")
    else:
        first, _, last = display.partition(" ")
    return {k: v.strip()[:120] for k, v in (("first_name", first), ("last_name", last)) if v.strip()}


def topic(subject: str | None) -> str:
    """The subject without its Re:/Fwd: prefixes."""
    return REPLY_PREFIX.sub("", subject or "").strip()


def html_to_text(html: str, *, drop_quotes: bool = False) -> str:
    """Readable text of an HTML mail (`drop_quotes`: without the quoted history clients wrap in markup)."""
    if not html.strip():
        return ""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head", "title"]):
        tag.decompose()
    if drop_quotes:
        for tag in soup.select(QUOTED_HTML):
            if tag.decomposed:
                continue
            if tag.get("id") in ("divRplyFwdMsg", "appendonsend"):  # Outlook: the original follows its header
                for after in tag.find_next_siblings():
                    after.decompose()
            tag.decompose()
    for node in soup.find_all(string=True):
        if type(node) is NavigableString and node.find_parent("pre") is None:
            node.replace_with(re.sub(r"\s+", " ", node))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = [line.strip() for line in soup.get_text().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def strip_reply(text: str) -> str:
    """The new part of a mail body: quoted history, attribution lines and signature removed (a forward is kept
    whole: what was forwarded is the point)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i, line in enumerate(lines):
        if FORWARDED.match(line.strip()):
            return "\n".join(lines).strip()
        if _history_starts(lines, i):
            lines = lines[:i]
            break
    kept = "\n".join(lines).strip()
    return EmailReplyParser.parse_reply(kept).strip() or kept or text.strip()


def _history_starts(lines: list[str], i: int) -> bool:
    line = lines[i].strip()
    if SIGNATURE.match(lines[i]) or ORIGINAL.match(line) or MOBILE.match(line):
        return True
    if ATTRIBUTION_START.match(line):  # "On <date>, <name> wrote:", often wrapped over two or three lines
        window = ""
        for following in lines[i:i + 3]:
            window = f"{window} {following.strip()}".strip()
            if ATTRIBUTION.match(window):
                return True
    if RULE.match(line):
        return any(FROM_LINE.match(n.strip()) for n in lines[i + 1:i + 3] if n.strip())
    if FROM_LINE.match(line):  # Outlook's "From: / Sent: / To: / Subject:" block
        return sum(bool(HEADER_LINE.match(n.strip())) for n in lines[i + 1:i + 6]) >= 2
    return False


# ---- outbound ---------------------------------------------------------------------------------------------------


class EmailTransport:
    """SMTP to the configured relay (SMTP_HOST), else the sandbox; threading headers either way."""

    name = "smtp"
    dedupes = False  # an SMTP relay cannot tell a retry from a new mail

    def __init__(self) -> None:
        settings = get_settings()
        self.host, self.port = settings.smtp_host, settings.smtp_port
        self.username, self.password = settings.smtp_username, settings.smtp_password
        if not self.host:
            self.dedupes = True  # the sandbox records each key once

    def send(self, out: Outgoing) -> Sent:
        """Send one message in its thread; the returned metadata threads the next reply onto this one."""
        mail = compose(out)
        message_id = str(mail["Message-ID"])
        headers = {"message_id": message_id, "in_reply_to": str(mail["In-Reply-To"] or "") or None,
                   "references": _ids(str(mail["References"] or ""))}
        if self.host:
            self._smtp(mail, out)
            return Sent(message_id, "sent", {**headers, "transport": self.name})
        request = {**headers, "subject": str(mail["Subject"]), "to": out.contact.email, "from": str(mail["From"]),
                   "body": out.message.body, "html_body": out.message.html_body,
                   "list_unsubscribe": str(mail["List-Unsubscribe"] or "") or None}
        _Recorder(request).send(out)
        return Sent(message_id, "sent", {**headers, "transport": "sandbox:smtp"})

    def _smtp(self, mail: EmailMessage, out: Outgoing) -> None:
        domain = out.channel.address.rpartition("@")[2] or None
        try:
            if self.port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host or "", self.port, local_hostname=domain,
                                                      timeout=SMTP_TIMEOUT_S, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host or "", self.port, local_hostname=domain, timeout=SMTP_TIMEOUT_S)
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"The SMTP relay {self.host}:{self.port} is unreachable: {exc}") from exc
        try:
            smtp.ehlo()
            if self.port != 465 and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(mail, from_addr=out.channel.address, to_addrs=[out.contact.email or ""])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise _refusal(code, reply, "The relay refused the recipient") from exc
        except smtplib.SMTPAuthenticationError as exc:  # our configuration, not the message: worth retrying
            raise TransientError(f"SMTP login failed: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _refusal(exc.smtp_code, exc.smtp_error, "The relay refused the message") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP failed: {type(exc).__name__}: {exc}") from exc
        finally:
            # the mail is accepted once DATA is answered: a failing goodbye must not make it look unsent
            with suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()


def _refusal(code: int, reply: bytes | str, what: str) -> Exception:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    if code >= 500:
        return PermanentError(f"{what}: {code} {text}", f"smtp_{code}")
    return TransientError(f"{what} for now: {code} {text}")


class _Recorder(SandboxTransport):
    """The sandbox, recording the mail's headers as the request."""

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__("smtp", "smtp.send")
        self._request = request

    def request(self, out: Outgoing) -> dict[str, Any]:
        return self._request


def compose(out: Outgoing) -> EmailMessage:
    """The mail for an outbound message, with a Message-ID stable across retries and, in a thread, In-Reply-To
    the newest mail and References the whole chain."""
    if not out.contact.email:
        raise PermanentError("The contact has no email address.", "no_recipient")
    ids = [str(m["message_id"]) for m in out.thread if m.get("message_id")]
    chain = _chain(out.thread)
    subjects = [out.conversation.subject, *(m.get("subject") for m in reversed(out.thread)), out.message.subject]
    if ids:
        subject = "Re: " + topic(next((s for s in subjects if topic(s)), "") or out.sub_account.name)
    else:
        subject = out.message.subject or out.conversation.subject or out.sub_account.name
    domain = out.channel.address.rpartition("@")[2] or "leadpilot.local"
    config = out.channel.config or {}
    mail = EmailMessage()
    mail["From"] = formataddr((_line(config.get("from_name") or out.sub_account.name), out.channel.address))
    mail["To"] = formataddr((_line(out.contact.name or ""), out.contact.email))
    mail["Subject"] = _line(subject)
    mail["Date"] = format_datetime(datetime.now(UTC))
    unsubscribe = (out.message.metadata_ or {}).get("list_unsubscribe")
    if unsubscribe:  # campaigns: one-click unsubscribe (RFC 8058) in the mail client itself
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["Message-ID"] = f"<{hashlib.sha256(out.key.encode()).hexdigest()[:32]}@{domain}>"
    if ids:
        mail["In-Reply-To"] = ids[-1]
        mail["References"] = " ".join(chain)
    mail.set_content(out.message.body or "")
    if out.message.html_body:
        mail.add_alternative(out.message.html_body, subtype="html")
    return mail


def _chain(thread: list[dict[str, Any]]) -> list[str]:
    chain: list[str] = []
    for earlier in thread:
        chain += [r for r in earlier.get("references") or [] if isinstance(r, str)]
        if earlier.get("message_id"):
            chain.append(str(earlier["message_id"]))
    chain = list(dict.fromkeys(chain))
    return chain if len(chain) <= MAX_REFERENCES else [chain[0], *chain[-(MAX_REFERENCES - 1):]]


def _line(value: str) -> str:
    return " ".join(str(value).split())  # no CR/LF may reach a header
