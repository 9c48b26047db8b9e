"""The live inbox of a sub-account: views, a conversation, and the staff actions (see services/inbox.py).
The same routes serve the app's inbox page (session cookie) and API clients (bearer key)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Tenant, sub_account
from api.params import ChannelType
from services import inbox

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}/inbox", tags=["Inbox"])
Read = Annotated[Tenant, Depends(sub_account("conversations.read"))]
Write = Annotated[Tenant, Depends(sub_account("conversations.write"))]
Claim = Annotated[Tenant, Depends(sub_account("inbox.claim"))]
Manage = Annotated[Tenant, Depends(sub_account("settings.manage"))]


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=4000)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["manual", "round_robin", "skill"] = "manual"
    user_id: uuid.UUID | None = None
    skill: str | None = Field(None, max_length=64)


class Suggestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["approve", "discard"]
    body: str | None = Field(None, max_length=4000)


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    remove: bool = False


@router.get("/conversations", summary="An inbox view: needs_human (oldest first), mine, unassigned, all, resolved")
def conversations(tenant: Read, view: Literal["needs_human", "mine", "unassigned", "all", "resolved"] = "all",
                  channel: ChannelType | None = None, tag: Annotated[str | None, Query(max_length=100)] = None,
                  assignee: uuid.UUID | None = None,
                  q: str | None = Query(None, max_length=200)) -> list[dict[str, Any]]:
    with tenant.session() as session:
        return inbox.list_conversations(session=session, view=view, user_id=tenant.user_id, channel=channel,
                                        tag=tag, assignee=assignee, q=q)


@router.get("/staff", summary="The people who work this inbox (for assigning)")
def staff(tenant: Read) -> list[dict[str, Any]]:
    with tenant.session() as session:
        return [{"id": str(u.id), "name": u.name, "available": u.is_available, "skills": list(u.skills or [])}
                for u in inbox.staff_of(session, tenant.sub_account_id)]


@router.get("/conversations/{conversation_id}", summary="Transcript, contact card, handoff and AI suggestion")
def conversation(tenant: Read, conversation_id: uuid.UUID) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.conversation(session=session, conversation_id=conversation_id)


@router.post("/conversations/{conversation_id}/claim", summary="Claim the open handoff (409 if a colleague has)")
def claim(tenant: Claim, conversation_id: uuid.UUID) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.claim(session=session, conversation_id=conversation_id, user_id=tenant.user_id)


@router.post("/conversations/{conversation_id}/assign", summary="Assign: manual, round robin, or by skill tag")
def assign(tenant: Write, conversation_id: uuid.UUID, body: Assignment) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.assign(session=session, conversation_id=conversation_id, user_id=body.user_id,
                            strategy=body.strategy, skill=body.skill)


@router.post("/conversations/{conversation_id}/reply", status_code=201,
             summary="Reply to the lead on the conversation's channel (the AI pauses)")
def reply(tenant: Write, conversation_id: uuid.UUID, body: Text) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.reply(session=session, conversation_id=conversation_id, user_id=tenant.user_id, body=body.body)


@router.post("/conversations/{conversation_id}/notes", status_code=201, summary="An internal note")
def note(tenant: Write, conversation_id: uuid.UUID, body: Text) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.note(session=session, conversation_id=conversation_id, user_id=tenant.user_id, body=body.body)


@router.post("/conversations/{conversation_id}/suggestions/{message_id}",
             summary="Approve (optionally edited) or discard the AI's suggested reply")
def suggestion(tenant: Write, conversation_id: uuid.UUID, message_id: uuid.UUID, body: Suggestion) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.decide_suggestion(session=session, conversation_id=conversation_id, message_id=message_id,
                                       user_id=tenant.user_id, action=body.action, body=body.body)


@router.post("/conversations/{conversation_id}/tags", summary="Tag or untag the lead")
def tag(tenant: Write, conversation_id: uuid.UUID, body: TagIn) -> list[str]:
    with tenant.session() as session:
        return inbox.tag(session=session, conversation_id=conversation_id, name=body.name, remove=body.remove)


@router.post("/conversations/{conversation_id}/resolve", summary="Resolve the conversation and its handoff")
def resolve(tenant: Write, conversation_id: uuid.UUID) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.resolve(session=session, conversation_id=conversation_id, user_id=tenant.user_id)


@router.post("/conversations/{conversation_id}/return-to-ai",
             summary="Give the conversation back to the AI: the waiting graph resumes with what staff said")
def return_to_ai(tenant: Write, conversation_id: uuid.UUID) -> dict[str, Any]:
    from agents.lead.runner import return_to_ai as resume
    from channels import realtime

    with tenant.session() as session:
        inbox.conversation(session=session, conversation_id=conversation_id)  # 404 outside this sub-account
    result = resume(agency_id=tenant.scope.agency_id, sub_account_id=tenant.sub_account_id,
                    conversation_id=conversation_id)
    realtime.publish([realtime.sub_channel(tenant.sub_account_id)],
                     {"type": "handoff.returned", "conversation_id": str(conversation_id)})
    return {"conversation_id": str(conversation_id), "decision": result.decision}


class CannedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shortcut: str = Field(min_length=1, max_length=32)
    title: str = Field("", max_length=120)
    body: str = Field(min_length=1, max_length=2000)


@router.get("/canned-responses", summary="Saved replies of the sub-account")
def canned(tenant: Read) -> list[dict[str, Any]]:
    with tenant.session() as session:
        return inbox.canned_responses(session=session)


@router.put("/canned-responses", summary="Create a saved reply, or replace the one with the same shortcut")
def save_canned(tenant: Manage, body: CannedIn) -> dict[str, Any]:
    with tenant.session() as session:
        return inbox.save_canned_response(session=session, sub_account_id=tenant.sub_account_id,
                                          shortcut=body.shortcut, title=body.title, body=body.body)


@router.delete("/canned-responses/{canned_id}", status_code=204, summary="Remove a saved reply")
def delete_canned(tenant: Manage, canned_id: uuid.UUID) -> None:
    with tenant.session() as session:
        inbox.delete_canned_response(session=session, canned_id=canned_id)
