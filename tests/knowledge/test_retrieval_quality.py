"""The labelled retrieval set over the demo knowledge bases: hybrid search must find the answering entry in
the top 5 for at least 90% of paraphrased questions (vector-only and full-text-only are reported beside it)."""

from __future__ import annotations

import json

import pytest

from evals.retrieval import evaluate, load_items

pytestmark = [pytest.mark.integration, pytest.mark.evals]


def test_the_labelled_set_is_big_enough_and_paraphrased() -> None:
    items = load_items()
    assert len(items) >= 150
    assert all(i["question"].strip().lower() != i["expected"].strip().lower() for i in items)


def test_hybrid_retrieval_finds_the_answer_in_the_top_five(demo) -> None:  # type: ignore[no-untyped-def]
    scores = evaluate()
    print(json.dumps({m: (s.hit_at_5, s.mrr_at_10) for m, s in scores.items()}))
    assert scores["hybrid"].questions >= 150
    assert scores["hybrid"].hit_at_5 >= 0.90, scores["hybrid"].misses
    # on paraphrases the full-text side must not drag the semantic ranking down
    assert scores["hybrid"].hit_at_5 >= scores["vector"].hit_at_5 - 0.02
    assert scores["hybrid"].hit_at_5 > scores["text"].hit_at_5
