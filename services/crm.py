"""CRM: contacts and their identity (normalized email, E.164 phone), custom fields, tags, notes, tasks,
do-not-disturb, search, duplicate merge and lead conversion. Plain functions over a tenant-scoped Session."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, Uuid, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import Base
from models.conversations import CHANNEL_TYPES
from models.crm import (
    LIFECYCLE_STAGES,
    Contact,
    ContactCustomField,
    ContactTag,
    CustomFieldDefinition,
    Note,
    Tag,
    Task,
)
from models.tenancy import SubAccount
from services.errors import InvalidInput, NotFound

# a whole message that opts out of a channel (the carriers' keywords, as Twilio applies them)
OPT_OUT = re.compile(r"^\s*(stop|stopall|unsubscribe|cancel|end|quit|opt[ -]?out)\s*[.!]*\s*$", re.I)

EDITABLE = {
    "first_name", "last_name", "email", "phone", "company_name", "timezone", "date_of_birth", "address", "source",
    "lifecycle_stage", "lead_score", "lead_source", "qualification_status", "conversion_probability",
    "assigned_user_id", "campaign_id", "custom_fields",
}


def normalize_email(raw: str | None) -> str | None:
    """A syntactically valid address, trimmed and lower-cased; None for blank input."""
    if raw is None or not raw.strip():
        return None
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"{raw!r} is not a valid email address.", field="email") from exc


def normalize_phone(raw: str | None, *, region: str = "US") -> str | None:
    """E.164 (+15125550199) from any common way of writing a number; None for blank input."""
    if raw is None or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"{raw!r} is not a phone number.", field="phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"{raw!r} is not a valid phone number.", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def get_contact_or_raise(*, session: Session, contact_id: uuid.UUID) -> Contact:
    """The live contact, or NotFound (also when another tenant owns it)."""
    contact = session.get(Contact, contact_id)
    if contact is None or contact.deleted_at is not None:
        raise NotFound("No such contact.")
    return contact


def find_contact(*, session: Session, email: str | None = None, phone: str | None = None) -> Contact | None:
    """The live contact with this email or phone (normalized first); email wins when both match different ones."""
    email, phone = normalize_email(email), normalize_phone(phone)
    for column, value in ((Contact.email_normalized, email), (Contact.phone, phone)):
        if value:
            found = session.scalar(select(Contact).where(column == value, Contact.deleted_at.is_(None)))
            if found is not None:
                return found
    return None


def validate_custom_fields(*, session: Session, sub_account_id: uuid.UUID, values: dict[str, Any],
                           definitions_of: type[CustomFieldDefinition] = ContactCustomField,
                           require_all: bool = False) -> dict[str, Any]:
    """Check each value against its field definition and return them normalized (JSON-ready)."""
    definitions = {d.key: d for d in session.scalars(select(definitions_of).where(
        definitions_of.sub_account_id == sub_account_id, definitions_of.deleted_at.is_(None)))}
    unknown = sorted(set(values) - set(definitions))
    if unknown:
        raise InvalidInput(f"Unknown custom field(s): {', '.join(unknown)}.", fields=unknown)
    if require_all:
        missing = sorted(k for k, d in definitions.items() if d.is_required and values.get(k) in (None, "", []))
        if missing:
            raise InvalidInput(f"Required custom field(s) missing: {', '.join(missing)}.", fields=missing)
    return {key: _coerce(definitions[key], value) for key, value in values.items()}


def _coerce(definition: Any, value: Any) -> Any:  # noqa: C901 - one branch per field type reads best
    if value is None:
        return None
    kind, key = definition.field_type, definition.key
    bad = InvalidInput(f"{value!r} is not a valid {kind} for {key}.", field=key)
    if kind in ("text", "textarea"):
        return str(value)
    if kind in ("number", "money"):
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise bad from exc
        if not number.is_finite():
            raise bad
        if kind == "money":
            return str(number.quantize(Decimal("0.01")))
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError as exc:
            raise bad from exc
    if kind == "checkbox":
        if isinstance(value, bool):
            return value
        raise bad
    if kind == "select":
        if value not in definition.options:
            raise InvalidInput(f"{value!r} is not one of {definition.options} for {key}.", field=key)
        return value
    if kind == "multi_select":
        chosen = value if isinstance(value, list) else [value]
        if not all(v in definition.options for v in chosen):
            raise InvalidInput(f"{value!r} must be chosen from {definition.options} for {key}.", field=key)
        return list(dict.fromkeys(chosen))
    if kind == "email":
        return normalize_email(str(value))
    if kind == "phone":
        return normalize_phone(str(value))
    if kind == "url":
        parsed = urlparse(str(value))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise bad
        return str(value)
    raise bad


def _clean(session: Session, sub_account_id: uuid.UUID, fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    unknown = sorted(set(fields) - EDITABLE)
    if unknown:
        raise InvalidInput(f"These fields cannot be set: {', '.join(unknown)}.", fields=unknown)
    clean = dict(fields)
    if "email" in clean:
        clean["email"] = normalize_email(clean["email"])
    if "phone" in clean:
        clean["phone"] = normalize_phone(clean["phone"])
    if clean.get("lifecycle_stage") not in (None, *LIFECYCLE_STAGES):
        raise InvalidInput(f"lifecycle_stage must be one of {', '.join(LIFECYCLE_STAGES)}.", field="lifecycle_stage")
    if "custom_fields" in clean:
        clean["custom_fields"] = validate_custom_fields(session=session, sub_account_id=sub_account_id,
                                                        values=clean["custom_fields"] or {}, require_all=creating)
    return clean


def create_contact(*, session: Session, sub_account_id: uuid.UUID, fields: dict[str, Any]) -> Contact:
    """Create a contact; a duplicate email or phone in the sub-account is a 409 from the database."""
    sub_account = session.get(SubAccount, sub_account_id)
    if sub_account is None:
        raise NotFound("No such sub-account.")
    clean = _clean(session, sub_account_id, fields, creating=True)
    if not any(clean.get(k) for k in ("first_name", "last_name", "email", "phone")):
        raise InvalidInput("A contact needs at least a name, an email or a phone number.")
    now = datetime.now(UTC)
    contact = Contact(sub_account_id=sub_account_id, agency_id=sub_account.agency_id,
                      initial_contact_date=clean.pop("initial_contact_date", now), **clean)
    session.add(contact)
    session.flush()
    from services import webhooks

    webhooks.emit(session, sub_account_id, "contact.created", {
        "contact_id": str(contact.id), "first_name": contact.first_name, "last_name": contact.last_name,
        "email": contact.email, "phone": contact.phone, "source": contact.source})
    from services import workflows

    workflows.fire(session, sub_account_id, "contact_created", contact.id, {"source": contact.source})
    return contact


def match_or_create_contact(*, session: Session, sub_account_id: uuid.UUID, email: str | None = None,
                            phone: str | None = None, defaults: dict[str, Any] | None = None
                            ) -> tuple[Contact, bool]:
    """The contact an inbound message or form belongs to, created if new; safe under concurrent inbound."""
    existing = find_contact(session=session, email=email, phone=phone)
    if existing is not None:
        missing = {k: v for k, v in (("email", email), ("phone", phone)) if v and not getattr(existing, k)}
        if missing:
            try:
                with session.begin_nested():
                    update_contact(session=session, contact_id=existing.id, changes=missing)
            except IntegrityError:
                session.refresh(existing)  # that identity belongs to another contact: leave it there
        return existing, False
    try:
        with session.begin_nested():
            contact = create_contact(session=session, sub_account_id=sub_account_id,
                                     fields={**(defaults or {}), "email": email, "phone": phone})
        return contact, True
    except IntegrityError:
        # a concurrent request created it between our lookup and insert: theirs is the one
        found = find_contact(session=session, email=email, phone=phone)
        if found is None:
            raise
        return found, False


def update_contact(*, session: Session, contact_id: uuid.UUID, changes: dict[str, Any]) -> Contact:
    """Apply changes (custom_fields are merged key by key; None removes a key)."""
    contact = get_contact_or_raise(session=session, contact_id=contact_id)
    clean = _clean(session, contact.sub_account_id, changes, creating=False)
    if "custom_fields" in clean:
        merged = {**contact.custom_fields, **clean.pop("custom_fields")}
        contact.custom_fields = {k: v for k, v in merged.items() if v is not None}
    for key, value in clean.items():
        setattr(contact, key, value)
    session.flush()
    return contact


def soft_delete_contact(*, session: Session, contact_id: uuid.UUID) -> None:
    """Hide a contact (recoverable); its email and phone become free for a new contact."""
    get_contact_or_raise(session=session, contact_id=contact_id).deleted_at = datetime.now(UTC)
    session.flush()


def add_tag(*, session: Session, contact_id: uuid.UUID, name: str) -> Tag:
    """Tag a contact, creating the tag on first use (names match case-insensitively)."""
    contact = get_contact_or_raise(session=session, contact_id=contact_id)
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("A tag needs a name.", field="name")
    tag = session.scalar(select(Tag).where(func.lower(Tag.name) == name.lower(), Tag.deleted_at.is_(None)))
    if tag is None:
        tag = Tag(sub_account_id=contact.sub_account_id, name=name)
        session.add(tag)
        session.flush()
    added = session.execute(pg_insert(ContactTag).values(contact_id=contact.id, tag_id=tag.id,
                                                         sub_account_id=contact.sub_account_id)
                            .on_conflict_do_nothing().returning(ContactTag.contact_id)).first()
    if added is not None:  # newly tagged: workflows waiting for this tag start
        from services import workflows

        workflows.fire(session, contact.sub_account_id, "tag_added", contact.id, {"tag": tag.name})
    return tag


def remove_tag(*, session: Session, contact_id: uuid.UUID, name: str) -> bool:
    """Untag a contact; False when it did not carry the tag."""
    get_contact_or_raise(session=session, contact_id=contact_id)
    tag_ids = select(Tag.id).where(func.lower(Tag.name) == name.strip().lower())
    result = session.execute(delete(ContactTag).where(ContactTag.contact_id == contact_id,
                                                       ContactTag.tag_id.in_(tag_ids)))
    removed = bool(result.rowcount)  # type: ignore[attr-defined]
    if removed:
        from services import workflows

        contact = session.get(Contact, contact_id)
        assert contact is not None
        workflows.fire(session, contact.sub_account_id, "tag_removed", contact_id, {"tag": name.strip()})
    return removed


def contact_tags(*, session: Session, contact_id: uuid.UUID) -> list[str]:
    """The contact's tag names, alphabetically."""
    return list(session.scalars(select(Tag.name).join(ContactTag, ContactTag.tag_id == Tag.id)
                                .where(ContactTag.contact_id == contact_id).order_by(Tag.name)))


