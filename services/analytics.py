"""Analytics events (the seed's analytics_events): what leads do, recorded as it happens (page views from the
site's widget script, messages, bookings, form submissions), with the seed's two queries: the conversion
funnel and a contact's journey."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.activity import AnalyticsEvent
from services.errors import InvalidInput

CATEGORIES = {"page_viewed": "engagement", "form_submitted": "conversion", "message_received": "engagement",
              "appointment_booked": "conversion", "invoice_paid": "revenue"}


def record(session: Session, sub_account_id: uuid.UUID, event_name: str, *, contact_id: uuid.UUID | None = None,
           properties: dict[str, Any] | None = None, source: str | None = None,
           session_id: str | None = None) -> None:
    """One event, in the caller's transaction."""
    session.add(AnalyticsEvent(sub_account_id=sub_account_id, contact_id=contact_id, event_name=event_name[:100],
                               event_category=CATEGORIES.get(event_name, "custom"), properties=properties or {},
                               source=source, session_id=(session_id or "")[:128] or None))


def record_many(session: Session, sub_account_id: uuid.UUID, event_name: str,
                events: list[tuple[uuid.UUID | None, dict[str, Any]]]) -> None:
    """Events of one name, each (contact, properties), in one statement in the caller's transaction."""
    from models.bulk import insert_rows

    insert_rows(session, AnalyticsEvent, [
        {"sub_account_id": sub_account_id, "contact_id": contact_id, "event_name": event_name[:100],
         "event_category": CATEGORIES.get(event_name, "custom"), "properties": properties}
        for contact_id, properties in events])


def funnel(*, session: Session, steps: list[str], start: datetime, end: datetime) -> dict[str, Any]:
    """An ordered funnel: how many contacts did step 1, then step 2 after it, and so on (each step after the
    previous one, within [start, end)), with the conversion from the step before and from the first."""
    if not 2 <= len(steps) <= 8:
        raise InvalidInput("A funnel has 2 to 8 steps.", field="steps")
    reached: dict[uuid.UUID, datetime] | None = None
    out: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        if reached is None:  # the first step: each contact's first time in the window
            reached = {contact_id: at for contact_id, at in session.execute(
                select(AnalyticsEvent.contact_id, func.min(AnalyticsEvent.created_at))
                                           .where(AnalyticsEvent.event_name == step,
                                                  AnalyticsEvent.contact_id.is_not(None),
                                                  AnalyticsEvent.created_at >= start, AnalyticsEvent.created_at < end)
                                           .group_by(AnalyticsEvent.contact_id)) if contact_id is not None}
        else:  # later steps: only after the step before, contact by contact
            reached = _after(session, step, reached, end)
        count = len(reached)
        out.append({"step": step, "contacts": count,
                    "from_previous": round(count / out[-1]["contacts"], 4) if i and out[-1]["contacts"] else None,
                    "from_first": round(count / out[0]["contacts"], 4) if i and out[0]["contacts"] else None})
    return {"start": start.isoformat(), "end": end.isoformat(), "steps": out}


def _after(session: Session, step: str, previous: dict[uuid.UUID, datetime],
           end: datetime) -> dict[uuid.UUID, datetime]:
    if not previous:
        return {}
    rows = session.execute(select(AnalyticsEvent.contact_id, AnalyticsEvent.created_at).where(
        AnalyticsEvent.event_name == step, AnalyticsEvent.contact_id.in_(list(previous)),
        AnalyticsEvent.created_at < end).order_by(AnalyticsEvent.created_at)).all()
    found: dict[uuid.UUID, datetime] = {}
    for contact_id, at in rows:
        if contact_id is not None and contact_id not in found and at >= previous[contact_id]:
            found[contact_id] = at
    return found


def journey(*, session: Session, contact_id: uuid.UUID, limit: int = 500) -> list[dict[str, Any]]:
    """Everything a contact did, oldest first."""
    rows = session.scalars(select(AnalyticsEvent).where(AnalyticsEvent.contact_id == contact_id)
                           .order_by(AnalyticsEvent.created_at).limit(limit))
    return [{"event": e.event_name, "category": e.event_category, "at": e.created_at.isoformat(),
             "properties": e.properties, "source": e.source, "session_id": e.session_id} for e in rows]
