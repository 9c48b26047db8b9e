"""Apply a scenario's initial_state on top of the demo agency, inside the trial's own database copy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from evals.harness import business, data
from evals.harness.scenario import DealFixture, Scenario
from knowledge.ingest import add_qa
from models.ai import AIAgent, KnowledgeBase, TrainingData
from models.calendars import Appointment, Calendar
from models.conversations import Channel, Conversation, ConversationAIConfig
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.pipelines import Opportunity, Pipeline, PipelineStage
from services import crm

AGENCY_SLUG = "digital-marketing-co"


@dataclass
class World:
    """The ids a trial works with."""

    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    other_sub_account_id: uuid.UUID
    timezone: str
    contact_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    capabilities: list[str] = field(default_factory=list)
    user_id: uuid.UUID | None = None
    contacts: dict[str, uuid.UUID] = field(default_factory=dict)
    other_contacts: dict[str, uuid.UUID] = field(default_factory=dict)  # in the other sub-account
    harness_rows: set[uuid.UUID] = field(default_factory=set)  # written by the world (take_slot), not the agent

    @property
    def scope(self) -> TenantScope:
        return TenantScope(agency_id=self.agency_id, sub_account_id=self.sub_account_id)


def local_instant(value: str, zone: str, year: int = 2026) -> datetime:
    """'2026-11-27 18:00', an ISO time with an offset, or a time as the agent offers it ('Fri Nov 27 at 9 AM',
    in `year`) as an aware datetime; naive means `zone`."""
    cleaned = value.strip().replace(" at ", " ")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        for pattern in ("%a %b %d %I:%M %p %Y", "%a %b %d %I %p %Y"):
            try:
                moment = datetime.strptime(f"{cleaned} {year}", pattern)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"not a time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


def _tenancy(sub_account: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    with owner_session() as session:
        rows = dict(session.execute(text(
            "SELECT s.slug, s.id FROM sub_accounts s JOIN agencies a ON a.id = s.agency_id WHERE a.slug = :a"),
            {"a": AGENCY_SLUG}).all())
        agency_id = session.execute(text("SELECT id FROM agencies WHERE slug = :a"), {"a": AGENCY_SLUG}).scalar_one()
    other = next(v for k, v in rows.items() if k != sub_account)
    return agency_id, rows[sub_account], other


def apply(scenario: Scenario) -> World:
    """Create the lead, its conversation on the scenario's channel, and every fixture; return their ids."""
    state = scenario.initial_state
    agency_id, sub_id, other_id = _tenancy(state.sub_account)
    built = None
    if state.business is not None:  # a business of its own; the demo restaurant stays as the "other" tenant
        built = business.build(state.business, AGENCY_SLUG)
        other_id, sub_id = sub_id, built.sub_account_id
    # a built business's lead lives in the business's timezone unless the scenario says otherwise
    lead_zone = (state.lead.timezone if state.business is None or "timezone" in state.lead.model_fields_set
                 else None)
    world = World(agency_id, sub_id, other_id, lead_zone or "America/New_York")
    if state.data is not None:
        data.apply_data(world.scope, state.data)
    if scenario.channel == "staff":
        if state.user_email:  # "manager" is the built business's own manager
            email = built.manager_email if built is not None and state.user_email == "manager" \
                else state.user_email
            with owner_session() as session:
                world.user_id = session.execute(text("SELECT id FROM users WHERE email = :e"),
                                                {"e": email}).scalar_one()
        return world
    with tenant_session(world.scope) as session:
        sub_tz = session.execute(text("SELECT timezone FROM sub_accounts WHERE id = :s"), {"s": sub_id}).scalar()
        world.timezone = lead_zone or sub_tz or "UTC"
        channel = session.scalars(select(Channel).where(Channel.channel_type == scenario.channel,
                                                        Channel.deleted_at.is_(None))).first()
        if channel is None:
            raise LookupError(f"{state.sub_account} has no {scenario.channel} channel")
        agent = session.scalars(select(AIAgent).join(KnowledgeBase, KnowledgeBase.ai_agent_id == AIAgent.id)
                                .where(AIAgent.deleted_at.is_(None))).first()
        assert agent is not None, "the demo sub-account has a lead agent with a knowledge base"
        if state.agent.capabilities is not None:
            agent.capabilities = list(state.agent.capabilities)
        if state.agent.mode is not None:
            agent.mode = state.agent.mode
        world.agent_id, world.capabilities = agent.id, list(agent.capabilities)
        lead = state.lead
        tag = uuid.uuid4().hex[:8]
        named = lead.first_name is not None
        contact = Contact(sub_account_id=sub_id, agency_id=agency_id, first_name=lead.first_name,
                          last_name=lead.last_name or (f"Eval {tag}" if named else None),
                          email=lead.email if "email" in lead.model_fields_set else f"eval-{tag}@example.com",
                          phone=lead.phone,
                          timezone=lead_zone, lifecycle_stage="lead", lead_source=lead.lead_source,
                          custom_fields=dict(lead.custom_fields), dnd_channels=dict(lead.dnd_channels))
        session.add(contact)
        session.flush()
        world.contact_id = contact.id
        world.contacts["lead"] = contact.id
        for tag_name in lead.tags:
            crm.add_tag(session=session, contact_id=contact.id, name=tag_name)
        for deal in lead.deals:
            _deal(session, sub_id, contact.id, deal)
        for extra in state.contacts:
            other = Contact(sub_account_id=sub_id, agency_id=agency_id, first_name=extra.first_name,
                            last_name=extra.last_name, email=extra.email or f"eval-{extra.key}-{tag}@example.com",
                            phone=extra.phone, lifecycle_stage="lead")
            session.add(other)
            session.flush()
            world.contacts[extra.key] = other.id
        conversation = Conversation(sub_account_id=sub_id, channel_id=channel.id, contact_id=contact.id)
        session.add(conversation)
        session.flush()
        world.conversation_id = conversation.id
        session.add(ConversationAIConfig(sub_account_id=sub_id, conversation_id=conversation.id,
                                         ai_agent_id=agent.id, mode="autopilot", is_active=True))
        session.flush()
        for fixture in state.appointments:
            _appointment(session, world, fixture.contact, local_instant(fixture.start, world.timezone),
                         fixture.status)
        if state.invoices:
            from services import payments

            for invoice in state.invoices:
                payments.create_invoice(session=session, contact_id=contact.id, status=invoice.status, lines=[
                    payments.Line(line.description, Decimal(line.quantity), Decimal(line.unit_price))
                    for line in invoice.lines], issue_date=state.clock.date())
        kb = session.scalars(select(KnowledgeBase).where(KnowledgeBase.ai_agent_id == agent.id)).one()
        if state.knowledge_mode == "replace":  # start without the existing entries
            session.execute(update(TrainingData).where(TrainingData.knowledge_base_id == kb.id,
                                                       TrainingData.deleted_at.is_(None))
                            .values(deleted_at=func.now()))
        if state.knowledge:
            for entry in state.knowledge:
                add_qa(session=session, kb_id=kb.id, question=entry.question, answer=entry.answer,
                       category=entry.category)
    if state.other_contacts:
        other_scope = TenantScope(agency_id=agency_id, sub_account_id=world.other_sub_account_id)
        with tenant_session(other_scope) as session:
            for extra in state.other_contacts:
                row = Contact(sub_account_id=world.other_sub_account_id, agency_id=agency_id,
                              first_name=extra.first_name, last_name=extra.last_name, phone=extra.phone,
                              email=extra.email or f"other-{extra.key}-{uuid.uuid4().hex[:6]}@example.com",
                              lifecycle_stage="lead")
                session.add(row)
                session.flush()
                world.other_contacts[extra.key] = row.id
    return world


