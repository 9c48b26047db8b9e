"""Knowledge bases and their sources: upload -> extract -> chunk -> dedupe -> embed -> training_data rows,
with progress on the source row; deletes that take the chunks with them; re-embedding when the model
changes; and the training loop that turns helpful, confident answers into suggested Q&A pairs for staff."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from knowledge.embedders import embedder_for
from knowledge.sources import Chunk, chunk, digest, extract
from models.ai import AIAgent, AIConversationLog, KnowledgeBase, KnowledgeSource, TrainingData
from services.errors import Conflict, InvalidInput, NotFound
from services.storable import unstorable

BATCH = 64
INLINE_LIMIT_CHARS = 40_000  # bigger sources are chunked and embedded by a Celery task
SUGGEST_MIN_CONFIDENCE = Decimal("0.8")
T = TypeVar("T")
Commit = Callable[[], None]


def _batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def get_knowledge_base(*, session: Session, kb_id: uuid.UUID) -> KnowledgeBase:
    """A live knowledge base of the current sub-account, or NotFound."""
    kb = session.get(KnowledgeBase, kb_id)
    if kb is None or kb.deleted_at is not None:
        raise NotFound("No such knowledge base.")
    return kb


def create_knowledge_base(*, session: Session, sub_account_id: uuid.UUID, name: str,
                          ai_agent_id: uuid.UUID | None = None, description: str | None = None,
                          embedding_model: str | None = None, min_relevance: Decimal | None = None) -> KnowledgeBase:
    """A new, empty knowledge base, optionally attached to an AI agent of the sub-account."""
    if ai_agent_id is not None and session.get(AIAgent, ai_agent_id) is None:
        raise NotFound("No such AI agent.")
    if session.scalar(select(KnowledgeBase.id).where(KnowledgeBase.name == name, KnowledgeBase.deleted_at.is_(None))):
        raise Conflict(f"A knowledge base named {name!r} already exists.", field="name")
    embedder = embedder_for(embedding_model)
    kb = KnowledgeBase(sub_account_id=sub_account_id, name=name, ai_agent_id=ai_agent_id, description=description,
                       source_type="manual", embedding_model=embedder.name, embedding_dim=embedder.dim,
                       status="ready")
    if min_relevance is not None:
        kb.min_relevance = min_relevance
    session.add(kb)
    session.flush()
    return kb


def delete_knowledge_base(*, session: Session, kb_id: uuid.UUID) -> None:
    """Remove a knowledge base with its sources and chunks."""
    kb = get_knowledge_base(session=session, kb_id=kb_id)
    session.execute(delete(TrainingData).where(TrainingData.knowledge_base_id == kb.id))
    session.execute(delete(KnowledgeSource).where(KnowledgeSource.knowledge_base_id == kb.id))
    session.delete(kb)
    session.flush()


def add_source(*, session: Session, kb_id: uuid.UUID, name: str, source_type: str, data: bytes | str
               ) -> tuple[KnowledgeSource, bool]:
    """Extract a source's text and register it (pending). The same text uploaded again returns the source
    that has it, with False: nothing changes."""
    if reason := unstorable(name):
        raise InvalidInput(f"The source's name contains {reason}.", field="name")
    kb = get_knowledge_base(session=session, kb_id=kb_id)
    text = extract(source_type, data)
    content_hash = digest(text)
    existing = session.scalar(select(KnowledgeSource).where(
        KnowledgeSource.knowledge_base_id == kb.id, KnowledgeSource.content_hash == content_hash,
        KnowledgeSource.deleted_at.is_(None)))
    if existing is not None:
        return existing, False
    source = KnowledgeSource(sub_account_id=kb.sub_account_id, knowledge_base_id=kb.id, source_type=source_type,
                             name=name[:500], content_hash=content_hash, content=text, status="pending",
                             metadata_={"chars": len(text)})
    session.add(source)
    session.flush()
    return source, True


def needs_background(source: KnowledgeSource) -> bool:
    """Whether a source is big enough to ingest in a Celery task rather than in the request."""
    return len(source.content or "") > INLINE_LIMIT_CHARS


def _insert_chunks(session: Session, kb: KnowledgeBase, source_id: uuid.UUID | None, chunks: Sequence[Chunk],
                   start_index: int, status: str = "approved") -> int:
    vectors = embedder_for(kb.embedding_model).embed([c.text() for c in chunks])
    rows = [{"id": uuid.uuid4(), "sub_account_id": kb.sub_account_id, "knowledge_base_id": kb.id,
             "source_id": source_id, "question": c.question, "answer": c.answer, "content": c.content,
             "category": c.category, "tags": c.tags, "chunk_index": start_index + i, "content_hash": c.hash(),
             "embedding": v, "embedding_model": kb.embedding_model, "status": status, "metadata": c.metadata}
            for i, (c, v) in enumerate(zip(chunks, vectors, strict=True))]
    inserted = session.execute(pg_insert(TrainingData).values(rows).on_conflict_do_nothing(
        index_elements=["knowledge_base_id", "content_hash"], index_where=TrainingData.deleted_at.is_(None)
    ).returning(TrainingData.id)).all()
    return len(inserted)


def process_source(*, session: Session, source_id: uuid.UUID, commit: Commit | None = None) -> KnowledgeSource:
    """Chunk, dedupe (against the whole knowledge base), embed in batches and store a pending source,
    updating its progress after each batch (`commit` makes that progress visible while it runs)."""
    source = session.get(KnowledgeSource, source_id)
    if source is None or source.deleted_at is not None:
        raise NotFound("No such knowledge source.")
    kb = get_knowledge_base(session=session, kb_id=source.knowledge_base_id)
    source.status, source.progress, source.error = "processing", Decimal(0), None
    session.flush()
    known = set(session.scalars(select(TrainingData.content_hash).where(
        TrainingData.knowledge_base_id == kb.id, TrainingData.deleted_at.is_(None))))
    fresh: list[Chunk] = []
    for piece in chunk(source.source_type, source.content or ""):
        if piece.hash() not in known and piece.text().strip():
            known.add(piece.hash())
            fresh.append(piece)
    stored = 0
    for done, batch in enumerate(_batches(fresh), start=1):
        stored += _insert_chunks(session, kb, source.id, batch, stored)
        source.progress = Decimal(min(done * BATCH, len(fresh))) / Decimal(len(fresh))
        source.chunk_count = stored
        session.flush()
        if commit:
            commit()
    source.status, source.progress, source.chunk_count = "ready", Decimal(1), stored
    session.flush()
    return source


def fail_source(*, session: Session, source_id: uuid.UUID, error: str) -> None:
    """Mark a source failed with the reason (its partial chunks are removed)."""
    session.execute(delete(TrainingData).where(TrainingData.source_id == source_id))
    session.execute(update(KnowledgeSource).where(KnowledgeSource.id == source_id)
                    .values(status="failed", error=error[:2000], chunk_count=0))


def delete_source(*, session: Session, source_id: uuid.UUID) -> int:
    """Remove a source and every chunk it produced; returns how many chunks went."""
    source = session.get(KnowledgeSource, source_id)
    if source is None or source.deleted_at is not None:
        raise NotFound("No such knowledge source.")
    removed = cast(CursorResult[Any], session.execute(delete(TrainingData).where(
        TrainingData.source_id == source.id))).rowcount
    session.delete(source)
    session.flush()
    return int(removed or 0)


def add_qa(*, session: Session, kb_id: uuid.UUID, question: str, answer: str, category: str | None = None,
           tags: list[str] | None = None) -> TrainingData:
    """One Q&A pair typed in by staff, embedded at once (a duplicate pair is a 409)."""
    kb = get_knowledge_base(session=session, kb_id=kb_id)
    piece = Chunk(question=question.strip(), answer=answer.strip(), category=category, tags=tags or [])
    if not piece.question or not piece.answer:
        raise InvalidInput("Both question and answer are needed.")
    if not _insert_chunks(session, kb, None, [piece], 0):
        raise Conflict("This question and answer are already in the knowledge base.")
    return session.scalars(select(TrainingData).where(TrainingData.knowledge_base_id == kb.id,
                                                      TrainingData.content_hash == piece.hash(),
                                                      TrainingData.deleted_at.is_(None))).one()


def embed_missing(*, session: Session, kb_id: uuid.UUID | None = None) -> int:
    """Embed approved chunks that have no vector yet (seeded or imported rows), with their base's model."""
    query = select(TrainingData, KnowledgeBase.embedding_model).join(
        KnowledgeBase, KnowledgeBase.id == TrainingData.knowledge_base_id).where(
        TrainingData.embedding.is_(None), TrainingData.status == "approved", TrainingData.deleted_at.is_(None))
    if kb_id is not None:
        query = query.where(TrainingData.knowledge_base_id == kb_id)
    rows = session.execute(query.order_by(TrainingData.knowledge_base_id, TrainingData.chunk_index)).all()
    for batch in _batches(rows):
        by_model: dict[str, list[TrainingData]] = {}
        for row, model in batch:
            by_model.setdefault(model, []).append(row)
        for model, items in by_model.items():
            vectors = embedder_for(model).embed([_text(r) for r in items])
            for item, vector in zip(items, vectors, strict=True):
                item.embedding, item.embedding_model = vector, model
        session.flush()
    return len(rows)


