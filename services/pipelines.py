"""Pipelines: stages copied from the agency's templates, opportunities moving through them with history,
and the numbers a sales manager asks for (weighted forecast, time in stage, win rate by source)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.orm import Session

from models.crm import Contact
from models.pipelines import (
    CustomStage,
    Opportunity,
    OpportunityCustomField,
    OpportunityStageHistory,
    Pipeline,
    PipelineStage,
)
from models.tenancy import SubAccount
from services.crm import validate_custom_fields
from services.errors import Conflict, InvalidInput, NotFound

HUNDRED = Decimal(100)


def create_pipeline(*, session: Session, sub_account_id: uuid.UUID, name: str, is_default: bool = False
                    ) -> Pipeline:
    """A pipeline whose stages are copies of the agency's active custom stages, in their order."""
    sub_account = session.get(SubAccount, sub_account_id)
    if sub_account is None:
        raise NotFound("No such sub-account.")
    templates = session.scalars(select(CustomStage).where(
        CustomStage.agency_id == sub_account.agency_id, CustomStage.active_status).order_by(CustomStage.stage_order)
    ).all()
    if not templates:
        raise InvalidInput("The agency has no active custom stages to copy.")
    pipeline = Pipeline(sub_account_id=sub_account_id, name=name, is_default=is_default)
    session.add(pipeline)
    session.flush()
    session.add_all(PipelineStage(sub_account_id=sub_account_id, pipeline_id=pipeline.id, name=t.stage_name,
                                  position=i, probability=t.probability, is_won=t.is_won, is_lost=t.is_lost,
                                  custom_stage_id=t.id) for i, t in enumerate(templates))
    session.flush()
    return pipeline


def create_pipeline_with_stages(*, session: Session, sub_account_id: uuid.UUID, name: str,
                                stages: list[tuple[str, Decimal, str]], is_default: bool = False) -> Pipeline:
    """A pipeline with its own stages (name, probability, outcome open/won/lost), as a vertical preset lays
    them out, instead of copies of the agency's templates."""
    if len({n for n, _, _ in stages}) != len(stages) or not stages:
        raise InvalidInput("A pipeline needs stages with distinct names.", field="stages")
    pipeline = Pipeline(sub_account_id=sub_account_id, name=name, is_default=is_default)
    session.add(pipeline)
    session.flush()
    session.add_all(PipelineStage(sub_account_id=sub_account_id, pipeline_id=pipeline.id, name=stage, position=i,
                                  probability=probability, is_won=outcome == "won", is_lost=outcome == "lost")
                    for i, (stage, probability, outcome) in enumerate(stages))
    session.flush()
    return pipeline


def default_pipeline(*, session: Session, sub_account_id: uuid.UUID) -> Pipeline | None:
    """The sub-account's live default pipeline, if it has one."""
    return session.scalar(select(Pipeline).where(Pipeline.sub_account_id == sub_account_id, Pipeline.is_default,
                                                 Pipeline.deleted_at.is_(None)).order_by(Pipeline.created_at).limit(1))


def get_pipeline_or_raise(*, session: Session, sub_account_id: uuid.UUID, pipeline_id: uuid.UUID) -> Pipeline:
    """The sub-account's pipeline, or NotFound (another sub-account's id is not found either)."""
    pipeline = session.scalar(select(Pipeline).where(
        Pipeline.id == pipeline_id, Pipeline.sub_account_id == sub_account_id, Pipeline.deleted_at.is_(None)))
    if pipeline is None:
        raise NotFound("No such pipeline.")
    return pipeline


def stages_of(*, session: Session, pipeline_id: uuid.UUID) -> list[PipelineStage]:
    """The pipeline's stages in board order."""
    return list(session.scalars(select(PipelineStage).where(PipelineStage.pipeline_id == pipeline_id)
                                .order_by(PipelineStage.position)))


def _status_of(stage: PipelineStage) -> str:
    return "won" if stage.is_won else "lost" if stage.is_lost else "open"


