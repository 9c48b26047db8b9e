"""AI agents of a sub-account: created from a vertical preset or an explicit configuration, read, changed and
removed. Everything an agent refers to (custom fields, services, pipeline stages, staff) must exist in its own
sub-account; a configuration that names something missing is refused (422), never stored half-valid.

`apply_preset_flow` copies a preset into the sub-account first: the custom fields its questions need, its
services with their synonyms, a default pipeline with its stages when the sub-account has none, and its FAQ as
a knowledge base of the agent. What already exists (a field key, a service name) is kept as the business has it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from knowledge.ingest import add_qa, create_knowledge_base
from models.ai import AIAgent, KnowledgeBase
from models.calendars import CalendarType, Service
from models.crm import ContactCustomField
from models.tenancy import SubAccount, User, UserAgencyMembership, UserSubAccountMembership
from services import custom_fields, pipelines
from services.agent_config import AgentSettings, stored
from services.agent_presets import Preset, get_preset
from services.errors import InvalidInput, NotFound

SERVICES_CALENDAR_TYPE = "Services"


@dataclass
class PresetApplied:
    """What applying a preset added to the sub-account, and what it left as the business had it."""

    preset: str
    custom_fields_created: list[str] = field(default_factory=list)
    services_created: list[str] = field(default_factory=list)
    pipeline_created: str | None = None
    knowledge_base_id: uuid.UUID | None = None
    faq_entries: int = 0
    kept: list[str] = field(default_factory=list)


def _refused(loc: list[str | int], msg: str) -> InvalidInput:
    return InvalidInput(msg, errors=[{"loc": ["body", *loc], "msg": msg, "type": "reference"}])


def list_agents(*, session: Session, sub_account_id: uuid.UUID) -> list[AIAgent]:
    """The sub-account's live agents, by name."""
    return list(session.scalars(select(AIAgent).where(AIAgent.sub_account_id == sub_account_id,
                                                      AIAgent.deleted_at.is_(None)).order_by(AIAgent.name)))


def get_agent_or_raise(*, session: Session, sub_account_id: uuid.UUID, agent_id: uuid.UUID) -> AIAgent:
    """A live agent of the sub-account, or NotFound (another sub-account's id is not found either)."""
    agent = session.scalar(select(AIAgent).where(AIAgent.id == agent_id, AIAgent.sub_account_id == sub_account_id,
                                                 AIAgent.deleted_at.is_(None)))
    if agent is None:
        raise NotFound("No such AI agent.")
    return agent


def _stage_names(session: Session, sub_account_id: uuid.UUID) -> set[str] | None:
    pipeline = pipelines.default_pipeline(session=session, sub_account_id=sub_account_id)
    if pipeline is None:
        return None
    return {s.name for s in pipelines.stages_of(session=session, pipeline_id=pipeline.id)}


