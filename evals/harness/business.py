"""Build a scenario's business from scratch: a new sub-account of the demo agency with its own staff, opening
hours and closed dates, calendars, services, products, knowledge, lead agent, pipeline and channels, written as
the product stores them (so the agent reads it all from configuration, as it would for a real client)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from evals.harness.scenario import DAYS, AgentSpec, BusinessFixture, CalendarSpec, Hours, parse_ranges
from knowledge.ingest import add_qa, create_knowledge_base
from models.ai import AIAgent, KnowledgeBase
from models.calendars import AvailabilityRule, Calendar, CalendarType, Service
from models.conversations import Channel
from models.crm import ContactCustomField
from models.db import TenantScope, owner_session, tenant_session
from models.payments import Price, Product
from models.pipelines import Pipeline, PipelineStage
from models.tenancy import Role, SubAccount, User, UserSubAccountMembership
from services.agent_config import AgentSettings, HandoffScenario, Personality, PipelineSettings
from services.agents import create_agent_flow


@dataclass(frozen=True)
class Built:
    """The ids of a built business."""

    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    slug: str
    manager_email: str
    agent_id: uuid.UUID


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "business"


def weekly(hours: Hours) -> list[tuple[int, time, time]]:
    """(day_of_week with 0 = Sunday, opens, closes) for every opening of the week."""
    return [(DAYS.index(day), start, end) for day, value in hours.items() for start, end in parse_ranges(value)]


def _business_hours(hours: Hours) -> dict[str, dict[str, str]]:
    """The sub-account setting workflows wait on ("until business hours"): the day's first opening to its last
    closing, keyed by day_of_week as the demo stores it."""
    out: dict[str, dict[str, str]] = {}
    for dow, start, end in weekly(hours):
        day = out.setdefault(str(dow), {"open": start.strftime("%H:%M"), "close": end.strftime("%H:%M")})
        day["open"] = min(day["open"], start.strftime("%H:%M"))
        day["close"] = max(day["close"], end.strftime("%H:%M"))
    return out


def build(spec: BusinessFixture, agency_slug: str) -> Built:
    """Create the business and everything it owns; returns its ids."""
    tag = uuid.uuid4().hex[:6]
    slug = f"{slugify(spec.name)}-{tag}"
    phone = spec.phone or f"+1555{uuid.uuid4().int % 10_000_000:07d}"
    email = spec.email or f"hello@{slug}.example.com"
    with owner_session() as session:
        agency_id = session.execute(text("SELECT id FROM agencies WHERE slug = :a"),
                                    {"a": agency_slug}).scalar_one()
        roles = dict(session.execute(select(Role.name, Role.id).where(Role.agency_id.is_(None), Role.is_system)).all())
        sub = SubAccount(agency_id=agency_id, name=spec.name, slug=slug, timezone=spec.timezone,
                         industry=spec.vertical, currency=spec.currency, phone=phone, email=email,
                         address=spec.address, contact_info={"phone": phone, "email": email},
                         settings={"business_hours": _business_hours(spec.hours), "language": spec.language,
                                   "closed_dates": [d.isoformat() for d in spec.closed_dates]})
        session.add(sub)
        session.flush()
        manager_email = f"manager@{slug}.example.com"
        staff = {f"{spec.name} Manager": _member(session, sub, roles["Client Manager"], manager_email,
                                                 f"{spec.name} Manager")}
        for name in dict.fromkeys(n for c in spec.calendars for n in c.team):
            staff[name] = _member(session, sub, roles["Client Staff"], f"{slugify(name)}@{slug}.example.com", name)
        sub_id = sub.id
    scope = TenantScope(agency_id=agency_id, sub_account_id=sub_id)
    with tenant_session(scope) as session:
        _channels(session, sub_id, spec, slug, phone, email)
        for calendar in spec.calendars:
            _calendar(session, sub_id, spec, calendar, staff)
        _services(session, sub_id, spec)
        _products(session, sub_id, spec)
        agent_id = _preset_agent(session, sub_id, spec) if spec.preset else _agent(session, sub_id, spec)
    return Built(agency_id, sub_id, slug, manager_email, agent_id)


def _member(session: Session, sub: SubAccount, role_id: uuid.UUID, email: str, name: str) -> uuid.UUID:
    user = User(agency_id=sub.agency_id, role_id=role_id, email=email, name=name, timezone=sub.timezone)
    session.add(user)
    session.flush()
    session.add(UserSubAccountMembership(user_id=user.id, sub_account_id=sub.id, role_id=role_id))
    session.flush()
    return user.id


def _channels(session: Session, sub_id: uuid.UUID, spec: BusinessFixture, slug: str, phone: str,
              email: str) -> None:
    made = {
        "sms": Channel(sub_account_id=sub_id, channel_type="sms", provider="twilio", name="Main number",
                       address=phone, config={"phone_number": phone}),
        "email": Channel(sub_account_id=sub_id, channel_type="email", provider="smtp", name="Inbox",
                         address=email, config={"from_name": spec.name}),
        "webchat": Channel(sub_account_id=sub_id, channel_type="webchat", provider="leadpilot", name="Website chat",
                           address=f"wk_{slug}_{uuid.uuid4().hex[:12]}", config={}),
    }
    session.add_all(made[kind] for kind in dict.fromkeys(spec.channels))
    session.flush()


def _calendar(session: Session, sub_id: uuid.UUID, spec: BusinessFixture, calendar: CalendarSpec,
              staff: dict[str, uuid.UUID]) -> None:
    """One calendar per team member (a round-robin team sharing a key), or one of the manager's."""
    members = calendar.team or [f"{spec.name} Manager"]
    team_key = slugify(calendar.name)[:64] if len(members) > 1 else None
    for member in members:
        row = Calendar(sub_account_id=sub_id, user_id=staff[member], timezone=spec.timezone,
                       name=calendar.name if len(members) == 1 else f"{calendar.name} - {member}",
                       slot_interval_minutes=calendar.slot_minutes,
                       buffer_before_minutes=calendar.buffer_before_minutes,
                       buffer_after_minutes=calendar.buffer_after_minutes,
                       min_notice_minutes=calendar.min_notice_minutes, booking_window_days=calendar.window_days,
                       max_bookings_per_day=calendar.max_bookings_per_day, team_key=team_key,
                       calendar_kind="round_robin" if team_key else "personal")
        session.add(row)
        session.flush()
        session.add_all(AvailabilityRule(sub_account_id=sub_id, calendar_id=row.id, rule_type="weekly",
                                         day_of_week=dow, start_time=start, end_time=end)
                        for dow, start, end in weekly(calendar.hours or spec.hours))
        session.add_all(_closures(sub_id, row.id, spec.closed_dates))
    session.flush()