def create_opportunity(*, session: Session, pipeline_id: uuid.UUID, contact_id: uuid.UUID, name: str,
                       monetary_value: Decimal = Decimal(0), stage_id: uuid.UUID | None = None,
                       assigned_user_id: uuid.UUID | None = None, source: str | None = None,
                       custom_fields: dict[str, Any] | None = None, now: datetime | None = None) -> Opportunity:
    """Open a deal in `stage_id` (default: the first stage) and record its entry in the history; custom-field
    values are checked against the sub-account's opportunity field definitions (required ones included)."""
    now = now or datetime.now(UTC)
    pipeline = session.get(Pipeline, pipeline_id)
    contact = session.get(Contact, contact_id)
    if pipeline is None or pipeline.deleted_at is not None:
        raise NotFound("No such pipeline.")
    if contact is None or contact.deleted_at is not None:
        raise NotFound("No such contact.")
    if monetary_value < 0:
        raise InvalidInput("The value cannot be negative.", field="monetary_value")
    stages = stages_of(session=session, pipeline_id=pipeline_id)
    stage = next((s for s in stages if s.id == stage_id), None) if stage_id else stages[0]
    if stage is None:
        raise InvalidInput("That stage is not in this pipeline.", field="stage_id")
    opportunity = Opportunity(
        sub_account_id=pipeline.sub_account_id, pipeline_id=pipeline_id, stage_id=stage.id, contact_id=contact_id,
        name=name, monetary_value=monetary_value.quantize(Decimal("0.01")), assigned_user_id=assigned_user_id,
        source=source or contact.lead_source, campaign_id=contact.campaign_id, status=_status_of(stage),
        stage_entered_at=now, closed_at=now if stage.is_won or stage.is_lost else None,
        custom_fields=validate_custom_fields(session=session, sub_account_id=pipeline.sub_account_id,
                                             values=custom_fields or {}, definitions_of=OpportunityCustomField,
                                             require_all=True),
    )
    session.add(opportunity)
    session.flush()
    session.add(OpportunityStageHistory(sub_account_id=opportunity.sub_account_id, opportunity_id=opportunity.id,
                                        to_stage_id=stage.id, changed_at=now))
    session.flush()
    return opportunity


def update_opportunity_fields(*, session: Session, opportunity_id: uuid.UUID, values: dict[str, Any]
                              ) -> Opportunity:
    """Set custom-field values of a deal (validated; None clears one; a required one cannot be cleared)."""
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None or opportunity.deleted_at is not None:
        raise NotFound("No such opportunity.")
    merged = {**opportunity.custom_fields, **values}
    clean = validate_custom_fields(session=session, sub_account_id=opportunity.sub_account_id,
                                   values={k: v for k, v in merged.items() if v is not None},
                                   definitions_of=OpportunityCustomField, require_all=True)
    opportunity.custom_fields = clean
    session.flush()
    return opportunity