def check_references(*, session: Session, sub_account_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Refuse (422) a stored configuration naming a custom field, service, pipeline stage or user the sub-account
    does not have."""
    fields = set(session.scalars(select(ContactCustomField.key).where(
        ContactCustomField.sub_account_id == sub_account_id, ContactCustomField.deleted_at.is_(None))))
    for i, question in enumerate(values.get("qualification_questions") or []):
        if question["field"] not in fields:
            raise _refused(["qualification_questions", i, "field"],
                           f"No contact custom field {question['field']!r} in this sub-account; define it first.")
    services = {n.casefold() for n in session.scalars(select(Service.name).where(
        Service.sub_account_id == sub_account_id, Service.deleted_at.is_(None)))}
    for i, intent in enumerate(values.get("intents") or []):
        if intent.get("service") and intent["service"].casefold() not in services:
            raise _refused(["intents", i, "service"], f"No service {intent['service']!r} in this sub-account.")
    settings = values.get("pipeline_settings") or {}
    if settings:
        stages = _stage_names(session, sub_account_id)
        for key, stage in settings.items():
            if stages is None:
                raise _refused(["pipeline_settings", key], "The sub-account has no default pipeline.")
            if stage not in stages:
                raise _refused(["pipeline_settings", key],
                               f"The default pipeline has no stage {stage!r} (it has {', '.join(sorted(stages))}).")
    sub = session.get(SubAccount, sub_account_id)
    for reason, scenario in (values.get("handoff_settings") or {}).items():
        user_id = scenario.get("assign_to_user_id")
        if user_id and not _is_member(session, sub, uuid.UUID(str(user_id))):
            raise _refused(["handoff_settings", reason, "assign_to_user_id"], "No such user in this sub-account.")


def _is_member(session: Session, sub: SubAccount | None, user_id: uuid.UUID) -> bool:
    if sub is None:
        return False
    return session.scalar(select(User.id).where(User.id == user_id, User.agency_id == sub.agency_id, or_(
        select(UserSubAccountMembership.id).where(UserSubAccountMembership.user_id == user_id,
                                                  UserSubAccountMembership.sub_account_id == sub.id).exists(),
        select(UserAgencyMembership.id).where(UserAgencyMembership.user_id == user_id,
                                              UserAgencyMembership.agency_id == sub.agency_id).exists()))) is not None


def _calendar_type(session: Session, sub_account_id: uuid.UUID) -> uuid.UUID:
    found = session.scalar(select(CalendarType.id).where(
        CalendarType.sub_account_id == sub_account_id, CalendarType.name == SERVICES_CALENDAR_TYPE,
        CalendarType.deleted_at.is_(None)))
    if found is not None:
        return found
    kind = CalendarType(sub_account_id=sub_account_id, name=SERVICES_CALENDAR_TYPE)
    session.add(kind)
    session.flush()
    return kind.id


def apply_preset_flow(*, session: Session, sub_account_id: uuid.UUID, preset: Preset) -> PresetApplied:
    """Copy what the preset's agent needs into the sub-account: missing custom fields and services, and a default
    pipeline with the preset's stages when the sub-account has none."""
    sub = session.get(SubAccount, sub_account_id)
    if sub is None:
        raise NotFound("No such sub-account.")
    applied = PresetApplied(preset=preset.name)
    existing = set(session.scalars(select(ContactCustomField.key).where(
        ContactCustomField.sub_account_id == sub_account_id, ContactCustomField.deleted_at.is_(None))))
    for definition in preset.custom_fields:
        if definition.key in existing:
            applied.kept.append(f"custom field {definition.key}")
            continue
        custom_fields.define(session=session, sub_account_id=sub_account_id, entity="contact", key=definition.key,
                             name=definition.label, field_type=definition.type, options=list(definition.options))
        applied.custom_fields_created.append(definition.key)
    services = {n.casefold() for n in session.scalars(select(Service.name).where(
        Service.sub_account_id == sub_account_id, Service.deleted_at.is_(None)))}
    missing = [s for s in preset.services if s.name.casefold() not in services]
    applied.kept += [f"service {s.name}" for s in preset.services if s.name.casefold() in services]
    if missing:
        kind = _calendar_type(session, sub_account_id)
        session.add_all(Service(sub_account_id=sub_account_id, calendar_type_id=kind, name=s.name,
                                description=s.description, synonyms=list(s.synonyms),
                                duration_minutes=s.duration_minutes, price=s.price, currency=sub.currency)
                        for s in missing)
        session.flush()
        applied.services_created = [s.name for s in missing]
    if pipelines.default_pipeline(session=session, sub_account_id=sub_account_id) is None:
        pipelines.create_pipeline_with_stages(
            session=session, sub_account_id=sub_account_id, name=preset.pipeline.name, is_default=True,
            stages=[(s.name, Decimal(s.probability), s.outcome) for s in preset.pipeline.stages])
        applied.pipeline_created = preset.pipeline.name
    return applied


def _preset_values(session: Session, sub_account_id: uuid.UUID, preset: Preset,
                   applied: PresetApplied) -> dict[str, Any]:
    """The preset's agent settings, less pipeline moves to stages the sub-account's own default pipeline lacks."""
    values = stored(preset.agent_settings())
    stages = _stage_names(session, sub_account_id) or set()
    moves = values.get("pipeline_settings") or {}
    for key, stage in list(moves.items()):
        if stage not in stages:
            del moves[key]
            applied.kept.append(f"pipeline setting {key} (the default pipeline has no stage {stage!r})")
    return values


def add_faq(*, session: Session, sub_account_id: uuid.UUID, agent: AIAgent, preset: Preset,
            applied: PresetApplied) -> None:
    """The preset's starter FAQ as a knowledge base of the agent (skipped if one of that name exists)."""
    name = f"{agent.name} FAQ"
    if session.scalar(select(KnowledgeBase.id).where(KnowledgeBase.sub_account_id == sub_account_id,
                                                     KnowledgeBase.name == name, KnowledgeBase.deleted_at.is_(None))):
        applied.kept.append(f"knowledge base {name}")
        return
    kb = create_knowledge_base(session=session, sub_account_id=sub_account_id, name=name, ai_agent_id=agent.id,
                               description=f"Starter FAQ of the {preset.vertical.lower()} preset")
    for entry in preset.faq:
        add_qa(session=session, kb_id=kb.id, question=entry.question, answer=entry.answer, category=entry.category)
    applied.knowledge_base_id, applied.faq_entries = kb.id, len(preset.faq)


def create_agent_flow(*, session: Session, sub_account_id: uuid.UUID, settings: AgentSettings,
                      preset: str | None = None, with_faq: bool = True) -> tuple[AIAgent, PresetApplied | None]:
    """A new agent: the preset applied (if named) with the explicit settings overriding its values."""
    applied: PresetApplied | None = None
    values: dict[str, Any] = {}
    chosen = get_preset(preset) if preset is not None else None
    if chosen is not None:
        applied = apply_preset_flow(session=session, sub_account_id=sub_account_id, preset=chosen)
        values = _preset_values(session, sub_account_id, chosen, applied)
    values |= stored(settings)
    if not values.get("name"):
        raise InvalidInput("An agent needs a name (or a preset).",
                           errors=[{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}])
    check_references(session=session, sub_account_id=sub_account_id, values=values)
    agent = AIAgent(sub_account_id=sub_account_id, **values)
    session.add(agent)
    session.flush()
    if chosen is not None and applied is not None and with_faq and chosen.faq:
        add_faq(session=session, sub_account_id=sub_account_id, agent=agent, preset=chosen, applied=applied)
    return agent, applied


def update_agent(*, session: Session, sub_account_id: uuid.UUID, agent_id: uuid.UUID,
                 settings: AgentSettings) -> AIAgent:
    """Change the given settings (each one replaced whole); the result must still refer only to what exists."""
    agent = get_agent_or_raise(session=session, sub_account_id=sub_account_id, agent_id=agent_id)
    changes = stored(settings)
    current = {k: getattr(agent, k) for k in ("qualification_questions", "intents", "pipeline_settings",
                                              "handoff_settings")}
    check_references(session=session, sub_account_id=sub_account_id, values=current | changes)
    for key, value in changes.items():
        setattr(agent, key, value)
    session.flush()
    return agent


def delete_agent(*, session: Session, sub_account_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """Soft-delete the agent; its conversations keep their history and stop being answered by it."""
    agent = get_agent_or_raise(session=session, sub_account_id=sub_account_id, agent_id=agent_id)
    agent.deleted_at, agent.is_active = datetime.now(UTC), False
    session.flush()