def _closures(sub_id: uuid.UUID, calendar_id: uuid.UUID, days: Iterable[date]) -> list[AvailabilityRule]:
    return [AvailabilityRule(sub_account_id=sub_id, calendar_id=calendar_id, rule_type="override", valid_from=day,
                             valid_to=day, is_active=False, label="Closed") for day in days]


def _services(session: Session, sub_id: uuid.UUID, spec: BusinessFixture) -> None:
    if not spec.services:
        return
    kind = CalendarType(sub_account_id=sub_id, name="Services")
    session.add(kind)
    session.flush()
    for service in spec.services:
        product_id = None
        if service.deposit is not None:  # the deposit is what the lead pays to hold the booking
            product = Product(sub_account_id=sub_id, name=f"{service.name} deposit", product_type="one_time")
            session.add(product)
            session.flush()
            session.add(Price(sub_account_id=sub_id, product_id=product.id, nickname="Deposit",
                              amount=service.deposit, currency=service.currency or spec.currency))
            product_id = product.id
        session.add(Service(sub_account_id=sub_id, calendar_type_id=kind.id, product_id=product_id,
                            name=service.name, description=service.description,
                            synonyms=list(service.synonyms), duration_minutes=service.duration_minutes,
                            price=service.price,
                            currency=service.currency or spec.currency, requires_payment=service.deposit is not None))
    session.flush()


def _products(session: Session, sub_id: uuid.UUID, spec: BusinessFixture) -> None:
    for item in spec.products:
        product = Product(sub_account_id=sub_id, name=item.name, description=item.description,
                          product_type="recurring" if item.every else "one_time")
        session.add(product)
        session.flush()
        session.add(Price(sub_account_id=sub_id, product_id=product.id, amount=item.price,
                          currency=item.currency or spec.currency, billing_period=item.every,
                          billing_interval=1 if item.every else None))
    session.flush()


