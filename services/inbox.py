"""The staff inbox of one sub-account: the views (needs-human, mine, unassigned, all, resolved), a conversation
with its contact card, and the actions (claim, assign, reply, internal note, suggestion approve/edit/discard,
tag, resolve, return to AI). Every change is announced on the sub-account's realtime channel after commit,
so colleagues' screens follow without a reload. Runs in a session scoped to the sub-account (RLS)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from channels import realtime
from channels.outbound import queue_send
from models.calendars import LIVE_APPOINTMENT_STATUSES, Appointment
from models.conversations import CannedResponse, Channel, Conversation, ConversationAIConfig, Handoff, Message
from models.crm import Contact, ContactTag, Tag
from models.db import after_commit
from models.pipelines import Opportunity
from models.tenancy import User, UserAgencyMembership, UserSubAccountMembership
from services import crm
from services.errors import Conflict, InvalidInput, NotFound
from services.handoff import staff_reply

VIEWS = ("needs_human", "mine", "unassigned", "all", "resolved")
PAGE = 50


def announce(session: Session, sub_account_id: uuid.UUID, event: dict[str, Any]) -> None:
    """Publish an inbox event to the sub-account's staff once the transaction commits."""
    after_commit(session, lambda: realtime.publish([realtime.sub_channel(sub_account_id)], event))


def list_conversations(*, session: Session, view: str, user_id: uuid.UUID, channel: str | None = None,
                       tag: str | None = None, assignee: uuid.UUID | None = None, q: str | None = None,
                       now: datetime | None = None) -> list[dict[str, Any]]:
    """One inbox view, newest activity first (needs-human: the longest wait first), with the last message,
    the open handoff and its wait time."""
    if view not in VIEWS:
        raise InvalidInput(f"view must be one of {', '.join(VIEWS)}.", field="view")
    now = now or datetime.now(UTC)
    handoff = select(Handoff).where(Handoff.resolved_at.is_(None)).subquery()
    query = (select(Conversation, Contact, Channel.channel_type, handoff.c.id, handoff.c.reason,
                    handoff.c.requested_at, handoff.c.claimed_by, handoff.c.summary)
             .join(Contact, Contact.id == Conversation.contact_id)
             .join(Channel, Channel.id == Conversation.channel_id)
             .outerjoin(handoff, handoff.c.conversation_id == Conversation.id)
             .where(Conversation.deleted_at.is_(None)))
    if view == "needs_human":
        query = query.where(handoff.c.id.is_not(None)).order_by(handoff.c.requested_at)
    else:
        if view == "mine":
            query = query.where(Conversation.assigned_user_id == user_id, Conversation.status != "resolved")
        elif view == "unassigned":
            query = query.where(Conversation.assigned_user_id.is_(None), Conversation.status != "resolved")
        elif view == "all":
            query = query.where(Conversation.status != "resolved")
        else:
            query = query.where(Conversation.status == "resolved")
        query = query.order_by(Conversation.last_message_at.desc().nulls_last())
    if channel:
        query = query.where(Channel.channel_type == channel)
    if assignee:
        query = query.where(Conversation.assigned_user_id == assignee)
    if tag:
        query = query.where(Conversation.contact_id.in_(
            select(ContactTag.contact_id).join(Tag, Tag.id == ContactTag.tag_id)
            .where(func.lower(Tag.name) == tag.strip().lower())))
    if q:
        like = f"%{q.strip()}%"
        query = query.where(or_(Contact.name.ilike(like), Contact.email.ilike(like), Contact.phone.ilike(like),
                                Conversation.id.in_(select(Message.conversation_id).where(Message.body.ilike(like)))))
    rows = session.execute(query.limit(PAGE)).all()
    last = _last_messages(session, [r[0].id for r in rows])
    return [{
        "id": str(conv.id), "status": conv.status, "channel": kind, "unread": conv.unread_count,
        "assigned_user_id": str(conv.assigned_user_id) if conv.assigned_user_id else None,
        "last_message_at": conv.last_message_at.isoformat() if conv.last_message_at else None,
        "contact": {"id": str(contact.id), "name": contact.name, "phone": contact.phone, "email": contact.email},
        "last_message": last.get(conv.id),
        "handoff": {"id": str(h_id), "reason": reason, "summary": summary, "requested_at": requested.isoformat(),
                    "wait_seconds": int((now - requested).total_seconds()),
                    "claimed_by": str(claimed) if claimed else None} if h_id else None,
    } for conv, contact, kind, h_id, reason, requested, claimed, summary in rows]