def _deal(session: Session, sub_id: uuid.UUID, contact_id: uuid.UUID, deal: DealFixture) -> uuid.UUID:
    """An open (or closed) deal of the lead in the default pipeline, at the named stage."""
    pipeline = session.scalars(select(Pipeline).where(Pipeline.is_default, Pipeline.deleted_at.is_(None))).first()
    if pipeline is None:
        raise LookupError("the sub-account has no default pipeline for the lead's deal")
    stages = list(session.scalars(select(PipelineStage).where(PipelineStage.pipeline_id == pipeline.id)
                                  .order_by(PipelineStage.position)))
    stage = next((st for st in stages if deal.stage is None or st.name.lower() == deal.stage.lower()), None)
    if stage is None:
        raise LookupError(f"deal stage {deal.stage!r} is not a stage of {pipeline.name}: {[st.name for st in stages]}")
    row = Opportunity(sub_account_id=sub_id, contact_id=contact_id, pipeline_id=pipeline.id, stage_id=stage.id,
                      name=deal.name, monetary_value=deal.value, status=deal.status)
    session.add(row)
    session.flush()
    return row.id


def _appointment(session: Any, world: World, who: str, start: datetime, status: str) -> uuid.UUID:
    """Book through the calendar service (the same checks a real booking passes), then set the status."""
    from services import calendars as booking

    if who not in world.contacts:
        raise LookupError(f"appointment for unknown contact {who!r}; declare it under initial_state.contacts")
    errors = []
    for calendar in session.scalars(select(Calendar).where(Calendar.is_active, Calendar.deleted_at.is_(None))
                                    .order_by(Calendar.name)):
        try:
            with session.begin_nested():
                made = booking.book_appointment(session=session, request=booking.BookingRequest(
                    calendar_id=calendar.id, contact_id=world.contacts[who], start=start, timezone=world.timezone,
                    source="staff"))
        except Exception as exc:  # this calendar is busy or closed then: try the next one
            errors.append(f"{calendar.name}: {exc}")
            continue
        if status != "scheduled":
            row = session.get(Appointment, made.id)
            row.status = status
        return made.id
    raise LookupError(f"no calendar could take an appointment at {start.isoformat()}: {'; '.join(errors)}")


def take_slot(world: World, start: datetime) -> uuid.UUID:
    """Someone else books `start` meanwhile (the slot-taken-mid-conversation case)."""
    with tenant_session(world.scope) as session:
        other = Contact(sub_account_id=world.sub_account_id, agency_id=world.agency_id, first_name="Walk",
                        last_name=f"In {uuid.uuid4().hex[:6]}", lifecycle_stage="lead",
                        email=f"walkin-{uuid.uuid4().hex[:8]}@example.com")
        session.add(other)
        session.flush()
        world.contacts.setdefault("walk_in", other.id)
        taken = []
        # every calendar that offers the slot: the business's offer is any member's free slot
        for calendar in session.scalars(select(Calendar).where(Calendar.is_active, Calendar.deleted_at.is_(None))):
            from services import calendars as booking

            try:
                with session.begin_nested():
                    taken.append(booking.book_appointment(session=session, request=booking.BookingRequest(
                        calendar_id=calendar.id, contact_id=other.id, start=start, timezone=world.timezone,
                        source="staff")).id)
            except Exception:  # not free on this calendar: nothing to take
                continue
        if not taken:
            raise LookupError(f"take_slot: {start.isoformat()} was not free on any calendar")
        world.harness_rows.update([other.id, *taken])
        return taken[0]
