"""Opportunities moving through pipeline stages, and the numbers a sales manager asks for."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import Tenant, sub_account
from api.schemas import row
from models.pipelines import Opportunity, Pipeline
from services import pipelines
from tools.base import jsonable

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["Pipelines"])
Read = Annotated[Tenant, Depends(sub_account("pipelines.read"))]
Write = Annotated[Tenant, Depends(sub_account("pipelines.write"))]


class OpportunityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline_id: uuid.UUID
    contact_id: uuid.UUID
    name: str = Field(min_length=1, max_length=255)
    monetary_value: Decimal = Field(Decimal(0), ge=0, max_digits=14, decimal_places=2)
    stage_id: uuid.UUID | None = Field(None, description="Default: the pipeline's first stage.")
    assigned_user_id: uuid.UUID | None = None
    source: str | None = None
    custom_fields: dict[str, Any] | None = None


class MoveIn(BaseModel):
    to_stage_id: uuid.UUID
    lost_reason: str | None = None


class FieldsIn(BaseModel):
    custom_fields: dict[str, Any] = Field(description="Values to set; null clears one.")


@router.get("/pipelines", summary="Pipelines and their stages")
def list_pipelines(t: Read) -> list[dict[str, Any]]:
    with t.session() as s:
        return [row(p, only=("id", "name", "is_default"),
                    extra={"stages": [row(st, only=("id", "name", "position", "probability", "is_won", "is_lost"))
                                      for st in pipelines.stages_of(session=s, pipeline_id=p.id)]})
                for p in s.scalars(select(Pipeline).where(Pipeline.deleted_at.is_(None)).order_by(Pipeline.name))]


@router.get("/pipelines/{pipeline_id}/board", summary="The board: each stage with its open opportunities")
def board(t: Read, pipeline_id: uuid.UUID) -> dict[str, Any]:
    """Stages in order, each with its open opportunities (value, contact, days in stage) and their total."""
    from datetime import UTC, datetime

    from models.crm import Contact

    with t.session() as s:
        pipeline = pipelines.get_pipeline_or_raise(session=s, sub_account_id=t.sub_account_id, pipeline_id=pipeline_id)
        now = datetime.now(UTC)
        rows = s.execute(select(Opportunity, Contact.name).join(Contact, Contact.id == Opportunity.contact_id)
                         .where(Opportunity.pipeline_id == pipeline_id, Opportunity.deleted_at.is_(None),
                                Opportunity.status == "open")
                         .order_by(Opportunity.monetary_value.desc())).all()
        columns = []
        for stage in pipelines.stages_of(session=s, pipeline_id=pipeline_id):
            cards = [{"id": str(o.id), "name": o.name, "value": str(o.monetary_value), "contact": name,
                      "days_in_stage": (now - o.stage_entered_at).days}
                     for o, name in rows if o.stage_id == stage.id]
            columns.append({"id": str(stage.id), "name": stage.name, "probability": stage.probability,
                            "total": str(sum((o.monetary_value for o, _ in rows if o.stage_id == stage.id), 0)),
                            "opportunities": cards})
        return {"id": str(pipeline.id), "name": pipeline.name, "stages": columns}


@router.post("/opportunities", status_code=201, summary="Open an opportunity")
def create(t: Write, body: OpportunityIn) -> dict[str, Any]:
    """Custom fields are validated against the opportunity field definitions (required ones too)."""
    with t.session() as s:
        return row(pipelines.create_opportunity(session=s, **body.model_dump()))


@router.patch("/opportunities/{opportunity_id}/custom-fields", summary="Set custom-field values")
def set_fields(t: Write, opportunity_id: uuid.UUID, body: FieldsIn) -> dict[str, Any]:
    with t.session() as s:
        return row(pipelines.update_opportunity_fields(session=s, opportunity_id=opportunity_id,
                                                       values=body.custom_fields))


@router.post("/opportunities/{opportunity_id}/move", summary="Move to another stage")
def move(t: Write, opportunity_id: uuid.UUID, body: MoveIn) -> dict[str, Any]:
    """Records the stage change with the seconds spent in the stage it leaves."""
    with t.session() as s:
        return row(pipelines.move_opportunity(session=s, opportunity_id=opportunity_id, to_stage_id=body.to_stage_id,
                                              user_id=t.user_id, lost_reason=body.lost_reason))


@router.get("/pipelines/{pipeline_id}/forecast", summary="Weighted forecast")
def forecast(t: Read, pipeline_id: uuid.UUID) -> dict[str, Any]:
    """Per open stage: count, value and value x stage probability."""
    with t.session() as s:
        pipelines.get_pipeline_or_raise(session=s, sub_account_id=t.sub_account_id, pipeline_id=pipeline_id)
        stages = pipelines.weighted_forecast(session=s, pipeline_id=pipeline_id)
        return {"stages": [jsonable(vars(x)) for x in stages],
                "weighted_total": str(sum((x.weighted for x in stages), Decimal(0)))}


@router.get("/pipelines/{pipeline_id}/time-in-stage", summary="Average seconds spent in each stage")
def time_in_stage(t: Read, pipeline_id: uuid.UUID) -> dict[str, float]:
    with t.session() as s:
        pipelines.get_pipeline_or_raise(session=s, sub_account_id=t.sub_account_id, pipeline_id=pipeline_id)
        return pipelines.average_time_in_stage(session=s, pipeline_id=pipeline_id)


@router.get("/win-rate", summary="Win rate by lead source")
def win_rate(t: Read, pipeline_id: uuid.UUID | None = None) -> dict[str, float]:
    """won / (won + lost) among closed opportunities, per source."""
    with t.session() as s:
        return pipelines.win_rate_by_source(session=s, pipeline_id=pipeline_id)