def _last_messages(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    if not ids:
        return {}
    ranked = select(Message.conversation_id, Message.body, Message.direction, Message.sender_type,
                    func.row_number().over(partition_by=Message.conversation_id,
                                           order_by=Message.created_at.desc()).label("n")
                    ).where(Message.conversation_id.in_(ids), Message.content_type != "note").subquery()
    return {row.conversation_id: {"body": row.body[:160], "direction": row.direction, "sender_type": row.sender_type}
            for row in session.execute(select(ranked).where(ranked.c.n == 1))}


def conversation(*, session: Session, conversation_id: uuid.UUID, now: datetime | None = None) -> dict[str, Any]:
    """Everything the conversation screen shows: transcript (with notes and the AI's pending suggestion),
    the contact card (tags, custom fields, opportunities, upcoming appointments) and the open handoff."""
    now = now or datetime.now(UTC)
    conv = _conversation(session, conversation_id)
    contact = session.get(Contact, conv.contact_id)
    channel = session.get(Channel, conv.channel_id)
    assert contact is not None and channel is not None
    messages = list(session.scalars(select(Message).where(Message.conversation_id == conv.id)
                                    .order_by(Message.created_at)))
    users = _user_names(session, {m.sender_id for m in messages if m.sender_type == "user" and m.sender_id})
    handoff = session.scalar(select(Handoff).where(Handoff.conversation_id == conv.id, Handoff.resolved_at.is_(None)))
    ai = session.scalar(select(ConversationAIConfig).where(ConversationAIConfig.conversation_id == conv.id))
    opportunities = session.scalars(select(Opportunity).where(Opportunity.contact_id == contact.id,
                                                              Opportunity.deleted_at.is_(None))).all()
    appointments = session.scalars(select(Appointment).where(
        Appointment.contact_id == contact.id, Appointment.start_time >= now,
        Appointment.status.in_(LIVE_APPOINTMENT_STATUSES)).order_by(Appointment.start_time).limit(5)).all()
    suggestion = next((m for m in reversed(messages) if m.status == "pending_approval"), None)
    return {
        "id": str(conv.id), "status": conv.status, "channel": channel.channel_type,
        "assigned_user_id": str(conv.assigned_user_id) if conv.assigned_user_id else None,
        "ai": {"active": ai.is_active, "mode": ai.mode} if ai else None,
        "contact": {"id": str(contact.id), "name": contact.name, "email": contact.email, "phone": contact.phone,
                    "tags": crm.contact_tags(session=session, contact_id=contact.id),
                    "custom_fields": contact.custom_fields or {}, "timezone": contact.timezone,
                    "opportunities": [{"id": str(o.id), "name": o.name, "status": o.status,
                                       "value": str(o.monetary_value)} for o in opportunities],
                    "appointments": [{"id": str(a.id), "title": a.title, "start": a.start_time.isoformat(),
                                      "status": a.status} for a in appointments]},
        "handoff": {"id": str(handoff.id), "reason": handoff.reason, "summary": handoff.summary,
                    "detail": handoff.reason_detail, "status": handoff.status,
                    "requested_at": handoff.requested_at.isoformat(),
                    "claimed_by": str(handoff.claimed_by) if handoff.claimed_by else None,
                    "claimed_by_name": _user_names(session, {handoff.claimed_by}).get(handoff.claimed_by)
                    if handoff.claimed_by else None} if handoff else None,
        "suggestion": {"id": str(suggestion.id), "body": suggestion.body} if suggestion else None,
        "messages": [{**realtime.message_payload(m), "sender_name": users.get(m.sender_id) if m.sender_id else None,
                      "error": m.error_message} for m in messages],
    }


def _conversation(session: Session, conversation_id: uuid.UUID) -> Conversation:
    conv = session.get(Conversation, conversation_id)
    if conv is None or conv.deleted_at is not None:
        raise NotFound("No such conversation.")
    return conv


def _user_names(session: Session, ids: set[Any]) -> dict[Any, str]:
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}