def add_note(*, session: Session, contact_id: uuid.UUID, body: str, user_id: uuid.UUID | None = None) -> Note:
    """Attach a note to a contact."""
    contact = get_contact_or_raise(session=session, contact_id=contact_id)
    if not body.strip():
        raise InvalidInput("A note needs some text.", field="body")
    note = Note(sub_account_id=contact.sub_account_id, contact_id=contact.id, body=body.strip(), user_id=user_id)
    session.add(note)
    session.flush()
    return note


def create_task(*, session: Session, contact_id: uuid.UUID, title: str, due_at: datetime | None = None,
                assigned_user_id: uuid.UUID | None = None, description: str | None = None,
                priority: str = "normal", created_by_user_id: uuid.UUID | None = None) -> Task:
    """A to-do about a contact, optionally due at a time and assigned to a user."""
    contact = get_contact_or_raise(session=session, contact_id=contact_id)
    if due_at is not None and due_at.tzinfo is None:
        raise InvalidInput("due_at needs a timezone.", field="due_at")
    task = Task(sub_account_id=contact.sub_account_id, contact_id=contact.id, title=title.strip(), due_at=due_at,
                assigned_user_id=assigned_user_id, description=description, priority=priority,
                created_by_user_id=created_by_user_id)
    session.add(task)
    session.flush()
    return task