def _text(row: TrainingData) -> str:
    return Chunk(question=row.question, answer=row.answer, content=row.content).text()


def reembed(*, session: Session, kb_id: uuid.UUID, model: str, commit: Commit | None = None) -> int:
    """Switch a knowledge base to another embedding model and re-embed every chunk with it."""
    kb = get_knowledge_base(session=session, kb_id=kb_id)
    embedder = embedder_for(model)
    kb.embedding_model, kb.embedding_dim, kb.status = embedder.name, embedder.dim, "reembedding"
    session.flush()
    ids = list(session.scalars(select(TrainingData.id).where(TrainingData.knowledge_base_id == kb.id,
                                                             TrainingData.deleted_at.is_(None))))
    for batch in _batches(ids):
        rows = session.scalars(select(TrainingData).where(TrainingData.id.in_(batch))).all()
        for row, vector in zip(rows, embedder.embed([_text(r) for r in rows]), strict=True):
            row.embedding, row.embedding_model = vector, embedder.name
        session.flush()
        if commit:
            commit()
    kb.status = "ready"
    session.flush()
    return len(ids)


def suggest_from_logs(*, session: Session, kb_id: uuid.UUID, min_confidence: Decimal = SUGGEST_MIN_CONFIDENCE
                      ) -> int:
    """The training loop: answers of this base's agent that staff marked helpful and the model gave with
    confidence above `min_confidence` become suggested Q&A pairs (once per log) for staff to approve."""
    kb = get_knowledge_base(session=session, kb_id=kb_id)
    taken = select(TrainingData.source_log_id).where(TrainingData.source_log_id.is_not(None))
    logs = session.scalars(select(AIConversationLog).where(
        AIConversationLog.was_helpful.is_(True), AIConversationLog.confidence_score > min_confidence,
        AIConversationLog.user_input.is_not(None), AIConversationLog.ai_response.is_not(None),
        AIConversationLog.id.not_in(taken),
        *([AIConversationLog.ai_agent_id == kb.ai_agent_id] if kb.ai_agent_id else []),
    ).order_by(AIConversationLog.created_at)).all()
    made = 0
    for log in logs:
        piece = Chunk(question=(log.user_input or "").strip(), answer=(log.ai_response or "").strip())
        made += len(session.execute(pg_insert(TrainingData).values(
            sub_account_id=kb.sub_account_id, knowledge_base_id=kb.id, source_log_id=log.id,
            question=piece.question, answer=piece.answer, content_hash=piece.hash(), status="suggested",
            metadata={"confidence": str(log.confidence_score)},
        ).on_conflict_do_nothing(index_elements=["knowledge_base_id", "content_hash"],
                                 index_where=TrainingData.deleted_at.is_(None)).returning(TrainingData.id)).all())
    return made


