"""Hybrid retrieval over training_data: pgvector HNSW cosine search and Postgres full-text search, fused by
reciprocal rank, always inside one sub-account (row-level security, and the explicit filter) and the asked
knowledge bases. pgvector 0.8's iterative index scan keeps reading the HNSW graph until enough rows pass the
filter, so a small knowledge base among thousands never comes back short."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from knowledge.embedders import embedder_for
from knowledge.query import content_words, normalise
from models.ai import KnowledgeBase, TrainingData
from services.errors import InvalidInput, NotFound

Mode = Literal["hybrid", "vector", "text"]
# Weighted reciprocal rank fusion: the semantic ranking is much the stronger on paraphrased questions; full
# text contributes exact words the embedding blurs (codes, names, prices). Tuned on restaurant A's labelled
# questions only (text weights 0 to 0.5 tied on hit@5 there; 0.2 is the largest that kept A's MRR within 1%
# of vector-only), then checked on restaurant B's: see README, "Knowledge bases".
RRF_K = 10
VECTOR_WEIGHT, TEXT_WEIGHT = 1.0, 0.2
CANDIDATES = 40  # per retriever, before fusion
EF_SEARCH = 100


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with every score that placed it."""

    id: uuid.UUID
    knowledge_base_id: uuid.UUID
    question: str | None
    answer: str | None
    content: str | None
    category: str | None
    similarity: float | None  # cosine similarity of the query and the chunk, -1..1 (None: not a vector hit)
    text_rank: float | None  # ts_rank_cd of the full-text match (None: no shared words)
    score: float  # what the list is ordered by (RRF for hybrid)

    def text(self) -> str:
        return f"{self.question}\n{self.answer}" if self.question else self.content or ""


@dataclass(frozen=True)
class SearchResult:
    """Hits best first, and whether the best is relevant enough to answer from."""

    query: str
    hits: list[Hit]
    min_relevance: float
    confident: bool
    mode: Mode
    knowledge_base_ids: list[uuid.UUID] = field(default_factory=list)


def _or_query(query: str) -> str:
    """Any content word may match (websearch syntax): a paraphrase shares some words, rarely all of them. Stop
    words of English and Spanish are left out ("tengo" and "me" would match entries about something else); a
    query of stop words only keeps them all."""
    words = content_words(query) or re.findall(r"[\w']+", query.lower())
    return " or ".join(words)


def _bases(session: Session, knowledge_base_ids: Sequence[uuid.UUID] | None) -> list[KnowledgeBase]:
    query = select(KnowledgeBase).where(KnowledgeBase.deleted_at.is_(None))
    if knowledge_base_ids is not None:
        query = query.where(KnowledgeBase.id.in_(list(knowledge_base_ids)))
    bases = list(session.scalars(query))
    if knowledge_base_ids is not None and len(bases) != len(set(knowledge_base_ids)):
        raise NotFound("No such knowledge base.")
    return bases


def nearest(*, session: Session, vector: Sequence[float], limit: int, where: Sequence[Any] = (),
            iterative: bool = True, ef_search: int = EF_SEARCH) -> list[tuple[uuid.UUID, float]]:
    """The `limit` approved chunks nearest to `vector` by cosine distance through the HNSW index, among the
    rows `where` admits (and row-level security lets through). With `iterative`, pgvector 0.8 keeps scanning
    the graph until `limit` rows pass the filter (relaxed order, re-sorted exactly here); without it, a
    selective filter can leave fewer than `limit` (the failure the benchmark shows)."""
    # both transaction-local (SET LOCAL), in one round trip
    session.execute(select(func.set_config("hnsw.iterative_scan", "relaxed_order" if iterative else "off", True),
                           func.set_config("hnsw.ef_search", str(int(ef_search)), True)))
    distance = TrainingData.embedding.cosine_distance(list(vector))
    rows = session.execute(select(TrainingData.id, distance).where(*where, TrainingData.embedding.is_not(None))
                           .order_by(distance).limit(limit)).all()
    return sorted(((row_id, float(dist)) for row_id, dist in rows), key=lambda r: r[1])