def set_dnd(*, session: Session, contact_id: uuid.UUID, channel: str, enabled: bool, reason: str | None = None
            ) -> Contact:
    """Turn do-not-disturb on or off for one channel ("all" for every channel)."""
    contact = get_contact_or_raise(session=session, contact_id=contact_id)
    if channel == "all":
        contact.dnd_all = enabled
    elif channel in CHANNEL_TYPES:
        channels = dict(contact.dnd_channels)
        if enabled:
            channels[channel] = {"reason": reason, "at": datetime.now(UTC).isoformat()}
        else:
            channels.pop(channel, None)
        contact.dnd_channels = channels
    else:
        raise InvalidInput(f"Unknown channel {channel!r}.", field="channel")
    session.flush()
    return contact


def is_dnd(contact: Contact, channel: str) -> bool:
    """Whether the contact must not be messaged on `channel`."""
    return contact.dnd_all or channel in contact.dnd_channels


@dataclass(frozen=True)
class ContactPage:
    """One page of a contact search."""

    items: list[Contact]
    total: int
    page: int
    page_size: int


def search_contacts(*, session: Session, query: str | None = None, tags: list[str] | None = None,
                    lifecycle_stage: str | None = None, custom: dict[str, Any] | None = None,
                    assigned_user_id: uuid.UUID | None = None, page: int = 1, page_size: int = 50) -> ContactPage:
    """Filter by words (name, email, phone, company; prefixes match), all of `tags`, stage, custom-field values."""
    if page < 1 or not 1 <= page_size <= 200:
        raise InvalidInput("page starts at 1 and page_size is 1 to 200.")
    stmt: Select[Any] = select(Contact).where(Contact.deleted_at.is_(None))
    if query and query.strip():
        stmt = stmt.where(_text_match(query.strip()))
    for name in tags or []:
        stmt = stmt.where(select(ContactTag.contact_id).join(Tag, Tag.id == ContactTag.tag_id).where(
            ContactTag.contact_id == Contact.id, func.lower(Tag.name) == name.lower()).exists())
    if lifecycle_stage:
        stmt = stmt.where(Contact.lifecycle_stage == lifecycle_stage)
    if assigned_user_id:
        stmt = stmt.where(Contact.assigned_user_id == assigned_user_id)
    if custom:
        stmt = stmt.where(Contact.custom_fields.contains(custom))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items = session.scalars(stmt.order_by(Contact.created_at.desc(), Contact.id)
                            .offset((page - 1) * page_size).limit(page_size)).all()
    return ContactPage(items=list(items), total=total, page=page, page_size=page_size)


