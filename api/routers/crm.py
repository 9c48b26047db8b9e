"""Contacts, tags, notes, tasks, do-not-disturb, merge, conversion and custom-field definitions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Tenant, sub_account
from api.params import LifecycleStage, TimeZone
from api.schemas import row
from models.conversations import CHANNEL_TYPES
from services import crm, custom_fields
from services.errors import InvalidInput

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["CRM"])
Read = Annotated[Tenant, Depends(sub_account("contacts.read"))]
Write = Annotated[Tenant, Depends(sub_account("contacts.write"))]
# deleting a contact, or folding one into another, takes its history out of the CRM: not every editor may
Delete = Annotated[Tenant, Depends(sub_account("contacts.delete"))]
Channel = Literal[CHANNEL_TYPES]  # type: ignore[valid-type]


class ContactIn(BaseModel):
    """Fields of a contact; email and phone are normalized (E.164), custom fields validated."""

    model_config = ConfigDict(extra="forbid")
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    email: str | None = None
    phone: str | None = None
    company_name: str | None = Field(None, max_length=255)
    timezone: TimeZone | None = None
    date_of_birth: date | None = None
    address: str | None = None
    source: str | None = None
    lifecycle_stage: LifecycleStage | None = None
    lead_score: int | None = Field(None, ge=0, le=100)
    lead_source: str | None = None
    qualification_status: str | None = None
    conversion_probability: float | None = Field(None, ge=0, le=1)
    assigned_user_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    custom_fields: dict[str, Any] | None = None


class TagIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


class NoteIn(BaseModel):
    body: str = Field(min_length=1, max_length=20_000)


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=255)
    due_at: datetime | None = None
    assigned_user_id: uuid.UUID | None = None
    description: str | None = None
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


class DndIn(BaseModel):
    enabled: bool
    reason: str | None = None


class MergeIn(BaseModel):
    merge_id: uuid.UUID = Field(description="The duplicate to fold into this contact (it is soft-deleted).")


class FieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    name: str = Field(min_length=1, max_length=255)
    field_type: str
    options: list[str] = []
    is_required: bool = False
    description: str | None = None
    position: int | None = Field(None, ge=0, le=10_000)


class FieldChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=255)
    options: list[str] | None = None
    is_required: bool | None = None
    description: str | None = None
    position: int | None = Field(None, ge=0, le=10_000)


def _contact(session: Any, contact: Any) -> dict[str, Any]:
    return row(contact, extra={"tags": crm.contact_tags(session=session, contact_id=contact.id)})


def _custom_filters(raw: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise InvalidInput("custom_field filters look like key:value.", field="custom_field")
        out[key] = value
    return out


@router.get("/contacts", summary="Search contacts")
def search_contacts(t: Read, q: Annotated[str | None, Query(max_length=200)] = None,
                    tag: Annotated[list[str], Query()] = [],  # noqa: B006
                    stage: LifecycleStage | None = None,
                    custom_field: Annotated[list[str], Query(description="key:value, repeatable")] = [],  # noqa: B006
                    assigned_user_id: uuid.UUID | None = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1,
                    page_size: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    """Words match name, email, phone and company (prefixes too); every `tag` must be present."""
    with t.session() as s:
        found = crm.search_contacts(session=s, query=q, tags=tag or None, lifecycle_stage=stage,
                                    custom=_custom_filters(custom_field) or None, assigned_user_id=assigned_user_id,
                                    page=page, page_size=page_size)
        return {"items": [_contact(s, c) for c in found.items], "total": found.total, "page": found.page,
                "page_size": found.page_size}


@router.post("/contacts", status_code=201, summary="Create a contact")
def create_contact(t: Write, body: ContactIn) -> dict[str, Any]:
    """A duplicate email or phone in the sub-account is a 409."""
    with t.session() as s:
        contact = crm.create_contact(session=s, sub_account_id=t.sub_account_id,
                                     fields=body.model_dump(exclude_unset=True))
        return _contact(s, contact)


@router.get("/contacts/{contact_id}", summary="Get a contact")
def get_contact(t: Read, contact_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return _contact(s, crm.get_contact_or_raise(session=s, contact_id=contact_id))


@router.patch("/contacts/{contact_id}", summary="Update a contact")
def update_contact(t: Write, contact_id: uuid.UUID, body: ContactIn) -> dict[str, Any]:
    with t.session() as s:
        return _contact(s, crm.update_contact(session=s, contact_id=contact_id,
                                              changes=body.model_dump(exclude_unset=True)))


@router.delete("/contacts/{contact_id}", status_code=204, summary="Delete a contact (recoverable)")
def delete_contact(t: Delete, contact_id: uuid.UUID) -> Response:
    with t.session() as s:
        crm.soft_delete_contact(session=s, contact_id=contact_id)
    return Response(status_code=204)


@router.post("/contacts/{contact_id}/tags", status_code=201, summary="Tag a contact")
def add_tag(t: Write, contact_id: uuid.UUID, body: TagIn) -> dict[str, Any]:
    with t.session() as s:
        crm.add_tag(session=s, contact_id=contact_id, name=body.name)
        return {"tags": crm.contact_tags(session=s, contact_id=contact_id)}


@router.delete("/contacts/{contact_id}/tags/{name}", summary="Untag a contact")
def remove_tag(t: Write, contact_id: uuid.UUID, name: str) -> dict[str, Any]:
    with t.session() as s:
        crm.get_contact_or_raise(session=s, contact_id=contact_id)
        removed = crm.remove_tag(session=s, contact_id=contact_id, name=name)
        return {"removed": removed, "tags": crm.contact_tags(session=s, contact_id=contact_id)}


@router.post("/contacts/{contact_id}/notes", status_code=201, summary="Add a note")
def add_note(t: Write, contact_id: uuid.UUID, body: NoteIn) -> dict[str, Any]:
    with t.session() as s:
        return row(crm.add_note(session=s, contact_id=contact_id, body=body.body, user_id=t.user_id))


@router.post("/contacts/{contact_id}/tasks", status_code=201, summary="Create a task")
def create_task(t: Write, contact_id: uuid.UUID, body: TaskIn) -> dict[str, Any]:
    with t.session() as s:
        return row(crm.create_task(session=s, contact_id=contact_id, created_by_user_id=t.user_id,
                                   **body.model_dump()))


@router.put("/contacts/{contact_id}/dnd/{channel}", summary="Set do-not-disturb on one channel")
def set_dnd(t: Write, contact_id: uuid.UUID, channel: Channel, body: DndIn) -> dict[str, Any]:
    with t.session() as s:
        contact = crm.set_dnd(session=s, contact_id=contact_id, channel=channel, enabled=body.enabled,
                              reason=body.reason)
        return _contact(s, contact)


@router.post("/contacts/{contact_id}/merge", summary="Merge a duplicate into this contact")
def merge(t: Delete, contact_id: uuid.UUID, body: MergeIn) -> dict[str, Any]:
    with t.session() as s:
        return _contact(s, crm.merge_contacts(session=s, keep_id=contact_id, merge_id=body.merge_id))


@router.post("/contacts/{contact_id}/convert", summary="Convert a lead to a customer")
def convert(t: Write, contact_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return _contact(s, crm.convert_to_customer(session=s, contact_id=contact_id))


Entity = Literal["contact", "opportunity"]


@router.get("/custom-fields/{entity}", summary="List custom-field definitions")
def list_fields(t: Read, entity: Entity) -> list[dict[str, Any]]:
    with t.session() as s:
        return [row(d) for d in custom_fields.list_definitions(session=s, entity=entity)]


@router.post("/custom-fields/{entity}", status_code=201, summary="Define a custom field")
def define_field(t: Annotated[Tenant, Depends(sub_account("settings.manage"))], entity: Entity,
                 body: FieldIn) -> dict[str, Any]:
    """Types: text, textarea, number, money, date, checkbox, select, multi_select, email, phone, url.
    select / multi_select need options; the others take none."""
    with t.session() as s:
        return row(custom_fields.define(session=s, sub_account_id=t.sub_account_id, entity=entity,
                                        **body.model_dump()))


@router.patch("/custom-fields/{entity}/{key}", summary="Change a custom field")
def change_field(t: Annotated[Tenant, Depends(sub_account("settings.manage"))], entity: Entity, key: str,
                 body: FieldChange) -> dict[str, Any]:
    """Key and type are fixed; an option still held by a record cannot be removed (409)."""
    with t.session() as s:
        return row(custom_fields.change(session=s, entity=entity, key=key,
                                        changes=body.model_dump(exclude_unset=True)))


@router.delete("/custom-fields/{entity}/{key}", summary="Retire a custom field and clear its values")
def remove_field(t: Annotated[Tenant, Depends(sub_account("settings.manage"))], entity: Entity,
                 key: str) -> dict[str, Any]:
    with t.session() as s:
        return {"cleared": custom_fields.remove(session=s, entity=entity, key=key)}
