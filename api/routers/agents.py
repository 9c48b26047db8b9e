"""AI agents of a sub-account, configured by data: made from a vertical preset (restaurant, dental clinic, home
services, real estate, med spa) or an explicit configuration, then read, changed and removed."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from api.deps import Tenant, principal, sub_account
from api.schemas import row
from models.ai import AIAgent
from services import agents
from services.access import Principal
from services.agent_config import AgentSettings
from services.agent_presets import PresetName, presets
from tools.base import jsonable

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["AI agents"])
catalogue = APIRouter(prefix="/v1", tags=["AI agents"])
Read = Annotated[Tenant, Depends(sub_account("conversations.read"))]
Manage = Annotated[Tenant, Depends(sub_account("ai_agents.manage"))]
FIELDS = ("id", "name", "model", "temperature", "max_tokens", "system_prompt", "personality", "capabilities",
          "enabled_channels", "mode", "channel_modes", "languages", "intents", "qualification_questions",
          "handoff_settings", "pipeline_settings", "confidence_threshold", "max_tool_loops", "is_active",
          "created_at", "updated_at")


class AgentIn(AgentSettings):
    """A new agent: `preset` applies a vertical preset (its custom fields, services, pipeline, FAQ and agent
    settings); any other field given overrides the preset's value. Without a preset, `name` is required."""

    preset: PresetName | None = Field(None, description="A preset name from GET /v1/ai-agent-presets.")
    with_faq: bool = Field(True, description="With a preset: add its starter FAQ as the agent's knowledge base.")


def _agent(agent: AIAgent, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return row(agent, only=FIELDS, extra=extra)


@catalogue.get("/ai-agent-presets", summary="The vertical presets an agent can be made from")
def list_presets(_: Annotated[Principal, Depends(principal)]) -> list[dict[str, Any]]:
    return [{"name": p.name, "vertical": p.vertical, "summary": p.summary, "agent_name": p.agent.name,
             "languages": p.agent.languages, "services": [s.name for s in p.services],
             "intents": [i.name for i in p.intents]} for p in presets().values()]


@router.get("/ai-agents", summary="List AI agents")
def list_agents(t: Read) -> list[dict[str, Any]]:
    with t.session() as s:
        return [_agent(a) for a in agents.list_agents(session=s, sub_account_id=t.sub_account_id)]


@router.post("/ai-agents", status_code=201, summary="Create an AI agent (from a preset or a full configuration)")
def create_agent(t: Manage, body: AgentIn) -> dict[str, Any]:
    settings = AgentSettings.model_validate(body.model_dump(exclude_unset=True, exclude={"preset", "with_faq"}))
    with t.session() as s:
        agent, applied = agents.create_agent_flow(session=s, sub_account_id=t.sub_account_id, settings=settings,
                                                  preset=body.preset, with_faq=body.with_faq)
        return _agent(agent, {"preset_applied": jsonable(applied.__dict__) if applied else None})


@router.get("/ai-agents/{agent_id}", summary="Get an AI agent")
def get_agent(t: Read, agent_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return _agent(agents.get_agent_or_raise(session=s, sub_account_id=t.sub_account_id, agent_id=agent_id))


@router.patch("/ai-agents/{agent_id}", summary="Change an AI agent")
def change_agent(t: Manage, agent_id: uuid.UUID, body: AgentSettings) -> dict[str, Any]:
    """Each field given replaces the stored one whole (a list of intents is the new list)."""
    with t.session() as s:
        return _agent(agents.update_agent(session=s, sub_account_id=t.sub_account_id, agent_id=agent_id,
                                          settings=body))


@router.delete("/ai-agents/{agent_id}", status_code=204, summary="Delete an AI agent")
def delete_agent(t: Manage, agent_id: uuid.UUID) -> Response:
    with t.session() as s:
        agents.delete_agent(session=s, sub_account_id=t.sub_account_id, agent_id=agent_id)
    return Response(status_code=204)
