"""Retrieval quality on the demo knowledge bases: paraphrased customer questions (evals/retrieval/questions.yaml),
each labelled with the one entry that answers it. Reports hit@5 and MRR@10 for vector-only, full-text-only and
hybrid search, run through the same `knowledge.retrieval.search` the agents use, as the application role.

    python -m evals.retrieval            # against the product database (make run seeds it)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge.retrieval import Mode, search
from models.ai import TrainingData
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import Agency, SubAccount

QUESTIONS = Path(__file__).parent / "retrieval" / "questions.yaml"
MODES: tuple[Mode, ...] = ("vector", "text", "hybrid")


@dataclass(frozen=True)
class Scores:
    mode: str
    questions: int
    hit_at_5: float
    mrr_at_10: float
    misses: list[dict[str, Any]]


def load_items() -> list[dict[str, str]]:
    return yaml.safe_load(QUESTIONS.read_text())["items"]


def evaluate(agency_slug: str = "digital-marketing-co", modes: tuple[Mode, ...] = MODES) -> dict[str, Scores]:
    """Run every labelled question in every mode; each sub-account searched in its own tenant scope."""
    items = load_items()
    with owner_session() as session:
        agency_id = session.scalar(select(Agency.id).where(Agency.slug == agency_slug))
        subs = {slug: sub_id for slug, sub_id in session.execute(
            select(SubAccount.slug, SubAccount.id).where(SubAccount.agency_id == agency_id))}
    ranks: dict[str, list[tuple[dict[str, str], int | None]]] = {m: [] for m in modes}
    for slug, sub_id in subs.items():
        mine = [i for i in items if i["sub_account"] == slug]
        if not mine:
            continue
        with tenant_session(TenantScope(agency_id=agency_id, sub_account_id=sub_id)) as session:
            expected = _expected_ids(session, mine)
            for item in mine:
                for mode in modes:
                    hits = search(session=session, sub_account_id=sub_id, query=item["question"], k=10,
                                  mode=mode).hits
                    ids = [h.id for h in hits]
                    target = expected[item["expected"]]
                    ranks[mode].append((item, ids.index(target) + 1 if target in ids else None))
    out = {}
    for mode, got in ranks.items():
        n = len(got)
        out[mode] = Scores(
            mode=mode, questions=n,
            hit_at_5=round(sum(1 for _, r in got if r is not None and r <= 5) / n, 4),
            mrr_at_10=round(sum(1 / r for _, r in got if r is not None) / n, 4),
            misses=[{"question": i["question"], "expected": i["expected"], "rank": r}
                    for i, r in got if r is None or r > 5],
        )
    return out


def _expected_ids(session: Session, items: list[dict[str, str]]) -> dict[str, Any]:
    questions = {i["expected"] for i in items}
    rows = session.execute(select(TrainingData.question, TrainingData.id).where(
        TrainingData.question.in_(questions), TrainingData.status == "approved")).all()
    found = {q: i for q, i in rows}
    missing = questions - set(found)
    if missing:
        raise SystemExit(f"labelled entries missing from the knowledge base: {sorted(missing)[:3]}")
    return found


def main() -> None:
    scores = evaluate()
    print(json.dumps({"eval": "retrieval", **{m: {"hit_at_5": s.hit_at_5, "mrr_at_10": s.mrr_at_10,
                                                  "questions": s.questions} for m, s in scores.items()}}))
    for miss in scores["hybrid"].misses:
        print(f"  hybrid miss (rank {miss['rank']}): {miss['question']!r} -> {miss['expected']!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
