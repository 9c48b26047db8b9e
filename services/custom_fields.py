"""Custom-field definitions per sub-account, for contacts and for opportunities (text, number, date, select,
multi-select and the rest of FIELD_TYPES). Values are validated against these by `crm.validate_custom_fields`."""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from models.crm import FIELD_TYPES, Contact, ContactCustomField, CustomFieldDefinition
from models.pipelines import Opportunity, OpportunityCustomField
from services.errors import Conflict, InvalidInput, NotFound

Entity = Literal["contact", "opportunity"]
DEFINITIONS: dict[str, tuple[Any, Any]] = {  # (the definitions' mapped class, the owner's)
    "contact": (ContactCustomField, Contact),
    "opportunity": (OpportunityCustomField, Opportunity),
}
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CHOICE_TYPES = ("select", "multi_select")
CHANGEABLE = {"name", "description", "options", "is_required", "position"}


def _classes(entity: str) -> tuple[Any, Any]:
    if entity not in DEFINITIONS:
        raise InvalidInput("entity is contact or opportunity.", field="entity")
    return DEFINITIONS[entity]


def _check_options(field_type: str, options: list[Any]) -> list[str]:
    if field_type in CHOICE_TYPES:
        if not options or not all(isinstance(o, str) and o.strip() for o in options):
            raise InvalidInput(f"A {field_type} field needs a list of non-empty option strings.", field="options")
        if len(set(options)) != len(options):
            raise InvalidInput("Options must be distinct.", field="options")
        return list(options)
    if options:
        raise InvalidInput(f"A {field_type} field takes no options.", field="options")
    return []


def list_definitions(*, session: Session, entity: str) -> list[CustomFieldDefinition]:
    """The live definitions, in display order."""
    model, _ = _classes(entity)
    return list(session.scalars(select(model).where(model.deleted_at.is_(None)).order_by(model.position, model.key)))


def get_definition(*, session: Session, entity: str, key: str) -> CustomFieldDefinition:
    """One live definition by key, or NotFound."""
    model, _ = _classes(entity)
    found = session.scalar(select(model).where(model.key == key, model.deleted_at.is_(None)))
    if found is None:
        raise NotFound(f"No {entity} custom field {key!r}.")
    return found


def define(*, session: Session, sub_account_id: uuid.UUID, entity: str, key: str, name: str, field_type: str,
           options: list[Any] | None = None, is_required: bool = False, description: str | None = None,
           position: int | None = None) -> CustomFieldDefinition:
    """A new field; its key is a slug unique among the live fields of the sub-account (a duplicate is a 409)."""
    model, _ = _classes(entity)
    if not KEY.match(key):
        raise InvalidInput("key is lower-case letters, digits and _ , starting with a letter.", field="key")
    if field_type not in FIELD_TYPES:
        raise InvalidInput(f"field_type is one of {', '.join(FIELD_TYPES)}.", field="field_type")
    if session.scalar(select(model.id).where(model.key == key, model.deleted_at.is_(None))) is not None:
        raise Conflict(f"A {entity} custom field {key!r} already exists.", field="key")
    if position is None:
        position = (session.scalar(select(func.max(model.position)).where(model.deleted_at.is_(None))) or 0) + 1
    definition: CustomFieldDefinition = model(
        sub_account_id=sub_account_id, key=key, name=name, field_type=field_type,
        options=_check_options(field_type, options or []), is_required=is_required, description=description,
        position=position)
    session.add(definition)
    session.flush()
    return definition


def change(*, session: Session, entity: str, key: str, changes: dict[str, Any]) -> CustomFieldDefinition:
    """Rename, re-describe, re-order, require, or change the options of a field. The key and type are fixed
    (values were validated against them); an option still held by a record cannot be removed (409)."""
    unknown = sorted(set(changes) - CHANGEABLE)
    if unknown:
        raise InvalidInput(f"These cannot be changed: {', '.join(unknown)}.", fields=unknown)
    definition = get_definition(session=session, entity=entity, key=key)
    _, owner = _classes(entity)
    if "options" in changes:
        options = _check_options(definition.field_type, changes["options"] or [])
        for gone in set(definition.options) - set(options):
            held = owner.custom_fields[key]
            in_use = session.scalar(select(func.count()).select_from(owner).where(
                owner.deleted_at.is_(None),
                (held.astext == gone) | owner.custom_fields.contains({key: [gone]})))
            if in_use:
                raise Conflict(f"{in_use} record(s) still hold option {gone!r}.", field="options", option=gone)
        changes = {**changes, "options": options}
    for name, value in changes.items():
        setattr(definition, name, value)
    session.flush()
    return definition


def remove(*, session: Session, entity: str, key: str) -> int:
    """Retire a field and clear its value from every record; returns how many records held a value."""
    definition = get_definition(session=session, entity=entity, key=key)
    _, owner = _classes(entity)
    cleared = cast(CursorResult[Any], session.execute(update(owner).where(owner.custom_fields.has_key(key))
                   .values(custom_fields=owner.custom_fields.op("-")(key)))).rowcount
    definition.deleted_at = func.now()
    session.flush()
    return int(cleared or 0)
