"""The local embedder under concurrency: single texts asked for at once share forward passes, and each still
gets its own vector (as one-by-one), its failure, or a cached answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from knowledge.embedders import LocalMiniLM, embedder_for

TEXTS = [f"{greeting} do you have {thing} {when}?" for greeting in ("hi,", "hello!", "quick question:", "hey")
         for thing in ("vegan options", "parking", "a table for six") for when in ("tonight", "on sundays")]


@pytest.fixture(scope="module")
def embedder() -> LocalMiniLM:
    model = embedder_for("all-MiniLM-L6-v2")
    assert isinstance(model, LocalMiniLM)
    return model


def test_concurrent_single_texts_share_passes_and_get_their_own_vectors(embedder: LocalMiniLM) -> None:
    alone = {t: np.asarray(v) for t, v in zip(TEXTS, embedder.embed(TEXTS), strict=True)}  # one batch, reference
    embedder._recent.clear()
    passes: list[int] = []
    encode = embedder._encode
    start = threading.Barrier(len(TEXTS))

    def counting(texts: list[str]) -> list[list[float]]:
        passes.append(len(texts))
        return encode(texts)

    embedder._encode = counting  # type: ignore[method-assign]
    try:
        def one(text: str) -> list[float]:
            start.wait()
            return embedder.embed([text])[0]

        with ThreadPoolExecutor(len(TEXTS)) as pool:
            got = dict(zip(TEXTS, pool.map(one, TEXTS), strict=True))
    finally:
        del embedder._encode
    for text in TEXTS:
        assert np.allclose(got[text], alone[text], atol=1e-5), text
    assert sum(passes) == len(TEXTS)  # every text embedded exactly once
    assert len(passes) < len(TEXTS) and max(passes) > 1  # ... in shared passes, not one each
    assert embedder.embed([TEXTS[0]])[0] == got[TEXTS[0]]  # and remembered


def test_a_failed_pass_fails_its_waiters_and_the_next_call_works(embedder: LocalMiniLM) -> None:
    embedder._recent.clear()

    def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("out of memory")

    embedder._encode = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            embedder.embed(["is the patio open?"])
    finally:
        del embedder._encode
    vector = embedder.embed(["is the patio open?"])[0]
    assert len(vector) == 384 and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
