"""Ingestion against the real database and the real local embedder: every source type, pairs kept whole,
dedupe, deletes, the training loop, and the search_knowledge tool."""

from __future__ import annotations

import io
import uuid

import pytest
from sqlalchemy import func, select

from knowledge import ingest
from knowledge.retrieval import search
from knowledge.sources import chunk, extract
from models.ai import AIConversationLog, KnowledgeBase, TrainingData
from services.errors import InvalidInput
from tests.conftest import Demo

pytestmark = pytest.mark.integration

MARKDOWN = """# Catering

## Do you cater weddings?
Yes. We cater weddings of 40 to 250 guests, with a tasting for the couple included.

## Delivery area
We deliver catering within 15 miles of the restaurant. Set-up staff can be booked by the hour.

Q: Is there a minimum order for catering?
A: The minimum catering order is $600 before tax.
"""
HTML = """<html><head><title>Menu</title><script>var tracking = "do-not-index-me";</script>
<style>.x{color:red}</style></head><body>
<nav><a href="/">Home</a> <a href="/jobs">Careers at Zuppa</a></nav>
<header>Call now! Limited offer banner</header>
<main><h1>Seasonal menu</h1><p>Our autumn menu features pumpkin ravioli with sage brown butter.</p>
<div hidden>secret staff note</div><h2>Can I order the ravioli gluten free?</h2>
<p>Yes, the pumpkin ravioli can be made with gluten-free pasta on request.</p></main>
<footer>&copy; 2026 Trattoria. Privacy policy.</footer></body></html>"""
CSV = "question,answer,category,tags\nDo you have parking?,Free parking behind the building.,Visit,parking;car\n" \
      "Are dogs allowed?,Dogs are welcome on the patio only.,Visit,pets\n"


