"""Vector retrieval at scale: 100,000 chunks of 384-d vectors over 100 sub-accounts (synthetic, clustered like
real embeddings), queried the way `knowledge.retrieval` queries them.

ours:      `knowledge.retrieval.nearest` as the application role: HNSW (m 16, ef_construction 64, ef_search 100)
           with pgvector 0.8's iterative scan; unfiltered (agency scope, every sub-account) and filtered (one
           sub-account and its knowledge base, RLS on: about 1% of the rows).
           `graph_filtered`: the same filtered query made to walk the HNSW graph (sorting disabled), the plan a
           sub-account too big for its btree path gets, where the iterative scan matters.
baseline:  exact search (sequential scan, the ground truth for recall@10) and the filtered queries without
           iterative scans: through the graph, its ef_search candidates are filtered afterwards and come up short.
Also the local embedder's ingest throughput (all-MiniLM-L6-v2 on the CPU, chunks of about 300 characters).
Prints one JSON line (see CONVENTIONS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time as clock
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from sqlalchemy import create_engine, make_url, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench._db import percentile, scratch_database  # noqa: E402
from knowledge.retrieval import nearest  # noqa: E402
from models.ai import TrainingData  # noqa: E402
from models.db import TenantScope, tenant_session  # noqa: E402

DIM = 384


def vectors(rng: np.random.Generator, n: int, centers: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Unit vectors shaped like sentence embeddings: a topic center, a position on a shared low-dimensional
    manifold (real embeddings have an intrinsic dimension far below 384), and a little isotropic noise."""
    picks = centers[rng.integers(0, len(centers), n)]
    out = picks + rng.normal(0, 1, (n, basis.shape[1])) @ basis.T * 0.35 + rng.normal(0, 0.04 / np.sqrt(DIM) * 8,
                                                                                      (n, DIM))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def libpq_url(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(owner_url: str, chunks: int, subs: int, rng: np.random.Generator, shape: tuple[np.ndarray, np.ndarray]
         ) -> dict[str, object]:
    agency = uuid.uuid4()
    sub_ids = [uuid.uuid4() for _ in range(subs)]
    kb_ids = [uuid.uuid4() for _ in range(subs)]
    data = vectors(rng, chunks, *shape)
    owner_of = rng.integers(0, subs, chunks)
    with psycopg.connect(libpq_url(owner_url), autocommit=True) as conn:
        register_vector(conn)
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET session_replication_role = replica")  # fixture rows: no audit, no triggers
        conn.execute("INSERT INTO agencies (id, name, slug) VALUES (%s, 'Bench', 'bench')", (agency,))
        for i, (sub, kb) in enumerate(zip(sub_ids, kb_ids, strict=True)):
            conn.execute("INSERT INTO sub_accounts (id, agency_id, name, slug) VALUES (%s, %s, %s, %s)",
                         (sub, agency, f"Client {i}", f"client-{i}"))
            conn.execute("INSERT INTO knowledge_bases (id, sub_account_id, name, source_type) "
                         "VALUES (%s, %s, 'FAQ', 'manual')", (kb, sub))
        conn.execute("DROP INDEX ix_training_data_embedding")  # built once after the load, as a bulk import would
        started = clock.perf_counter()
        with conn.cursor().copy("COPY training_data (id, sub_account_id, knowledge_base_id, content_hash, status, "
                                "chunk_index, content, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "uuid", "uuid", "varchar", "varchar", "int4", "text", "vector"])
            for i in range(chunks):
                o = int(owner_of[i])
                copy.write_row((uuid.uuid4(), sub_ids[o], kb_ids[o], f"{i:064x}", "approved", i, f"chunk {i}",
                                data[i]))
        copied = clock.perf_counter() - started
        started = clock.perf_counter()
        conn.execute("CREATE INDEX ix_training_data_embedding ON training_data USING hnsw (embedding "
                     "vector_cosine_ops) WITH (m = 16, ef_construction = 64)")
        indexed = clock.perf_counter() - started
        conn.execute("VACUUM ANALYZE training_data")
    return {"agency": agency, "subs": sub_ids, "kbs": kb_ids, "copy_s": copied, "index_s": indexed,
            "rows_in_sub0": int((owner_of == 0).sum())}


def exact(owner_url: str, query: np.ndarray, sub: uuid.UUID | None) -> tuple[list[uuid.UUID], float]:
    """Ground truth by a sequential scan (the index disabled), and its time."""
    with psycopg.connect(libpq_url(owner_url)) as conn:
        register_vector(conn)
        conn.execute("SET enable_indexscan = off")
        conn.execute("SET max_parallel_workers_per_gather = 0")
        where = "WHERE sub_account_id = %s" if sub else ""
        started = clock.perf_counter()
        rows = conn.execute(f"SELECT id FROM training_data {where} ORDER BY embedding <=> %s LIMIT 10",
                            ((sub, query) if sub else (query,))).fetchall()
        return [r[0] for r in rows], (clock.perf_counter() - started) * 1000


def timed(session: Session, query: np.ndarray, where: tuple[object, ...] = (), iterative: bool = True
          ) -> tuple[float, list[uuid.UUID]]:
    """One `nearest` call (the settings statements included, as every real search pays them): ms and ids."""
    started = clock.perf_counter()
    ids = [i for i, _ in nearest(session=session, vector=query, limit=10, where=where, iterative=iterative)]
    return (clock.perf_counter() - started) * 1000, ids


def recall(got: list[uuid.UUID], truth: list[uuid.UUID]) -> float:
    return len(set(got) & set(truth)) / len(truth)


def embed_throughput(n: int) -> float:
    from knowledge.embedders import embedder_for

    words = ["reservation", "table", "party", "menu", "vegan", "gluten", "catering", "deposit", "refund",
             "parking", "patio", "brunch", "dinner", "lunch", "wine", "dessert", "birthday", "private", "room",
             "holiday", "hours", "delivery", "pickup", "allergy", "kids"]
    rng = np.random.default_rng(7)
    texts = [" ".join(rng.choice(words, 45)) for _ in range(n)]
    embedder = embedder_for("all-MiniLM-L6-v2")
    embedder.embed(texts[:64])  # load and warm up
    started = clock.perf_counter()
    embedder.embed(texts)
    return n / (clock.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--sub-accounts", type=int, default=100)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--embed", type=int, default=2048, help="chunks for the embedder throughput")
    args = parser.parse_args()
    rng = np.random.default_rng(42)
    centers = rng.normal(0, 1, (2000, DIM))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    basis = rng.normal(0, 1, (DIM, 32)) / np.sqrt(DIM)  # a 32-d manifold shared by all topics
    with scratch_database("lp_bench_retrieval") as (owner_url, app_url):
        info = load(owner_url, args.chunks, args.sub_accounts, rng, (centers, basis))
        queries = vectors(rng, args.queries, centers, basis)
        app = create_engine(app_url)
        agency, sub, kb = info["agency"], info["subs"][0], info["kbs"][0]  # type: ignore[index]
        figures: dict[str, list[float]] = defaultdict(list)
        # a serving database is warm: other queries (not the measured ones) bring the index into shared buffers
        for q in vectors(rng, 200, centers, basis):
            with tenant_session(TenantScope(agency_id=agency), bind=app) as session:  # type: ignore[arg-type]
                timed(session, q)
        for q in queries:
            truth, exact_ms = exact(owner_url, q, None)
            truth_sub, exact_sub_ms = exact(owner_url, q, sub)  # type: ignore[arg-type]
            figures["exact_ms"].append(exact_ms)
            figures["exact_filtered_ms"].append(exact_sub_ms)
            with tenant_session(TenantScope(agency_id=agency), bind=app) as session:  # type: ignore[arg-type]
                ms, got = timed(session, q)
            figures["ours_ms"].append(ms)
            figures["ours_recall"].append(recall(got, truth))
            scope = TenantScope(agency_id=agency, sub_account_id=sub)  # type: ignore[arg-type]
            where = (TrainingData.sub_account_id == sub, TrainingData.knowledge_base_id == kb,
                     TrainingData.status == "approved")
            for key, iterative, through_graph in (("filtered", True, False), ("plain_filtered", False, False),
                                                  ("graph_filtered", True, True),
                                                  ("plain_graph_filtered", False, True)):
                with tenant_session(scope, bind=app) as session:
                    if through_graph:  # the plan a bigger sub-account gets: walk the HNSW graph, filter as you go
                        session.execute(text("SET LOCAL enable_sort = off"))
                    ms, got = timed(session, q, where, iterative)
                figures[f"{key}_ms"].append(ms)
                figures[f"{key}_recall"].append(recall(got, truth_sub))
                figures[f"{key}_returned"].append(len(got))
        app.dispose()
        with psycopg.connect(libpq_url(owner_url)) as conn:
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    throughput = embed_throughput(args.embed)

    def mean(key: str) -> float:
        return round(float(np.mean(figures[key])), 4)

    print(json.dumps({
        "bench": "retrieval",
        "ours": {"p50_ms": percentile(figures["ours_ms"], 50), "p95_ms": percentile(figures["ours_ms"], 95),
                 "recall_at_10": mean("ours_recall"),
                 "filtered_p50_ms": percentile(figures["filtered_ms"], 50),
                 "filtered_p95_ms": percentile(figures["filtered_ms"], 95),
                 "filtered_recall_at_10": mean("filtered_recall"),
                 "graph_filtered_p95_ms": percentile(figures["graph_filtered_ms"], 95),
                 "graph_filtered_recall_at_10": mean("graph_filtered_recall"),
                 "embed_chunks_per_s": round(throughput, 1)},
        "baseline": {"exact_p50_ms": percentile(figures["exact_ms"], 50),
                     "exact_p95_ms": percentile(figures["exact_ms"], 95),
                     "exact_filtered_p95_ms": percentile(figures["exact_filtered_ms"], 95),
                     "no_iterative_filtered_p95_ms": percentile(figures["plain_filtered_ms"], 95),
                     "no_iterative_filtered_recall_at_10": mean("plain_filtered_recall"),
                     "no_iterative_filtered_rows_returned": mean("plain_filtered_returned"),
                     "no_iterative_graph_filtered_recall_at_10": mean("plain_graph_filtered_recall"),
                     "no_iterative_graph_filtered_rows_returned": mean("plain_graph_filtered_returned")},
        "params": {"chunks": args.chunks, "sub_accounts": args.sub_accounts, "dim": DIM, "queries": args.queries,
                   "rows_in_filtered_sub_account": info["rows_in_sub0"], "hnsw": "m=16 ef_construction=64 "
                   "ef_search=100", "iterative_scan": "relaxed_order", "pgvector": version[0] if version else None,
                   "copy_s": round(float(info["copy_s"]), 1), "index_build_s": round(float(info["index_s"]), 1),
                   "role": "leadpilot_app (RLS on)"},
    }))


if __name__ == "__main__":
    main()
