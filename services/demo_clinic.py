"""Demo agency, part 3: a dental clinic built from the dental_clinic preset, so the demo shows one agent
configuration serving a second vertical (in English and Spanish) beside the two restaurants.

It is a new client of the agency: its sub-account, a manager, a calendar with opening hours, the preset's custom
fields, services (with synonyms), pipeline, agent and starter FAQ, and a webchat channel. It has no history yet
(no leads, calls or money), so every figure of the agency's reports stays the restaurants'. Seeded after
everything else, so the restaurants' rows (and ids, drawn from the same RNG) are what they were before it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import time
from decimal import Decimal
from typing import TYPE_CHECKING

from knowledge.sources import Chunk
from models.ai import AIAgent, KnowledgeBase, KnowledgeSource, TrainingData
from models.calendars import AvailabilityRule, Calendar, CalendarType, Service
from models.conversations import Channel
from models.crm import ContactCustomField
from models.pipelines import Pipeline, PipelineStage
from models.tenancy import SubAccount, User, UserSubAccountMembership
from services.agent_config import stored
from services.agent_presets import get_preset

if TYPE_CHECKING:  # the demo's run context; demo_agency imports this module
    from services.demo_agency import _Ctx

CLINIC_SLUG = "dental-clinic"
CLINIC_NAME = "Bright Smile Dental"
CLINIC_TZ = "America/Denver"
CLINIC_MANAGER = ("nina@brightsmiledental.com", "Nina Patel")
OPEN_DAYS = (1, 2, 3, 4, 5)  # 0 = Sunday
HOURS = (time(8), time(17))


def seed_clinic(ctx: _Ctx, agency_id: uuid.UUID, roles: dict[str, uuid.UUID], password_hash: str) -> uuid.UUID:
    """The clinic and everything its agent reads; returns its sub-account id."""
    preset = get_preset("dental_clinic")
    sub_id, manager_id = ctx.uid(), ctx.uid()
    ctx.add(SubAccount, [{
        "id": sub_id, "agency_id": agency_id, "name": CLINIC_NAME, "slug": CLINIC_SLUG, "timezone": CLINIC_TZ,
        "onboarding_date": ctx.ago(14), "industry": preset.vertical, "account_status": "active",
        "address": "4410 E Colfax Ave, Denver, CO 80220",
        "settings": {"business_hours": {str(d): {"open": f"{HOURS[0]:%H:%M}", "close": f"{HOURS[1]:%H:%M}"}
                                        for d in OPEN_DAYS},
                     "language": preset.agent.languages[0] if preset.agent.languages else "en"},
    }])
    email, name = CLINIC_MANAGER
    ctx.add(User, [{"id": manager_id, "agency_id": agency_id, "role_id": roles["Client Manager"], "email": email,
                    "name": name, "password_hash": password_hash, "timezone": CLINIC_TZ, "created_at": ctx.ago(14)}])
    ctx.add(UserSubAccountMembership, [{"id": ctx.uid(), "user_id": manager_id, "sub_account_id": sub_id,
                                        "role_id": roles["Client Manager"]}])
    ctx.add(ContactCustomField, [{"id": ctx.uid(), "sub_account_id": sub_id, "key": f.key, "name": f.label,
                                  "field_type": f.type, "options": list(f.options), "position": i}
                                 for i, f in enumerate(preset.custom_fields, start=1)])
    type_id, calendar_id = ctx.uid(), ctx.uid()
    ctx.add(CalendarType, [{"id": type_id, "sub_account_id": sub_id, "name": "Services"}])
    ctx.add(Service, [{"id": ctx.uid(), "sub_account_id": sub_id, "calendar_type_id": type_id, "name": s.name,
                       "description": s.description, "synonyms": list(s.synonyms),
                       "duration_minutes": s.duration_minutes, "price": s.price, "slot_interval_minutes": 15,
                       "min_notice_minutes": 60, "booking_window_days": 60} for s in preset.services])
    ctx.add(Calendar, [{"id": calendar_id, "sub_account_id": sub_id, "user_id": manager_id, "name": "Front Desk",
                        "timezone": CLINIC_TZ, "slot_interval_minutes": 15, "booking_window_days": 60,
                        "min_notice_minutes": 60}])
    ctx.add(AvailabilityRule, [{"id": ctx.uid(), "sub_account_id": sub_id, "calendar_id": calendar_id,
                                "rule_type": "weekly", "day_of_week": d, "start_time": HOURS[0],
                                "end_time": HOURS[1]} for d in OPEN_DAYS])
    pipeline_id = ctx.uid()
    ctx.add(Pipeline, [{"id": pipeline_id, "sub_account_id": sub_id, "name": preset.pipeline.name,
                        "is_default": True, "position": 0}])
    ctx.add(PipelineStage, [{"id": ctx.uid(), "sub_account_id": sub_id, "pipeline_id": pipeline_id, "name": s.name,
                             "position": i, "probability": Decimal(s.probability), "is_won": s.outcome == "won",
                             "is_lost": s.outcome == "lost"} for i, s in enumerate(preset.pipeline.stages)])
    ctx.add(Channel, [{"id": ctx.uid(), "sub_account_id": sub_id, "channel_type": "webchat", "provider": "leadpilot",
                       "name": "Website chat", "address": f"wk_{CLINIC_SLUG}_{ctx.uid().hex[:12]}",
                       "config": {"color": "#0ea5e9"}}])
    agent_id = ctx.uid()
    # exactly what POST /ai-agents {"preset": "dental_clinic"} stores
    ctx.add(AIAgent, [{"id": agent_id, "sub_account_id": sub_id, **stored(preset.agent_settings()),
                       "enabled_channels": ["webchat"]}])
    _faq(ctx, sub_id, agent_id, preset.agent.name or "Assistant", [(e.question, e.answer, e.category)
                                                                   for e in preset.faq])
    return sub_id


def _hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()  # as demo_agency.content_hash


def _faq(ctx: _Ctx, sub_id: uuid.UUID, agent_id: uuid.UUID, agent_name: str,
         entries: list[tuple[str, str, str | None]]) -> None:
    kb_id, source_id = ctx.uid(), ctx.uid()
    ctx.add(KnowledgeBase, [{"id": kb_id, "sub_account_id": sub_id, "ai_agent_id": agent_id,
                             "name": f"{agent_name} FAQ", "source_type": "manual",
                             "description": "Starter FAQ of the dental clinic preset"}])
    ctx.add(KnowledgeSource, [{"id": source_id, "sub_account_id": sub_id, "knowledge_base_id": kb_id,
                               "source_type": "manual", "name": "Dental clinic preset FAQ", "status": "ready",
                               "progress": Decimal(1), "chunk_count": len(entries),
                               "content_hash": _hash(*(q + a for q, a, _ in entries))}])
    ctx.add(TrainingData, [{"id": ctx.uid(), "sub_account_id": sub_id, "knowledge_base_id": kb_id,
                            "source_id": source_id, "question": q, "answer": a, "category": c, "tags": [],
                            "chunk_index": i, "content_hash": Chunk(question=q, answer=a).hash()}
                           for i, (q, a, c) in enumerate(entries)])