def search(*, session: Session, sub_account_id: uuid.UUID, query: str,
           knowledge_base_ids: Sequence[uuid.UUID] | None = None, k: int = 5, mode: Mode = "hybrid",
           min_relevance: float | None = None) -> SearchResult:
    """The `k` best chunks for `query` among the approved chunks of the given knowledge bases (default:
    every knowledge base of the sub-account). `confident` is False when the best cosine similarity is under
    the knowledge base's min_relevance: the agent should say it does not know, or hand off."""
    query = query.strip()
    if not query:
        raise InvalidInput("Ask something.", field="q")
    said = normalise(query) or query  # what the embedding and the full-text parser read
    if not 1 <= k <= 50:
        raise InvalidInput("k is 1 to 50.", field="k")
    bases = [b for b in _bases(session, knowledge_base_ids) if b.sub_account_id == sub_account_id]
    if not bases:
        return SearchResult(query, [], min_relevance or 0.0, False, mode)
    models = {b.embedding_model for b in bases}
    if len(models) > 1:
        raise InvalidInput("These knowledge bases use different embedding models; search them one at a time.")
    threshold = min_relevance if min_relevance is not None else float(max(b.min_relevance for b in bases))
    ids = [b.id for b in bases]
    scope = (TrainingData.sub_account_id == sub_account_id, TrainingData.knowledge_base_id.in_(ids),
             TrainingData.status == "approved", TrainingData.deleted_at.is_(None))
    vector = embedder_for(models.pop()).embed([said])[0]
    distance = TrainingData.embedding.cosine_distance(vector)
    similarities: dict[uuid.UUID, float] = {}
    vector_order: list[uuid.UUID] = []
    if mode in ("hybrid", "vector"):
        for row_id, dist in nearest(session=session, vector=vector, limit=CANDIDATES, where=scope):
            vector_order.append(row_id)
            similarities[row_id] = 1.0 - dist
    text_ranks: dict[uuid.UUID, float] = {}
    text_order: list[uuid.UUID] = []
    if mode in ("hybrid", "text") and _or_query(said):
        tsquery = func.websearch_to_tsquery("english", literal(_or_query(said)))
        rank = func.ts_rank_cd(TrainingData.search_tsv, tsquery)
        rows = session.execute(select(TrainingData.id, rank).where(*scope, TrainingData.search_tsv.op("@@")(tsquery))
                               .order_by(rank.desc(), TrainingData.question, TrainingData.content,
                                         TrainingData.id).limit(CANDIDATES)).all()  # ties: the same order each build
        for row_id, value in rows:
            text_order.append(row_id)
            text_ranks[row_id] = float(value)
    if mode == "vector":
        scored = {i: similarities[i] for i in vector_order}
    elif mode == "text":
        scored = {i: text_ranks[i] for i in text_order}
    else:
        scored = {}
        for order, weight in ((vector_order, VECTOR_WEIGHT), (text_order, TEXT_WEIGHT)):
            for position, row_id in enumerate(order, start=1):
                scored[row_id] = scored.get(row_id, 0.0) + weight / (RRF_K + position)
    # ties broken by meaning, then by the row's place in the rankings, never by its (random) id alone
    best = sorted(scored, key=lambda i: (-scored[i], -similarities.get(i, -1.0), str(i)))[:k]
    rows_by_id = {r.id: r for r in session.scalars(select(TrainingData).where(TrainingData.id.in_(best)))}
    if best and any(i not in similarities for i in best):  # text-only hits still get their true similarity
        missing = [i for i in best if i not in similarities]
        for row_id, dist in session.execute(select(TrainingData.id, distance).where(TrainingData.id.in_(missing))):
            similarities[row_id] = 1.0 - float(dist) if dist is not None else None  # type: ignore[assignment]
    hits = [Hit(id=i, knowledge_base_id=rows_by_id[i].knowledge_base_id, question=rows_by_id[i].question,
                answer=rows_by_id[i].answer, content=rows_by_id[i].content, category=rows_by_id[i].category,
                similarity=similarities.get(i), text_rank=text_ranks.get(i), score=round(scored[i], 6))
            for i in best]
    top = max((h.similarity for h in hits if h.similarity is not None), default=None)
    return SearchResult(query, hits, threshold, top is not None and top >= threshold, mode, ids)


def as_decimal(value: float | None) -> Decimal | None:
    """A score as a short exact decimal for JSON."""
    return None if value is None else Decimal(str(round(value, 4)))