def _agent(session: Session, sub_id: uuid.UUID, spec: BusinessFixture) -> uuid.UUID:
    config = spec.agent
    for position, question in enumerate(config.qualification_questions):
        session.add(ContactCustomField(sub_account_id=sub_id, key=question.key, name=question.question[:255],
                                       field_type=question.type, options=list(question.options),
                                       position=position))
    pipeline = Pipeline(sub_account_id=sub_id, name="Leads", is_default=True)
    session.add(pipeline)
    session.flush()
    session.add_all(PipelineStage(sub_account_id=sub_id, pipeline_id=pipeline.id, name=name, position=i,
                                  is_won=name.lower() == "won", is_lost=name.lower() == "lost")
                    for i, name in enumerate(config.pipeline))
    agent = AIAgent(
        sub_account_id=sub_id, name=config.name, model="local",
        system_prompt=config.system_prompt or f"You are {config.name}, the assistant of {spec.name}, a "
                                              f"{spec.vertical}.",
        personality={"persona": config.persona, "language": spec.language} if config.persona
        else {"language": spec.language},
        capabilities=list(config.capabilities), enabled_channels=list(spec.channels), mode=config.mode,
        channel_modes=dict(config.channel_modes),
        qualification_questions=[q.stored() for q in config.qualification_questions],
        intents=[i.model_dump(exclude_none=True) for i in config.intents],
        languages=list(config.languages or [spec.language]),
        pipeline_settings={k: v for k, v in (("on_qualified", config.on_qualified), ("on_booked", config.on_booked))
                           if v},
        handoff_settings={"human_requested": {"message": config.handoff_message}} if config.handoff_message else {})
    session.add(agent)
    session.flush()
    kb = KnowledgeBase(sub_account_id=sub_id, ai_agent_id=agent.id, name=f"{spec.name} knowledge",
                       source_type="manual")
    session.add(kb)
    session.flush()
    for entry in spec.knowledge:
        add_qa(session=session, kb_id=kb.id, question=entry.question, answer=entry.answer, category=entry.category)
    return agent.id


def _explicit(config: AgentSpec, spec: BusinessFixture) -> AgentSettings:
    """The agent settings a scenario states explicitly, as agent API fields (the rest come from the preset)."""
    given = config.model_fields_set
    values: dict[str, object] = {k: getattr(config, k) for k in ("name", "system_prompt", "capabilities", "mode",
                                                                  "channel_modes", "intents", "languages")
                                 if k in given}
    values["enabled_channels"] = list(spec.channels)
    if "persona" in given:
        values["personality"] = Personality(persona=config.persona)
    if "qualification_questions" in given:
        values["qualification_questions"] = [q.stored() for q in config.qualification_questions]
    if given & {"on_qualified", "on_booked"}:
        values["pipeline_settings"] = PipelineSettings(on_qualified=config.on_qualified, on_booked=config.on_booked)
    if "handoff_message" in given and config.handoff_message:
        values["handoff_settings"] = {"human_requested": HandoffScenario(message=config.handoff_message)}
    return AgentSettings.model_validate(values)


def _preset_agent(session: Session, sub_id: uuid.UUID, spec: BusinessFixture) -> uuid.UUID:
    """The agent of a business built from a preset, made exactly as POST /ai-agents {"preset": ...} makes it:
    the preset's fields, services, pipeline and FAQ, with the scenario's explicit settings on top."""
    assert spec.preset is not None
    for position, question in enumerate(spec.agent.qualification_questions):
        if session.scalar(select(ContactCustomField.id).where(ContactCustomField.key == question.key)) is None:
            session.add(ContactCustomField(sub_account_id=sub_id, key=question.key, name=question.question[:255],
                                           field_type=question.type, options=list(question.options),
                                           position=100 + position))
    session.flush()
    agent, applied = create_agent_flow(session=session, sub_account_id=sub_id, settings=_explicit(spec.agent, spec),
                                       preset=spec.preset)
    if spec.knowledge:
        kb_id = applied.knowledge_base_id if applied and applied.knowledge_base_id else create_knowledge_base(
            session=session, sub_account_id=sub_id, ai_agent_id=agent.id, name=f"{spec.name} knowledge").id
        for entry in spec.knowledge:
            add_qa(session=session, kb_id=kb_id, question=entry.question, answer=entry.answer,
                   category=entry.category)
    return agent.id