def _pdf() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.5, 11))
    fig.text(0.1, 0.9, "Gift card terms", fontsize=16)
    fig.text(0.1, 0.85, "Gift cards never expire and can be used for takeout and catering.", fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    plt.close(fig)
    return buffer.getvalue()


@pytest.fixture
def kb(a, demo: Demo) -> KnowledgeBase:  # type: ignore[no-untyped-def]
    return ingest.create_knowledge_base(session=a, sub_account_id=demo.a, name=f"Docs {uuid.uuid4().hex[:6]}")


def _chunks(a, kb_id):  # type: ignore[no-untyped-def]
    return a.scalars(select(TrainingData).where(TrainingData.knowledge_base_id == kb_id)
                     .order_by(TrainingData.chunk_index)).all()


def test_markdown_keeps_question_and_answer_pairs_whole(a, kb) -> None:  # type: ignore[no-untyped-def]
    source, created = ingest.add_source(session=a, kb_id=kb.id, name="catering.md", source_type="markdown",
                                        data=MARKDOWN)
    ingest.process_source(session=a, source_id=source.id)
    rows = _chunks(a, kb.id)
    pairs = {r.question: r.answer for r in rows if r.question}
    assert pairs["Do you cater weddings?"].startswith("Yes. We cater weddings of 40 to 250 guests")
    assert pairs["Is there a minimum order for catering?"] == "The minimum catering order is $600 before tax."
    prose = [r.content for r in rows if r.content]
    assert prose and "Delivery area" in prose[0] and "15 miles" in prose[0]
    assert created and source.status == "ready" and source.chunk_count == len(rows) == 3
    assert all(r.embedding is not None and len(r.embedding) == 384 for r in rows)


def test_the_same_upload_twice_changes_nothing(a, kb) -> None:  # type: ignore[no-untyped-def]
    first, _ = ingest.add_source(session=a, kb_id=kb.id, name="a.md", source_type="markdown", data=MARKDOWN)
    ingest.process_source(session=a, source_id=first.id)
    again, created = ingest.add_source(session=a, kb_id=kb.id, name="copy.md", source_type="markdown",
                                       data=MARKDOWN.replace("\n", "\r\n") + "\n\n")
    assert (again.id, created) == (first.id, False)
    # another document sharing one pair adds only what is new
    other, _ = ingest.add_source(session=a, kb_id=kb.id, name="b.md", source_type="markdown",
                                 data="## Do you cater weddings?\nYes. We cater weddings of 40 to 250 guests, with a "
                                      "tasting for the couple included.\n\n## Do you cater funerals?\nYes, quietly.")
    ingest.process_source(session=a, source_id=other.id)
    assert other.chunk_count == 1 and len(_chunks(a, kb.id)) == 4


def test_html_keeps_the_main_text_only(a, kb) -> None:  # type: ignore[no-untyped-def]
    text = extract("html", HTML)
    assert "pumpkin ravioli with sage" in text
    for noise in ("do-not-index-me", "Careers at Zuppa", "Limited offer", "Privacy policy", "secret staff note"):
        assert noise not in text
    pieces = chunk("html", text)
    assert any(p.question == "Can I order the ravioli gluten free?" for p in pieces)


def test_pdf_and_csv_sources(a, kb) -> None:  # type: ignore[no-untyped-def]
    pdf, _ = ingest.add_source(session=a, kb_id=kb.id, name="terms.pdf", source_type="pdf", data=_pdf())
    ingest.process_source(session=a, source_id=pdf.id)
    csv, _ = ingest.add_source(session=a, kb_id=kb.id, name="faq.csv", source_type="csv", data=CSV.encode())
    ingest.process_source(session=a, source_id=csv.id)
    rows = _chunks(a, kb.id)
    assert any("Gift cards never expire" in (r.content or "") for r in rows)
    dogs = next(r for r in rows if r.question == "Are dogs allowed?")
    assert (dogs.answer, dogs.category, dogs.tags) == ("Dogs are welcome on the patio only.", "Visit", ["pets"])
    hit = search(session=a, sub_account_id=kb.sub_account_id, query="can my pup come along", knowledge_base_ids=[kb.id])
    assert hit.hits[0].id == dogs.id and hit.confident


@pytest.mark.parametrize("source_type, data, message", [
    ("csv", "q,a\nhello,world\n", "'question' and 'answer' columns"),
    ("csv", "question,answer\nOnly a question,\n", "Row 2"),
    ("pdf", b"%PDF-1.4 not really", "PDF"),
    ("text", "   \n  ", "no text"),
    ("docx", "hello", "source_type"),
])
def test_bad_sources_are_refused_and_nothing_is_stored(a, kb, source_type, data, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=message):
        source, _ = ingest.add_source(session=a, kb_id=kb.id, name="bad", source_type=source_type, data=data)
        ingest.process_source(session=a, source_id=source.id)
    assert _chunks(a, kb.id) == []


def test_deleting_a_source_removes_its_chunks_only(a, kb) -> None:  # type: ignore[no-untyped-def]
    md, _ = ingest.add_source(session=a, kb_id=kb.id, name="a.md", source_type="markdown", data=MARKDOWN)
    ingest.process_source(session=a, source_id=md.id)
    csv, _ = ingest.add_source(session=a, kb_id=kb.id, name="faq.csv", source_type="csv", data=CSV)
    ingest.process_source(session=a, source_id=csv.id)
    assert ingest.delete_source(session=a, source_id=md.id) == 3
    assert {r.question for r in _chunks(a, kb.id)} == {"Do you have parking?", "Are dogs allowed?"}
    assert search(session=a, sub_account_id=kb.sub_account_id, query="wedding catering",
                  knowledge_base_ids=[kb.id]).hits[0].question != "Do you cater weddings?"


def test_progress_is_reported_batch_by_batch(a, kb) -> None:  # type: ignore[no-untyped-def]
    long = "\n\n".join(f"Q: What is special about dish number {i}?\nA: Dish {i} uses ingredient {i * 7} and sauce "
                       f"{i % 5}." for i in range(150))
    source, _ = ingest.add_source(session=a, kb_id=kb.id, name="menu.txt", source_type="text", data=long)
    seen = []
    ingest.process_source(session=a, source_id=source.id, commit=lambda: seen.append(float(source.progress)))
    assert seen == sorted(seen) and len(seen) == 3 and seen[-1] == 1.0
    assert source.chunk_count == 150


def test_helpful_confident_answers_become_suggestions_staff_approve(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    kb = a.scalars(select(KnowledgeBase).where(KnowledgeBase.ai_agent_id.is_not(None)).limit(1)).one()
    eligible = a.scalar(select(func.count()).select_from(AIConversationLog).where(
        AIConversationLog.was_helpful.is_(True), AIConversationLog.confidence_score > 0.8,
        AIConversationLog.ai_agent_id == kb.ai_agent_id))
    made = ingest.suggest_from_logs(session=a, kb_id=kb.id)
    assert 0 < made <= eligible
    assert ingest.suggest_from_logs(session=a, kb_id=kb.id) == 0  # once per log
    suggested = a.scalars(select(TrainingData).where(TrainingData.knowledge_base_id == kb.id,
                                                     TrainingData.status == "suggested")).all()
    assert all(s.embedding is None and s.source_log_id for s in suggested)
    before = search(session=a, sub_account_id=demo.a, query="zabaglione flambé for twelve people tonight",
                    knowledge_base_ids=[kb.id])
    approved = ingest.review_suggestion(session=a, training_id=suggested[0].id, approve=True,
                                        question="Can you make zabaglione flambé for twelve people tonight?",
                                        answer="Yes, with two hours' notice.")
    rejected = ingest.review_suggestion(session=a, training_id=suggested[1].id, approve=False)
    assert approved.status == "approved" and approved.embedding is not None and rejected.status == "rejected"
    after = search(session=a, sub_account_id=demo.a, query="zabaglione flambé for twelve people tonight",
                   knowledge_base_ids=[kb.id])
    assert after.hits[0].id == approved.id and before.hits[0].id != approved.id


def test_the_search_knowledge_tool_answers_from_its_agents_base(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    from models.db import TenantScope
    from tools.knowledge import search_knowledge

    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    kb = session.scalars(select(KnowledgeBase).where(KnowledgeBase.ai_agent_id.is_not(None)).limit(1)).one()
    config = {"configurable": {"agency_id": demo.agency_id, "sub_account_id": demo.a, "ai_agent_id": kb.ai_agent_id,
                               "capabilities": ["answer_faq"], "db_session": session}}
    found = search_knowledge.invoke({"query": "when do you open on sundays"}, config=config)
    assert found["ok"] and found["confident"] and "Sunday" in found["results"][0]["text"]
    nonsense = search_knowledge.invoke({"query": "quantum chromodynamics lattice gauge theory"}, config=config)
    assert nonsense["ok"] and nonsense["confident"] is False
    refused = search_knowledge.invoke({"query": "hours"}, config={"configurable": {
        **config["configurable"], "capabilities": ["book_appointments"]}})
    assert refused["ok"] is False and refused["error"]["type"] == "not_permitted"
    assert "sub_account_id" not in search_knowledge.args
