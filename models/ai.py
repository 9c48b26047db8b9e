"""AI: agent configs, knowledge bases and their sources, training data with embeddings, model-call logs."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import CheckConstraint, Computed, Index, Numeric, text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    Entity,
    SubAccountOwned,
    UUIDPrimaryKey,
    choice,
    counter,
    fk,
    flag,
    jsonb_list,
    jsonb_obj,
    short,
)

EMBEDDING_DIM = 384
AI_MODES = ("off", "suggestive", "autopilot")
CAPABILITIES = ("answer_faq", "book_appointments", "qualify_leads", "take_payments", "escalate_to_human",
                "reporting")
KB_SOURCE_TYPES = ("manual", "text", "markdown", "html", "pdf", "csv", "funnel_page", "url")
KB_STATUSES = ("ready", "ingesting", "reembedding", "failed")
SOURCE_STATUSES = ("pending", "processing", "ready", "failed")
TRAINING_STATUSES = ("approved", "suggested", "rejected")
DECISIONS = ("answer", "ask", "handoff", "tool", "refuse")


class AIAgent(Entity, Base):
    """An AI employee of a sub-account: model, persona, capabilities, channels and handoff rules."""

    __tablename__ = "ai_agents"
    __table_args__ = (
        CheckConstraint("temperature BETWEEN 0 AND 2", name="temperature_range"),
        CheckConstraint("confidence_threshold BETWEEN 0 AND 1", name="confidence_range"),
        CheckConstraint("max_tool_loops > 0", name="loops_positive"),
    )

    name: Mapped[str] = short(255, nullable=False)
    model: Mapped[str] = short(120, nullable=False, server_default="local")
    temperature: Mapped[Decimal] = mapped_column(Numeric(3, 2), nullable=False, server_default=text("0.7"))
    max_tokens: Mapped[int] = mapped_column(nullable=False, server_default=text("2000"))
    system_prompt: Mapped[str] = mapped_column(nullable=False, server_default="")
    # tone, style, emoji_usage, max_sms_chars
    personality: Mapped[dict[str, Any]] = jsonb_obj()
    capabilities: Mapped[list[Any]] = jsonb_list()
    enabled_channels: Mapped[list[Any]] = jsonb_list()
    mode: Mapped[str] = mapped_column(choice("ai_agent_mode", *AI_MODES), nullable=False,
                                      server_default="autopilot")
    # per-channel override of mode: {"email": "suggestive"}
    channel_modes: Mapped[dict[str, Any]] = jsonb_obj()
    # [{"field", "question", "translations": {"es": ...}, "ask": "on_enquiry" | "before_booking"}]
    qualification_questions: Mapped[list[Any]] = jsonb_list()
    # the business's own intents: [{"name", "examples": [...], "action": "qualify" | "book" | "handoff" | "answer",
    # "service": a service name, "handoff_reason": a handoff reason}] (services/agents.py validates them)
    intents: Mapped[list[Any]] = jsonb_list()
    # languages the business answers in; the first is the default
    languages: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=lambda: ["en"],
                                                 server_default=text("'[\"en\"]'::jsonb"))
    # per handoff scenario: assignee/team, final message, tags, task, reactivation minutes
    handoff_settings: Mapped[dict[str, Any]] = jsonb_obj()
    # where the agent puts the lead's deal (GoHighLevel's opportunity actions of a bot), by stage name of the
    # default pipeline: {"on_qualified": "Qualified", "on_booked": "Proposal Sent"}; unset: first stage, no move
    pipeline_settings: Mapped[dict[str, Any]] = jsonb_obj()
    confidence_threshold: Mapped[Decimal] = mapped_column(Numeric(3, 2), nullable=False, server_default=text("0.5"))
    max_tool_loops: Mapped[int] = mapped_column(nullable=False, server_default=text("6"))
    is_active: Mapped[bool] = flag(True)


class KnowledgeBase(Entity, Base):
    """A body of knowledge an agent answers from; records the embedder that indexed it."""

    __tablename__ = "knowledge_bases"

    ai_agent_id: Mapped[uuid.UUID | None] = fk("ai_agents.id", ondelete="SET NULL", nullable=True)
    name: Mapped[str] = short(255, nullable=False)
    description: Mapped[str | None]
    source_type: Mapped[str] = mapped_column(choice("knowledge_base_source_type", *KB_SOURCE_TYPES),
                                             nullable=False, server_default="manual")
    embedding_model: Mapped[str] = short(255, nullable=False, server_default="all-MiniLM-L6-v2")
    embedding_dim: Mapped[int] = mapped_column(nullable=False, server_default=text(str(EMBEDDING_DIM)))
    status: Mapped[str] = mapped_column(choice("knowledge_base_status", *KB_STATUSES), nullable=False,
                                        server_default="ready")
    min_relevance: Mapped[Decimal] = mapped_column(Numeric(4, 3), nullable=False, server_default=text("0.35"))
    settings: Mapped[dict[str, Any]] = jsonb_obj()


class KnowledgeSource(Entity, Base):
    """An uploaded document or page ingested into a knowledge base, with ingestion progress."""

    __tablename__ = "knowledge_sources"
    __table_args__ = (
        Index("uq_knowledge_sources_hash", "knowledge_base_id", "content_hash", unique=True,
              postgresql_where=text("deleted_at IS NULL")),
    )

    knowledge_base_id: Mapped[uuid.UUID] = fk("knowledge_bases.id", ondelete="CASCADE")
    source_type: Mapped[str] = mapped_column(choice("knowledge_source_type", *KB_SOURCE_TYPES), nullable=False)
    name: Mapped[str] = short(500, nullable=False)
    content_hash: Mapped[str] = short(64, nullable=False)
    status: Mapped[str] = mapped_column(choice("knowledge_source_status", *SOURCE_STATUSES), nullable=False,
                                        server_default="pending")
    progress: Mapped[Decimal] = mapped_column(Numeric(5, 4), nullable=False, server_default=text("0"))
    chunk_count: Mapped[int] = counter()
    error: Mapped[str | None]
    # the extracted text, kept so a background ingest (and a later re-chunk) needs no upload store
    content: Mapped[str | None]
    metadata_: Mapped[dict[str, Any]] = jsonb_obj("metadata")


class TrainingData(Entity, Base):
    """A Q&A pair or content chunk with its embedding and full-text vector (the RAG corpus)."""

    __tablename__ = "training_data"
    # derived from knowledge_sources (which are audited); re-embedding must not flood the trail
    __audited__: ClassVar[bool] = False
    __table_args__ = (
        Index("uq_training_data_hash", "knowledge_base_id", "content_hash", unique=True,
              postgresql_where=text("deleted_at IS NULL")),
        Index("ix_training_data_embedding", "embedding", postgresql_using="hnsw",
              postgresql_with={"m": 16, "ef_construction": 64},
              postgresql_ops={"embedding": "vector_cosine_ops"}),
        Index("ix_training_data_search", "search_tsv", postgresql_using="gin"),
        Index("ix_training_data_kb_status", "sub_account_id", "knowledge_base_id", "status"),
    )

    knowledge_base_id: Mapped[uuid.UUID] = fk("knowledge_bases.id", ondelete="CASCADE", index=False)
    source_id: Mapped[uuid.UUID | None] = fk("knowledge_sources.id", ondelete="CASCADE", nullable=True)
    source_log_id: Mapped[uuid.UUID | None] = fk("ai_conversation_logs.id", ondelete="SET NULL", nullable=True)
    question: Mapped[str | None]
    answer: Mapped[str | None]
    content: Mapped[str | None]
    category: Mapped[str | None] = short(120)
    tags: Mapped[list[Any]] = jsonb_list()
    chunk_index: Mapped[int] = counter()
    content_hash: Mapped[str] = short(64, nullable=False)
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIM), nullable=True)
    embedding_model: Mapped[str | None] = short(255)
    status: Mapped[str] = mapped_column(choice("training_data_status", *TRAINING_STATUSES), nullable=False,
                                        server_default="approved")
    metadata_: Mapped[dict[str, Any]] = jsonb_obj("metadata")
    search_tsv: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('english'::regconfig, coalesce(question, '') || ' ' || coalesce(answer, '') || ' '"
            " || coalesce(content, '') || ' ' || coalesce(category, ''))",
            persisted=True,
        ),
    )


class AIConversationLog(UUIDPrimaryKey, SubAccountOwned, Base):
    """One model call of an agent: input, output, retrieved docs, tools, confidence, tokens, latency."""

    __tablename__ = "ai_conversation_logs"
    __table_args__ = (
        CheckConstraint("confidence_score BETWEEN 0 AND 1", name="confidence_range"),
        Index("ix_ai_conversation_logs_agent_created", "ai_agent_id", "created_at"),
    )

    ai_agent_id: Mapped[uuid.UUID | None] = fk("ai_agents.id", ondelete="SET NULL", nullable=True, index=False)
    conversation_id: Mapped[uuid.UUID | None] = fk("conversations.id", ondelete="SET NULL", nullable=True)
    message_id: Mapped[uuid.UUID | None] = fk("messages.id", ondelete="SET NULL", nullable=True)
    user_input: Mapped[str | None]
    ai_response: Mapped[str | None]
    context: Mapped[dict[str, Any]] = jsonb_obj()
    retrieved_docs: Mapped[list[Any]] = jsonb_list()
    tools_called: Mapped[list[Any]] = jsonb_list()
    decision: Mapped[str | None] = mapped_column(choice("ai_decision", *DECISIONS))
    confidence_score: Mapped[Decimal | None] = mapped_column(Numeric(4, 3))
    was_helpful: Mapped[bool | None]
    model: Mapped[str | None] = short(120)
    prompt_tokens: Mapped[int] = counter()
    completion_tokens: Mapped[int] = counter()
    total_tokens: Mapped[int] = counter()
    latency_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))

