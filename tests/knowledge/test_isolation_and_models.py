"""Tenant isolation of retrieval under load from other tenants, and the OpenAI-compatible embedder path
(against a local server speaking the /v1/embeddings protocol) including a background-style re-embed."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import insert, select

from knowledge import ingest
from knowledge.embedders import embedder_for
from knowledge.retrieval import search
from leadpilot.settings import get_settings
from models.ai import KnowledgeBase, TrainingData
from models.db import TenantScope, apply_scope
from models.tenancy import SubAccount
from tests.conftest import Demo

pytestmark = pytest.mark.integration


def test_two_hundred_other_knowledge_bases_never_leak_into_a_search(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """Other sub-accounts hold exact copies of A's best answers (identical vectors, better text matches):
    a search in A still returns only A's rows, with or without the iterative scan finding them."""
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    ours = session.scalars(select(TrainingData).where(  # the seeded FAQ's pairs, not a document another test added
        TrainingData.status == "approved", TrainingData.question.is_not(None), TrainingData.source_id.is_not(None),
        TrainingData.deleted_at.is_(None)).order_by(TrainingData.chunk_index, TrainingData.id).limit(5)).all()
    copies = [{"question": r.question, "answer": r.answer, "embedding": r.embedding, "category": r.category}
              for r in ours]
    apply_scope(session, TenantScope(agency_id=demo.agency_id))
    others = [SubAccount(agency_id=demo.agency_id, name=f"Leak test {i}", slug=f"leak-{uuid.uuid4().hex[:10]}")
              for i in range(200)]
    session.add_all(others)
    session.flush()
    bases = [KnowledgeBase(sub_account_id=s.id, name="Copied FAQ", source_type="manual") for s in others]
    session.add_all(bases)
    session.flush()
    session.execute(insert(TrainingData), [
        {"sub_account_id": kb.sub_account_id, "knowledge_base_id": kb.id, "chunk_index": i,
         "content_hash": hashlib.sha256(f"{kb.id}{i}".encode()).hexdigest(), "status": "approved",
         "embedding_model": "all-MiniLM-L6-v2", **row}
        for kb in bases for i, row in enumerate(copies)])
    session.flush()

    apply_scope(session, TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    for row in ours:
        for mode in ("hybrid", "vector", "text"):
            result = search(session=session, sub_account_id=demo.a, query=row.question, k=10, mode=mode)
            assert result.hits, (mode, row.question)
            assert not {h.knowledge_base_id for h in result.hits} & {kb.id for kb in bases}  # A's own bases only
            assert all(session.get(TrainingData, h.id).sub_account_id == demo.a for h in result.hits)
        assert search(session=session, sub_account_id=demo.a, query=row.question, k=1).hits[0].id == row.id
    # asking for another sub-account's knowledge base from A's scope finds nothing at all
    with pytest.raises(Exception, match="No such knowledge base"):
        search(session=session, sub_account_id=demo.a, query="hours", knowledge_base_ids=[bases[0].id])
    assert search(session=session, sub_account_id=others[0].id, query=ours[0].question or "").hits == []


def _vector(text: str) -> list[float]:
    """A deterministic 384-d unit vector from word hashes: texts sharing words point alike."""
    values = [0.0] * 384
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip("?.!,").encode()).digest()
        values[int.from_bytes(digest[:2], "big") % 384] += 1.0
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class Embeddings(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Embeddings.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": _vector(str(text))[: body.get("dimensions", 384)]}
                for i, text in enumerate(inputs)]
        payload = json.dumps({"object": "list", "data": data, "model": body["model"],
                              "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def embeddings_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Embeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(get_settings(), "openai_api_key", "sk-local-test")
    monkeypatch.setattr(get_settings(), "openai_base_url", f"http://127.0.0.1:{server.server_port}/v1")
    Embeddings.requests = []
    embedder_for.cache_clear()
    yield "text-embedding-3-small"
    embedder_for.cache_clear()
    server.shutdown()


def test_changing_the_model_re_embeds_every_chunk_with_it(a, demo: Demo, embeddings_server) -> None:  # type: ignore[no-untyped-def]
    kb = a.scalars(select(KnowledgeBase).where(KnowledgeBase.ai_agent_id.is_not(None)).limit(1)).one()
    total = ingest.reembed(session=a, kb_id=kb.id, model=embeddings_server)
    rows = a.scalars(select(TrainingData).where(TrainingData.knowledge_base_id == kb.id,
                                                TrainingData.status == "approved")).all()
    assert total >= len(rows) > 60 and {r.embedding_model for r in rows} == {embeddings_server}
    assert (kb.embedding_model, kb.status) == (embeddings_server, "ready")
    assert Embeddings.requests[0]["path"] == "/v1/embeddings"
    assert Embeddings.requests[0]["auth"] == "Bearer sk-local-test" and Embeddings.requests[0]["dimensions"] == 384
    assert max(len(r["input"]) for r in Embeddings.requests) <= 64  # batched
    # queries now go through the same model, and still find the right entry
    entry = next(r for r in rows if r.question and "brunch" in r.question.lower())
    result = search(session=a, sub_account_id=demo.a, query=entry.question, knowledge_base_ids=[kb.id], mode="vector")
    assert result.hits[0].id == entry.id
    assert Embeddings.requests[-1]["input"] == [entry.question]


def test_an_unusable_model_is_refused_up_front(a, demo: Demo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.errors import InvalidInput

    monkeypatch.setattr(get_settings(), "openai_api_key", None)
    embedder_for.cache_clear()
    kb = a.scalars(select(KnowledgeBase).limit(1)).one()
    with pytest.raises(InvalidInput, match="OPENAI_API_KEY"):
        ingest.reembed(session=a, kb_id=kb.id, model="text-embedding-3-large")