def move_opportunity(*, session: Session, opportunity_id: uuid.UUID, to_stage_id: uuid.UUID,
                     user_id: uuid.UUID | None = None, lost_reason: str | None = None,
                     now: datetime | None = None) -> Opportunity:
    """Move a deal to another stage of its pipeline, recording how long it sat in the one it leaves."""
    now = now or datetime.now(UTC)
    opportunity = session.get(Opportunity, opportunity_id, with_for_update=True)
    if opportunity is None or opportunity.deleted_at is not None:
        raise NotFound("No such opportunity.")
    target = session.get(PipelineStage, to_stage_id)
    if target is None or target.pipeline_id != opportunity.pipeline_id:
        raise InvalidInput("That stage is not in this opportunity's pipeline.", field="to_stage_id")
    if target.id == opportunity.stage_id:
        raise Conflict("The opportunity is already in that stage.")
    spent = max(0, int((now - opportunity.stage_entered_at).total_seconds()))
    history_from = opportunity.stage_id
    session.add(OpportunityStageHistory(
        sub_account_id=opportunity.sub_account_id, opportunity_id=opportunity.id, from_stage_id=opportunity.stage_id,
        to_stage_id=target.id, changed_by_user_id=user_id, duration_seconds=spent, changed_at=now))
    opportunity.stage_id, opportunity.stage_entered_at = target.id, now
    opportunity.status = _status_of(target)
    opportunity.closed_at = now if opportunity.status != "open" else None
    opportunity.lost_reason = lost_reason if target.is_lost else None
    session.flush()
    from services import webhooks

    data = {"opportunity_id": str(opportunity.id), "contact_id": str(opportunity.contact_id),
            "from_stage_id": str(history_from), "to_stage_id": str(target.id), "stage": target.name,
            "status": opportunity.status, "value": str(opportunity.monetary_value)}
    webhooks.emit(session, opportunity.sub_account_id, "opportunity.stage_changed", data)
    from services import workflows

    workflows.fire(session, opportunity.sub_account_id, "opportunity_stage_changed", opportunity.contact_id,
                   {"stage": target.name, "stage_id": str(target.id), "pipeline_id": str(opportunity.pipeline_id),
                    "opportunity_id": str(opportunity.id), "days_in_previous_stage": spent // 86400})
    if opportunity.status == "won":
        webhooks.emit(session, opportunity.sub_account_id, "opportunity.won", data)
    return opportunity


@dataclass(frozen=True)
class StageForecast:
    """Open value in one stage and what it is worth weighted by the stage's probability."""

    stage_id: uuid.UUID
    stage: str
    probability: Decimal
    count: int
    value: Decimal
    weighted: Decimal


def weighted_forecast(*, session: Session, pipeline_id: uuid.UUID) -> list[StageForecast]:
    """Per stage: open opportunities, their value, and value x probability (exact decimals)."""
    rows = session.execute(
        select(PipelineStage.id, PipelineStage.name, PipelineStage.probability,
               func.count(Opportunity.id), func.coalesce(func.sum(Opportunity.monetary_value), 0))
        .outerjoin(Opportunity, (Opportunity.stage_id == PipelineStage.id) & (Opportunity.status == "open")
                   & Opportunity.deleted_at.is_(None))
        .where(PipelineStage.pipeline_id == pipeline_id)
        .group_by(PipelineStage.id).order_by(PipelineStage.position)
    ).all()
    return [StageForecast(stage_id=i, stage=n, probability=p, count=c, value=Decimal(v),
                          weighted=(Decimal(v) * p / HUNDRED).quantize(Decimal("0.01")))
            for i, n, p, c, v in rows]


def average_time_in_stage(*, session: Session, pipeline_id: uuid.UUID) -> dict[str, float]:
    """Mean seconds deals spent in each stage before leaving it (stages never left are absent)."""
    rows = session.execute(
        select(PipelineStage.name, func.avg(OpportunityStageHistory.duration_seconds))
        .join(OpportunityStageHistory, OpportunityStageHistory.from_stage_id == PipelineStage.id)
        .where(PipelineStage.pipeline_id == pipeline_id, OpportunityStageHistory.duration_seconds.is_not(None))
        .group_by(PipelineStage.name, PipelineStage.position).order_by(PipelineStage.position)
    ).all()
    return {name: float(avg) for name, avg in rows}


def win_rate_by_source(*, session: Session, pipeline_id: uuid.UUID | None = None) -> dict[str, float]:
    """Won / (won + lost) per lead source over closed deals."""
    won = func.count(case((Opportunity.status == "won", 1)))
    closed = func.count(case((Opportunity.status.in_(("won", "lost")), 1)))
    source = func.coalesce(Opportunity.source, literal_column("'unknown'")).label("source")
    stmt = select(source, won, closed).where(Opportunity.deleted_at.is_(None)).group_by(source)
    if pipeline_id:
        stmt = stmt.where(Opportunity.pipeline_id == pipeline_id)
    return {source: w / c for source, w, c in session.execute(stmt).all() if c}