def review_suggestion(*, session: Session, training_id: uuid.UUID, approve: bool, question: str | None = None,
                      answer: str | None = None) -> TrainingData:
    """Approve (optionally edited; then it is embedded and searchable) or reject a suggested pair."""
    row = session.get(TrainingData, training_id)
    if row is None or row.deleted_at is not None or row.status != "suggested":
        raise NotFound("No such suggestion.")
    if not approve:
        row.status = "rejected"
        session.flush()
        return row
    kb = get_knowledge_base(session=session, kb_id=row.knowledge_base_id)
    row.question, row.answer = (question or row.question or "").strip(), (answer or row.answer or "").strip()
    row.content_hash = Chunk(question=row.question, answer=row.answer).hash()
    row.embedding = embedder_for(kb.embedding_model).embed([_text(row)])[0]
    row.embedding_model, row.status = kb.embedding_model, "approved"
    session.flush()
    return row


def chunk_page(*, session: Session, kb_id: uuid.UUID, status: str = "approved", page: int = 1,
               page_size: int = 50) -> tuple[list[TrainingData], int]:
    """The chunks of a knowledge base, in source order."""
    get_knowledge_base(session=session, kb_id=kb_id)
    where: list[Any] = [TrainingData.knowledge_base_id == kb_id, TrainingData.status == status,
                        TrainingData.deleted_at.is_(None)]
    total = session.scalar(select(func.count()).select_from(TrainingData).where(*where)) or 0
    rows = session.scalars(select(TrainingData).where(*where).order_by(
        TrainingData.source_id, TrainingData.chunk_index, TrainingData.id).offset((page - 1) * page_size)
        .limit(page_size)).all()
    return list(rows), total


def add_funnel_pages(*, session: Session, kb_id: uuid.UUID) -> list[tuple[KnowledgeSource, bool]]:
    """Every published page of the sub-account's funnels, as one source per page (main text only)."""
    from models.sites import Funnel, Page

    pages = session.execute(select(Page, Funnel.name).join(Funnel, Funnel.id == Page.funnel_id).where(
        Page.is_published, Page.deleted_at.is_(None), Funnel.deleted_at.is_(None), Page.html_content.is_not(None),
    ).order_by(Funnel.name, Page.position)).all()
    added = []
    for page, funnel in pages:
        try:
            added.append(add_source(session=session, kb_id=kb_id, name=f"{funnel} / {page.name}",
                                    source_type="funnel_page", data=page.html_content or ""))
        except InvalidInput:
            continue  # a page with no text (a pure image or form page) has nothing to learn from
    return added
