"""Answering from the business's own knowledge base, and only from it."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sqlalchemy import select

from knowledge.retrieval import as_decimal, search
from models.ai import KnowledgeBase
from tools.base import failure, guarded
from tools.context import AgentContext, session_for


class SearchKnowledgeArgs(BaseModel):
    query: str = Field(min_length=1, max_length=500,
                       description="The lead's question in your own words, with the details that matter "
                                   "(dates, quantities, the service or product asked about)")


@tool(args_schema=SearchKnowledgeArgs)
@guarded("answer_faq")
def search_knowledge(query: str, *, config: RunnableConfig) -> dict[str, Any]:
    """Look up the business's FAQ, policies, prices and pages. Answer only from what this returns. When
    `confident` is false, say you are not sure and offer a human instead of guessing."""
    ctx = AgentContext.from_config(config)
    if ctx.sub_account_id is None:
        return failure("no_sub_account", "This run belongs to no business.")
    with session_for(ctx, config) as session:
        bases = None
        if ctx.ai_agent_id is not None:  # the agent's own knowledge bases; the whole sub-account's otherwise
            bases = list(session.scalars(select(KnowledgeBase.id).where(
                KnowledgeBase.ai_agent_id == ctx.ai_agent_id, KnowledgeBase.deleted_at.is_(None)))) or None
        # six passages: the agent may pass over the nearest in meaning for one naming what the lead named
        result = search(session=session, sub_account_id=ctx.sub_account_id, query=query, knowledge_base_ids=bases,
                        k=6)
        return {
            "confident": result.confident,
            "results": [{"text": h.text(), "similarity": as_decimal(h.similarity), "id": h.id}
                        for h in result.hits],
        }