def _text_match(query: str) -> Any:
    """Words match names and company by prefix; an address-like query matches emails by prefix; four or more
    digits match phone numbers anywhere."""
    words = "".join(c if c.isalnum() else " " for c in query).split()
    options: list[Any] = []
    if words:
        terms = " & ".join(f"{w}:*" for w in words)
        options.append(Contact.search_tsv.op("@@")(func.to_tsquery(text("'simple'::regconfig"), terms)))
    if " " not in query:
        options.append(Contact.email_normalized.startswith(query.lower(), autoescape=True))
    digits = "".join(c for c in query if c.isdigit())
    if len(digits) >= 4:
        options.append(Contact.phone.contains(digits))
    return or_(*options)


def merge_contacts(*, session: Session, keep_id: uuid.UUID, merge_id: uuid.UUID) -> Contact:
    """Fold a duplicate into `keep`: every row pointing at the duplicate moves over, empty fields are filled,
    custom fields and tags unite (keep wins on conflict), and the duplicate is soft-deleted."""
    if keep_id == merge_id:
        raise InvalidInput("A contact cannot be merged into itself.")
    keep = get_contact_or_raise(session=session, contact_id=keep_id)
    dup = get_contact_or_raise(session=session, contact_id=merge_id)
    identity = {"email": dup.email, "phone": dup.phone}
    dup.deleted_at = datetime.now(UTC)  # first, so its email and phone are free for `keep`
    session.flush()
    session.execute(pg_insert(ContactTag).from_select(
        ["contact_id", "tag_id", "sub_account_id"],
        select(literal(keep.id, Uuid()), ContactTag.tag_id, ContactTag.sub_account_id)
        .where(ContactTag.contact_id == dup.id)).on_conflict_do_nothing())
    session.execute(delete(ContactTag).where(ContactTag.contact_id == dup.id))
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if table.name != "contact_tags" and any(fk.column.table.name == "contacts" and fk.column.name == "id"
                                                    for fk in column.foreign_keys):
                session.execute(update(table).where(column == dup.id).values({column.name: keep.id}))
    session.expire_all()  # the bulk updates bypassed the identity map: reload whatever is read next
    for field in ("first_name", "last_name", "company_name", "timezone", "date_of_birth", "lead_source", "source",
                  "campaign_id", "assigned_user_id"):
        if getattr(keep, field) is None and getattr(dup, field) is not None:
            setattr(keep, field, getattr(dup, field))
    for field, value in identity.items():
        if getattr(keep, field) is None and value:
            setattr(keep, field, value)
    keep.custom_fields = {**dup.custom_fields, **keep.custom_fields}
    keep.lead_score = max(keep.lead_score, dup.lead_score)
    session.flush()
    return keep


def convert_to_customer(*, session: Session, contact_id: uuid.UUID,
                        converted_client_id: uuid.UUID | None = None) -> Contact:
    """A lead becomes a customer (and, for an agency's own leads, the client sub-account it became)."""
    contact = get_contact_or_raise(session=session, contact_id=contact_id)
    contact.lifecycle_stage, contact.qualification_status = "customer", "qualified"
    contact.converted_at = contact.converted_at or datetime.now(UTC)
    contact.conversion_probability = Decimal(1)
    if converted_client_id is not None:
        contact.converted_client_id = converted_client_id
    session.flush()
    return contact