def claim(*, session: Session, conversation_id: uuid.UUID, user_id: uuid.UUID,
          now: datetime | None = None) -> dict[str, Any]:
    """Take the open handoff: one atomic update, so of two staff clicking at once exactly one wins; the other
    gets 409 naming who has it. The conversation is assigned to the claimer."""
    now = now or datetime.now(UTC)
    conv = _conversation(session, conversation_id)
    won = session.execute(update(Handoff).where(
        Handoff.conversation_id == conversation_id, Handoff.resolved_at.is_(None), Handoff.claimed_by.is_(None))
        .values(claimed_by=user_id, claimed_at=now, status="claimed").returning(Handoff.id)).scalar()
    if won is None:
        holder = session.scalar(select(Handoff.claimed_by).where(Handoff.conversation_id == conversation_id,
                                                                 Handoff.resolved_at.is_(None)))
        if holder is None:
            raise NotFound("This conversation is not waiting for a person.")
        if holder != user_id:
            raise Conflict(f"{_user_names(session, {holder}).get(holder, 'A colleague')} has already claimed it.",
                           claimed_by=str(holder))
    conv.assigned_user_id = user_id
    announce(session, conv.sub_account_id, {"type": "handoff.claimed", "conversation_id": str(conv.id),
                                            "claimed_by": str(user_id),
                                            "claimed_by_name": _user_names(session, {user_id}).get(user_id)})
    return {"conversation_id": str(conv.id), "claimed_by": str(user_id)}


def staff_of(session: Session, sub_account_id: uuid.UUID, *, available_only: bool = False) -> list[User]:
    """The people who work this sub-account's inbox: its members and the agency's staff."""
    members = select(UserSubAccountMembership.user_id).where(UserSubAccountMembership.sub_account_id == sub_account_id)
    agency = select(UserAgencyMembership.user_id)
    query = select(User).where(or_(User.id.in_(members), User.id.in_(agency)), User.deleted_at.is_(None),
                               User.active_status)
    if available_only:
        query = query.where(User.is_available)
    return list(session.scalars(query.order_by(User.created_at, User.id)))


def assign(*, session: Session, conversation_id: uuid.UUID, user_id: uuid.UUID | None = None,
           strategy: str = "manual", skill: str | None = None) -> dict[str, Any]:
    """Assign to a person (`manual`), to the next available person in turn (`round_robin`, fewest open
    conversations first, then longest since their last assignment), or to an available person with a skill
    tag (`skill`)."""
    conv = _conversation(session, conversation_id)
    staff = staff_of(session, conv.sub_account_id, available_only=strategy != "manual")
    if strategy == "manual":
        if user_id is None or user_id not in {u.id for u in staff}:
            raise InvalidInput("Pick someone who works this sub-account.", field="user_id")
        chosen = user_id
    elif strategy in ("round_robin", "skill"):
        pool = [u for u in staff if strategy == "round_robin" or (skill or "").lower() in
                [str(s).lower() for s in (u.skills or [])]]
        if not pool:
            raise Conflict("Nobody available" + (f" with the skill '{skill}'." if skill else "."))
        load = dict(session.execute(select(Conversation.assigned_user_id, func.count()).where(
            Conversation.assigned_user_id.in_([u.id for u in pool]), Conversation.status != "resolved",
            Conversation.deleted_at.is_(None)).group_by(Conversation.assigned_user_id)).all())
        chosen = min(pool, key=lambda u: (load.get(u.id, 0), str(u.id))).id
    else:
        raise InvalidInput("strategy must be manual, round_robin or skill.", field="strategy")
    conv.assigned_user_id = chosen
    announce(session, conv.sub_account_id, {"type": "conversation.assigned", "conversation_id": str(conv.id),
                                            "assigned_user_id": str(chosen)})
    return {"conversation_id": str(conv.id), "assigned_user_id": str(chosen)}


def reply(*, session: Session, conversation_id: uuid.UUID, user_id: uuid.UUID, body: str) -> dict[str, Any]:
    """A person answers the lead on the conversation's channel (the normal outbound path); the AI pauses on
    this conversation by itself."""
    message = staff_reply(session=session, conversation_id=conversation_id, user_id=user_id, body=body)
    conv = _conversation(session, conversation_id)
    conv.unread_count, conv.last_message_at = 0, datetime.now(UTC)
    if conv.assigned_user_id is None:
        conv.assigned_user_id = user_id
    return {"id": str(message.id), "status": message.status}


def note(*, session: Session, conversation_id: uuid.UUID, user_id: uuid.UUID, body: str) -> dict[str, Any]:
    """An internal note on the conversation: staff see it, the lead never does."""
    conv = _conversation(session, conversation_id)
    if not body.strip():
        raise InvalidInput("Write something.", field="body")
    message = Message(sub_account_id=conv.sub_account_id, conversation_id=conv.id, channel_id=conv.channel_id,
                      contact_id=conv.contact_id, direction="outbound", sender_type="user", sender_id=user_id,
                      content_type="note", body=body.strip(), status="sent")
    session.add(message)
    realtime.message_event(session, message)
    return {"id": str(message.id)}


