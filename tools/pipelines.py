"""Pipeline tools: open a deal for the lead, move it, summarize the board."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sqlalchemy import select

from models.pipelines import Opportunity, Pipeline, PipelineStage
from services import pipelines
from services.errors import NotFound
from tools.base import contact_of, failure, guarded
from tools.context import AgentContext, session_for


class CreateOpportunityArgs(BaseModel):
    name: str = Field(description="Short deal name, e.g. 'Garcia - kitchen re-piping quote'")
    value: Decimal = Field(default=Decimal(0), ge=0, description="Expected deal value in the business's currency")
    stage: str | None = Field(default=None, description="Stage name; defaults to the first stage")


@tool(args_schema=CreateOpportunityArgs)
@guarded("qualify_leads")
def create_opportunity(name: str, value: Decimal = Decimal(0), stage: str | None = None, *,
                       config: RunnableConfig) -> dict[str, Any]:
    """Open a deal for this lead in the default pipeline."""
    ctx = AgentContext.from_config(config)
    contact_id = contact_of(ctx)
    with session_for(ctx, config) as session:
        pipeline = session.scalar(select(Pipeline).where(Pipeline.is_default, Pipeline.deleted_at.is_(None)))
        if pipeline is None:
            return failure("no_pipeline", "This business has no default pipeline.")
        stage_id = None
        if stage:
            stage_id = session.scalar(select(PipelineStage.id).where(PipelineStage.pipeline_id == pipeline.id,
                                                                     PipelineStage.name.ilike(stage)))
            if stage_id is None:
                return failure("unknown_stage", f"No stage named {stage!r}.",
                               stages=[s.name for s in pipelines.stages_of(session=session, pipeline_id=pipeline.id)])
        opp = pipelines.create_opportunity(session=session, pipeline_id=pipeline.id, contact_id=contact_id,
                                           name=name, monetary_value=value, stage_id=stage_id)
        return {"opportunity_id": opp.id, "pipeline": pipeline.name, "status": opp.status}


class MoveOpportunityArgs(BaseModel):
    opportunity_id: uuid.UUID = Field(description="The lead's deal")
    stage: str = Field(description="Name of the stage to move it to")


@tool(args_schema=MoveOpportunityArgs)
@guarded("qualify_leads")
def move_opportunity(opportunity_id: uuid.UUID, stage: str, *, config: RunnableConfig) -> dict[str, Any]:
    """Move the lead's deal to another stage of its pipeline."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        opp = session.get(Opportunity, opportunity_id)
        if opp is None or opp.deleted_at is not None or opp.contact_id != ctx.contact_id:
            raise NotFound("No such deal for this lead.")
        target = session.scalar(select(PipelineStage.id).where(PipelineStage.pipeline_id == opp.pipeline_id,
                                                               PipelineStage.name.ilike(stage)))
        if target is None:
            return failure("unknown_stage", f"No stage named {stage!r} in this pipeline.")
        moved = pipelines.move_opportunity(session=session, opportunity_id=opp.id, to_stage_id=target,
                                           user_id=ctx.user_id)
        return {"opportunity_id": moved.id, "status": moved.status}


class SummaryArgs(BaseModel):
    pipeline: str | None = Field(default=None, description="Pipeline name; defaults to the default pipeline")


@tool(args_schema=SummaryArgs)
@guarded("reporting")
def pipeline_summary(pipeline: str | None = None, *, config: RunnableConfig) -> dict[str, Any]:
    """Open deals per stage with their value and probability-weighted forecast."""
    ctx = AgentContext.from_config(config)
    with session_for(ctx, config) as session:
        where = Pipeline.name.ilike(pipeline) if pipeline else Pipeline.is_default
        found = session.scalar(select(Pipeline).where(where, Pipeline.deleted_at.is_(None)))
        if found is None:
            return failure("no_pipeline", "No such pipeline.")
        stages = pipelines.weighted_forecast(session=session, pipeline_id=found.id)
        return {"pipeline": found.name, "stages": [s.__dict__ for s in stages],
                "weighted_total": sum((s.weighted for s in stages), Decimal(0))}
