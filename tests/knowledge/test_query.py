"""Searching what a lead typed: shorthand spelled out before embedding and full-text search, stop words kept out
of the full-text query, and the light stemming the agent's agreement check relies on."""

from __future__ import annotations

import uuid

import pytest

from knowledge import ingest
from knowledge.query import content_words, mentions, normalise
from knowledge.retrieval import search
from tests.conftest import Demo


@pytest.mark.parametrize(("typed", "spelled"), [
    ("whats ur happy hr?? 🍹", "what is your happy hour?"),
    ("cancel tmrw's appt, will i lose my deposit?", "cancel tomorrow's appointment, will i lose my deposit?"),
    ("do u do weekends thru december", "do you do weekends through december"),
    ("GF options? Code L123456", "GF options? Code L123456"),  # codes and capitals are kept as typed
])
def test_texting_shorthand_is_spelled_out(typed: str, spelled: str) -> None:
    assert normalise(typed) == spelled


def test_content_words_leave_out_english_and_spanish_stop_words() -> None:
    assert content_words("do u guys have gluten free options") == ["gluten", "free", "options"]
    assert content_words("tengo mapfre, me lo cubre?") == ["mapfre", "cubre"]
    assert content_words("¿atendéis a niños?") == ["atendéis", "niños"]  # accents kept: Postgres keeps them


def test_mentions_matches_plurals_and_endings() -> None:
    assert mentions("deposit", "Deposits and cancellations")
    assert mentions("refundable", "It is refunded if you cancel")
    assert mentions("niños", "atendemos a ninos")
    assert mentions("veganas", "Do you have vegan dishes?")
    assert not mentions("taxes", "listed at $1,695,000")


@pytest.mark.integration
def test_a_question_in_text_speak_finds_its_entry_confidently(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    kb = ingest.create_knowledge_base(session=a, sub_account_id=demo.a, name=f"Bar {uuid.uuid4().hex[:6]}")
    for question, answer in [("When is happy hour?", "Happy hour is Tuesday to Friday 3-6 PM: $6 margaritas."),
                             ("What are your opening hours?", "Tuesday to Sunday 11 AM-10 PM."),
                             ("Where are you located?", "1450 W Division St.")]:
        ingest.add_qa(session=a, kb_id=kb.id, question=question, answer=answer)
    found = search(session=a, sub_account_id=demo.a, query="whats ur happy hr?? 🍹", knowledge_base_ids=[kb.id])
    assert found.confident and found.hits[0].question == "When is happy hour?"


@pytest.mark.integration
def test_a_rare_name_is_not_outvoted_by_a_common_verb(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """"tengo" (I have) also opens an unrelated entry; only the entry naming the insurer shares a content word."""
    kb = ingest.create_knowledge_base(session=a, sub_account_id=demo.a, name=f"Clínica {uuid.uuid4().hex[:6]}")
    for question, answer in [("¿Trabajáis con seguros?", "Trabajamos con Sanitas y DKV. Con Mapfre, como paciente "
                                                          "privado con factura para el reembolso."),
                             ("¿Qué hago si tengo una urgencia?", "Llama al 910 555 123."),
                             ("¿Habláis inglés?", "Sí, el Dr. Martín atiende en inglés.")]:
        ingest.add_qa(session=a, kb_id=kb.id, question=question, answer=answer)
    found = search(session=a, sub_account_id=demo.a, query="tengo mapfre, me lo cubre?", knowledge_base_ids=[kb.id],
                   mode="text")
    assert [h.question for h in found.hits] == ["¿Trabajáis con seguros?"]
