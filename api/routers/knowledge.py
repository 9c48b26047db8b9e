"""Knowledge bases: sources (upload, progress, delete), chunks, Q&A pairs, search with scores, re-embedding,
and the training loop's suggestions."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api.deps import Tenant, sub_account
from api.schemas import row
from knowledge import ingest
from knowledge.retrieval import as_decimal, search
from models.ai import KnowledgeBase, KnowledgeSource, TrainingData
from services.errors import NotFound

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["Knowledge"])
Read = Annotated[Tenant, Depends(sub_account("conversations.read"))]
Manage = Annotated[Tenant, Depends(sub_account("ai_agents.manage"))]
SourceType = Literal["text", "markdown", "html", "pdf", "csv"]
SOURCE_FIELDS = ("id", "knowledge_base_id", "name", "source_type", "status", "progress", "chunk_count", "error",
                 "created_at", "updated_at")


class KnowledgeBaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    ai_agent_id: uuid.UUID | None = None
    embedding_model: str | None = Field(None, description="Default: the configured one (all-MiniLM-L6-v2).")
    min_relevance: Decimal | None = Field(None, ge=0, le=1, description="Below this best-hit cosine similarity "
                                          "the agent says it does not know (or hands off).")


class KnowledgeBaseChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    min_relevance: Decimal | None = Field(None, ge=0, le=1)
    embedding_model: str | None = Field(None, description="Changing it re-embeds every chunk in the background.")


class TextSourceIn(BaseModel):
    name: str = Field(min_length=1, max_length=500)
    source_type: SourceType = "text"
    text: str = Field(min_length=1)


class QAIn(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    answer: str = Field(min_length=1, max_length=20_000)
    category: str | None = Field(None, max_length=120)
    tags: list[str] = []


class ReviewIn(BaseModel):
    question: str | None = Field(None, description="An edited question (default: as suggested).")
    answer: str | None = Field(None, description="An edited answer (default: as suggested).")


def _kb(session: Any, kb: KnowledgeBase) -> dict[str, Any]:
    counts = {status: n for status, n in session.execute(select(TrainingData.status, func.count()).where(
        TrainingData.knowledge_base_id == kb.id, TrainingData.deleted_at.is_(None)).group_by(TrainingData.status))}
    return row(kb, extra={"chunks": counts.get("approved", 0), "suggestions": counts.get("suggested", 0)})


def _chunk(r: TrainingData) -> dict[str, Any]:
    return row(r, only=("id", "knowledge_base_id", "source_id", "question", "answer", "content", "category", "tags",
                        "chunk_index", "status", "embedding_model", "created_at"))


def _ingest(t: Tenant, kb_id: uuid.UUID, name: str, source_type: str, data: bytes | str,
            response: Response) -> dict[str, Any]:
    """Register the source; small ones are chunked and embedded now (201), big ones by a worker (202);
    the same content again changes nothing (200)."""
    with t.session() as s:
        source, created = ingest.add_source(session=s, kb_id=kb_id, name=name, source_type=source_type, data=data)
        background = created and ingest.needs_background(source)
        if created and not background:
            ingest.process_source(session=s, source_id=source.id)
        body = row(source, only=SOURCE_FIELDS, extra={"duplicate": not created})
    if background:  # only once the pending row is committed, so the worker finds it
        from workers.tasks import ingest_source

        ingest_source.delay(str(source.id), str(t.scope.agency_id), str(t.sub_account_id))
    response.status_code = 202 if background else 201 if created else 200
    return body


@router.get("/knowledge-bases", summary="List knowledge bases")
def list_bases(t: Read) -> list[dict[str, Any]]:
    with t.session() as s:
        bases = s.scalars(select(KnowledgeBase).where(KnowledgeBase.deleted_at.is_(None))
                          .order_by(KnowledgeBase.name)).all()
        return [_kb(s, kb) for kb in bases]


@router.post("/knowledge-bases", status_code=201, summary="Create a knowledge base")
def create_base(t: Manage, body: KnowledgeBaseIn) -> dict[str, Any]:
    with t.session() as s:
        return _kb(s, ingest.create_knowledge_base(session=s, sub_account_id=t.sub_account_id, **body.model_dump()))


@router.get("/knowledge-bases/{kb_id}", summary="Get a knowledge base")
def get_base(t: Read, kb_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return _kb(s, ingest.get_knowledge_base(session=s, kb_id=kb_id))


@router.patch("/knowledge-bases/{kb_id}", summary="Change a knowledge base")
def change_base(t: Manage, kb_id: uuid.UUID, body: KnowledgeBaseChange, response: Response) -> dict[str, Any]:
    """A new `embedding_model` marks the base `reembedding` and re-embeds it in the background (202)."""
    changes = body.model_dump(exclude_unset=True)
    model = changes.pop("embedding_model", None)
    with t.session() as s:
        kb = ingest.get_knowledge_base(session=s, kb_id=kb_id)
        for name, value in changes.items():
            setattr(kb, name, value)
        reembed = model is not None and model != kb.embedding_model
        if reembed:
            from knowledge.embedders import embedder_for

            embedder_for(model)  # an unusable model is refused now (422), not in the worker
            kb.status = "reembedding"
        s.flush()
        body_out = _kb(s, kb)
    if reembed:
        from workers.tasks import reembed_knowledge_base

        reembed_knowledge_base.delay(str(kb_id), model, str(t.scope.agency_id), str(t.sub_account_id))
        response.status_code = 202
    return body_out


@router.delete("/knowledge-bases/{kb_id}", status_code=204, summary="Delete a knowledge base and its chunks")
def delete_base(t: Manage, kb_id: uuid.UUID) -> Response:
    with t.session() as s:
        ingest.delete_knowledge_base(session=s, kb_id=kb_id)
    return Response(status_code=204)


@router.post("/knowledge-bases/{kb_id}/sources", summary="Upload a source file",
             responses={200: {"description": "Already there"}, 201: {"description": "Ingested"},
                        202: {"description": "Queued for a worker; poll the source for progress"}})
def upload(t: Manage, kb_id: uuid.UUID, response: Response, file: Annotated[UploadFile, File()],
           source_type: Annotated[SourceType, Form()], name: Annotated[str | None, Form()] = None) -> dict[str, Any]:
    """Text, Markdown, HTML (main text only), PDF (its text layer) or a CSV of question,answer rows."""
    data = file.file.read()
    return _ingest(t, kb_id, name or file.filename or "upload", source_type, data, response)


@router.post("/knowledge-bases/{kb_id}/sources/text", summary="Add pasted text",
             responses={200: {"description": "Already there"}, 201: {"description": "Ingested"},
                        202: {"description": "Queued for a worker"}})
def add_text(t: Manage, kb_id: uuid.UUID, body: TextSourceIn, response: Response) -> dict[str, Any]:
    return _ingest(t, kb_id, body.name, body.source_type, body.text, response)


@router.post("/knowledge-bases/{kb_id}/sources/funnel-pages", summary="Learn the sub-account's funnel pages")
def add_pages(t: Manage, kb_id: uuid.UUID) -> dict[str, Any]:
    """Every published funnel page becomes a source (main text only); unchanged pages change nothing."""
    with t.session() as s:
        added = ingest.add_funnel_pages(session=s, kb_id=kb_id)
        for source, created in added:
            if created:
                ingest.process_source(session=s, source_id=source.id)
        return {"sources": [row(src, only=SOURCE_FIELDS, extra={"duplicate": not created}) for src, created in added]}


@router.get("/knowledge-bases/{kb_id}/sources", summary="Sources with their progress")
def list_sources(t: Read, kb_id: uuid.UUID) -> list[dict[str, Any]]:
    with t.session() as s:
        ingest.get_knowledge_base(session=s, kb_id=kb_id)
        return [row(x, only=SOURCE_FIELDS) for x in s.scalars(select(KnowledgeSource).where(
            KnowledgeSource.knowledge_base_id == kb_id, KnowledgeSource.deleted_at.is_(None))
            .order_by(KnowledgeSource.created_at))]


@router.get("/knowledge-bases/{kb_id}/sources/{source_id}", summary="One source and its ingestion progress")
def get_source(t: Read, kb_id: uuid.UUID, source_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        source = s.get(KnowledgeSource, source_id)
        if source is None or source.knowledge_base_id != kb_id or source.deleted_at is not None:
            raise NotFound("No such knowledge source.")
        return row(source, only=SOURCE_FIELDS)


@router.delete("/knowledge-bases/{kb_id}/sources/{source_id}", summary="Delete a source and its chunks")
def delete_source(t: Manage, kb_id: uuid.UUID, source_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        source = s.get(KnowledgeSource, source_id)
        if source is None or source.knowledge_base_id != kb_id:
            raise NotFound("No such knowledge source.")
        return {"chunks_removed": ingest.delete_source(session=s, source_id=source_id)}


@router.get("/knowledge-bases/{kb_id}/chunks", summary="Chunks (or suggestions) of a knowledge base")
def list_chunks(t: Read, kb_id: uuid.UUID, status: Literal["approved", "suggested", "rejected"] = "approved",
                page: Annotated[int, Query(ge=1, le=100_000)] = 1,
                page_size: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    with t.session() as s:
        rows, total = ingest.chunk_page(session=s, kb_id=kb_id, status=status, page=page, page_size=page_size)
        return {"items": [_chunk(r) for r in rows], "total": total, "page": page, "page_size": page_size}


@router.post("/knowledge-bases/{kb_id}/qa", status_code=201, summary="Add one question and answer")
def add_qa(t: Manage, kb_id: uuid.UUID, body: QAIn) -> dict[str, Any]:
    with t.session() as s:
        return _chunk(ingest.add_qa(session=s, kb_id=kb_id, **body.model_dump()))


@router.get("/knowledge/search", summary="Search knowledge with scores")
def search_knowledge(t: Read, q: Annotated[str, Query(min_length=1, max_length=2000)],
                     kb: Annotated[list[uuid.UUID], Query(description="Knowledge bases (default: all)")] = [],  # noqa: B006
                     k: Annotated[int, Query(ge=1, le=50)] = 5,
                     mode: Literal["hybrid", "vector", "text"] = "hybrid") -> dict[str, Any]:
    """Hybrid = vector (HNSW cosine) and full text fused by weighted reciprocal rank. Each hit carries its
    cosine `similarity`, full-text `text_rank` and fused `score`; `confident` says whether the best similarity
    reaches the knowledge base's `min_relevance`."""
    with t.session() as s:
        result = search(session=s, sub_account_id=t.sub_account_id, query=q, knowledge_base_ids=kb or None, k=k,
                        mode=mode)
        return {"query": result.query, "mode": result.mode, "confident": result.confident,
                "min_relevance": result.min_relevance,
                "hits": [{"id": str(h.id), "knowledge_base_id": str(h.knowledge_base_id), "question": h.question,
                          "answer": h.answer, "content": h.content, "category": h.category,
                          "similarity": as_decimal(h.similarity), "text_rank": as_decimal(h.text_rank),
                          "score": as_decimal(h.score)} for h in result.hits]}


@router.post("/knowledge-bases/{kb_id}/suggestions", summary="Suggest Q&A pairs from helpful answers")
def suggest(t: Manage, kb_id: uuid.UUID) -> dict[str, Any]:
    """Answers of the base's agent marked helpful with confidence above 0.8 become suggestions (once each)."""
    with t.session() as s:
        return {"suggested": ingest.suggest_from_logs(session=s, kb_id=kb_id)}


@router.post("/training-data/{training_id}/approve", summary="Approve a suggestion (optionally edited)")
def approve(t: Manage, training_id: uuid.UUID, body: ReviewIn) -> dict[str, Any]:
    with t.session() as s:
        return _chunk(ingest.review_suggestion(session=s, training_id=training_id, approve=True,
                                               question=body.question, answer=body.answer))


@router.post("/training-data/{training_id}/reject", summary="Reject a suggestion")
def reject(t: Manage, training_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return _chunk(ingest.review_suggestion(session=s, training_id=training_id, approve=False))