def decide_suggestion(*, session: Session, conversation_id: uuid.UUID, message_id: uuid.UUID, user_id: uuid.UUID,
                      action: str, body: str | None = None) -> dict[str, Any]:
    """Suggestive mode: a person approves the AI's draft (optionally edited) and it is sent, or discards it.
    Nothing reaches the lead unapproved."""
    message = session.get(Message, message_id, with_for_update=True)
    if message is None or message.conversation_id != conversation_id:
        raise NotFound("No such suggestion.")
    if message.status != "pending_approval":
        raise Conflict(f"This suggestion was already {message.status}.")
    if action == "discard":
        message.status = "discarded"
        realtime.message_event(session, message, "message.updated")
        return {"id": str(message.id), "status": "discarded"}
    if action != "approve":
        raise InvalidInput("action must be approve or discard.", field="action")
    edited = (body or "").strip()
    message.metadata_ = {**(message.metadata_ or {}), "approved_by": str(user_id),
                         **({"original": message.body} if edited and edited != message.body else {})}
    message.body, message.status = edited or message.body, "queued"
    queue_send(session, message)
    return {"id": str(message.id), "status": "queued"}


def tag(*, session: Session, conversation_id: uuid.UUID, name: str, remove: bool = False) -> list[str]:
    """Tag (or untag) the conversation's contact."""
    conv = _conversation(session, conversation_id)
    if remove:
        crm.remove_tag(session=session, contact_id=conv.contact_id, name=name)
    else:
        crm.add_tag(session=session, contact_id=conv.contact_id, name=name)
    return crm.contact_tags(session=session, contact_id=conv.contact_id)


def resolve(*, session: Session, conversation_id: uuid.UUID, user_id: uuid.UUID,
            now: datetime | None = None) -> dict[str, Any]:
    """Close the conversation and its open handoff (a new message from the lead opens it again)."""
    now = now or datetime.now(UTC)
    conv = _conversation(session, conversation_id)
    conv.status, conv.resolved_at, conv.unread_count = "resolved", now, 0
    session.execute(update(Handoff).where(and_(Handoff.conversation_id == conv.id, Handoff.resolved_at.is_(None)))
                    .values(status="resolved", resolved_at=now, resolved_by=user_id))
    announce(session, conv.sub_account_id, {"type": "conversation.resolved", "conversation_id": str(conv.id)})
    return {"conversation_id": str(conv.id), "status": "resolved"}


def canned_responses(*, session: Session) -> list[dict[str, Any]]:
    """The sub-account's saved replies, by shortcut."""
    rows = session.scalars(select(CannedResponse).where(CannedResponse.deleted_at.is_(None))
                           .order_by(func.lower(CannedResponse.shortcut)))
    return [{"id": str(r.id), "shortcut": r.shortcut, "title": r.title, "body": r.body} for r in rows]


def save_canned_response(*, session: Session, sub_account_id: uuid.UUID, shortcut: str, title: str,
                         body: str) -> dict[str, Any]:
    """Create a saved reply, or replace the one with this shortcut (shortcuts match case-insensitively)."""
    shortcut = shortcut.strip().lstrip("/")
    if not shortcut or " " in shortcut:
        raise InvalidInput("A shortcut is one word, like 'hours'.", field="shortcut")
    if not body.strip():
        raise InvalidInput("A canned response needs text.", field="body")
    found = session.scalar(select(CannedResponse).where(func.lower(CannedResponse.shortcut) == shortcut.lower(),
                                                        CannedResponse.deleted_at.is_(None)))
    if found is None:
        found = CannedResponse(sub_account_id=sub_account_id, shortcut=shortcut, title=title.strip() or shortcut,
                               body=body.strip())
        session.add(found)
    else:
        found.title, found.body = title.strip() or shortcut, body.strip()
    session.flush()
    return {"id": str(found.id), "shortcut": found.shortcut, "title": found.title, "body": found.body}


def delete_canned_response(*, session: Session, canned_id: uuid.UUID) -> None:
    found = session.get(CannedResponse, canned_id)
    if found is None or found.deleted_at is not None:
        raise NotFound("No such canned response.")
    found.deleted_at = datetime.now(UTC)
