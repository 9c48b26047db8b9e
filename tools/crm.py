"""CRM tools. A lead agent edits only the contact of its own conversation; staff tools see the tenant's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from models.crm import Contact
from services import crm
from tools.base import contact_of, failure, guarded
from tools.context import AgentContext, session_for


def _contact_card(contact: Any, tags: list[str]) -> dict[str, Any]:
    return {"id": contact.id, "name": contact.name, "email": contact.email, "phone": contact.phone,
            "lifecycle_stage": contact.lifecycle_stage, "lead_score": contact.lead_score,
            "qualification_status": contact.qualification_status, "custom_fields": contact.custom_fields,
            "tags": tags, "do_not_disturb": sorted(contact.dnd_channels) + (["all"] if contact.dnd_all else [])}


class SearchContactsArgs(BaseModel):
    query: str | None = Field(default=None, description="Words of a name, an email or part of a phone number")
    tag: str | None = Field(default=None, description="Only contacts carrying this tag")
    lifecycle_stage: str | None = Field(default=None, description="lead, customer, ...")
    limit: int = Field(default=10, ge=1, le=50, description="How many to return")


@tool(args_schema=SearchContactsArgs)
@guarded("reporting")
def search_contacts(query: str | None = None, tag: str | None = None, lifecycle_stage: str | None = None,
                    limit: int = 10, *, config: RunnableConfig) -> dict[str, Any]:
    """Find contacts of this business (staff questions such as 'how many Meta leads haven't booked')."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        page = crm.search_contacts(session=session, query=query, tags=[tag] if tag else None,
                                   lifecycle_stage=lifecycle_stage, page_size=limit)
        return {"total": page.total, "contacts": [
            {"id": c.id, "name": c.name, "email": c.email, "phone": c.phone, "stage": c.lifecycle_stage}
            for c in page.items]}


class NoArgs(BaseModel):
    pass


@tool(args_schema=NoArgs)
@guarded("qualify_leads")
def get_contact(*, config: RunnableConfig) -> dict[str, Any]:
    """What we know about the lead in this conversation: name, stage, custom fields, tags, opt-outs."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    with session_for(ctx, config) as session:
        contact = crm.get_contact_or_raise(session=session, contact_id=contact_id)
        return {"contact": _contact_card(contact, crm.contact_tags(session=session, contact_id=contact.id))}


class UpdateContactArgs(BaseModel):
    first_name: str | None = Field(default=None, description="The lead's first name, if they told you")
    last_name: str | None = Field(default=None, description="The lead's last name, if they told you")
    email: str | None = Field(default=None, description="An email address the lead gave")
    phone: str | None = Field(default=None, description="A phone number the lead gave, any format")
    custom_fields: dict[str, Any] | None = Field(
        default=None, description="Answers to qualification questions, keyed by the field key the question names")
    qualification_status: str | None = Field(default=None,
                                              description="new, contacted, qualified, unqualified or disqualified")


@tool(args_schema=UpdateContactArgs)
@guarded("qualify_leads")
def update_contact(*, config: RunnableConfig, **changes: Any) -> dict[str, Any]:
    """Save what the lead told you about themselves (name, email, phone, qualification answers)."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    fields = {k: v for k, v in changes.items() if v is not None}
    if not fields:
        return failure("nothing_to_save", "Give at least one field to save.")
    try:
        with session_for(ctx, config) as session:
            contact = crm.update_contact(session=session, contact_id=contact_id, changes=fields)
            return {"saved": sorted(fields), "contact": _contact_card(
                contact, crm.contact_tags(session=session, contact_id=contact.id))}
    except IntegrityError:  # the email or phone is another contact's: nothing saved, and no hint of whose
        return failure("not_saved", "That email or phone number can't be saved on this contact.")


class TagArgs(BaseModel):
    tag: str = Field(description="Tag name, e.g. 'Hot lead'")


@tool(args_schema=TagArgs)
@guarded("qualify_leads")
def add_tag(tag: str, *, config: RunnableConfig) -> dict[str, Any]:
    """Tag the lead of this conversation."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    with session_for(ctx, config) as session:
        crm.add_tag(session=session, contact_id=contact_id, name=tag)
        return {"tags": crm.contact_tags(session=session, contact_id=contact_id)}


class NoteArgs(BaseModel):
    body: str = Field(description="What staff should know, in one or two sentences")


@tool(args_schema=NoteArgs)
@guarded("qualify_leads")
def add_note(body: str, *, config: RunnableConfig) -> dict[str, Any]:
    """Leave a note for staff on the lead of this conversation."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    with session_for(ctx, config) as session:
        note = crm.add_note(session=session, contact_id=contact_id, body=body, user_id=ctx.user_id)
        return {"note_id": note.id}


class TaskArgs(BaseModel):
    title: str = Field(description="What a staff member must do, e.g. 'Call back about the quote'")
    due_at: datetime | None = Field(default=None, description="When it is due, ISO 8601 with offset")


@tool(args_schema=TaskArgs)
@guarded("qualify_leads")
def create_task(title: str, due_at: datetime | None = None, *, config: RunnableConfig) -> dict[str, Any]:
    """Ask staff to follow up on this lead."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    with session_for(ctx, config) as session:
        task = crm.create_task(session=session, contact_id=contact_id, title=title, due_at=due_at)
        return {"task_id": task.id, "due_at": task.due_at}


__all__ = ["add_note", "add_tag", "create_task", "get_contact", "search_contacts", "update_contact"]


class UnbookedLeadsArgs(BaseModel):
    source: str | None = Field(default=None, description="Lead source to filter on, e.g. 'Meta', 'Google' "
                                                         "(matches anywhere in the source, any case)")


@tool(args_schema=UnbookedLeadsArgs)
@guarded("reporting")
def unbooked_leads(source: str | None = None, *, config: RunnableConfig) -> dict[str, Any]:
    """How many leads (optionally from one source) have never booked an appointment, with a few of them."""
    from models.calendars import Appointment

    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        booked = select(Appointment.contact_id).where(Appointment.deleted_at.is_(None),
                                                      Appointment.contact_id.is_not(None))
        where = [Contact.deleted_at.is_(None), Contact.lifecycle_stage == "lead", Contact.id.not_in(booked)]
        if source:
            where.append(Contact.lead_source.ilike(f"%{source}%"))
        total = session.scalar(select(func.count()).select_from(Contact).where(*where)) or 0
        sample = session.execute(select(Contact.first_name, Contact.last_name, Contact.lead_source).where(*where)
                                 .order_by(Contact.created_at.desc()).limit(5)).all()
        return {"source": source, "count": total,
                "examples": [{"name": f"{first or ''} {last or ''}".strip(), "source": origin}
                             for first, last, origin in sample]}
