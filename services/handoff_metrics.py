"""Handoff metrics: how fast people take and finish what the AI hands them, and why the AI hands off.

For handoffs requested in [start, end):
- time to claim = claimed_at - requested_at (claimed ones), time to resolve = resolved_at - requested_at
  (resolved or returned to the AI), each as median, 90th percentile and mean seconds;
- handoff rate = handoffs / conversations the AI worked in the period (conversations with an AI config that
  had a message in the period), overall and by reason;
- per person (who claimed) and per sub-account (on the agency view).
The session's scope decides which sub-accounts are counted (row-level security)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.conversations import Conversation, ConversationAIConfig, Handoff, Message
from models.tenancy import SubAccount, User


def _durations(column: Any) -> list[Any]:
    seconds = func.extract("epoch", column - Handoff.requested_at)
    return [func.percentile_cont(0.5).within_group(seconds), func.percentile_cont(0.9).within_group(seconds),
            func.avg(seconds)]


def _stats(values: tuple[Any, Any, Any]) -> dict[str, float | None]:
    return {k: (round(float(v), 1) if v is not None else None) for k, v in zip(("p50_s", "p90_s", "mean_s"), values,
                                                                                strict=True)}


def handoff_metrics(*, session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """The metrics above for the scope's sub-accounts."""
    in_period = (Handoff.requested_at >= start) & (Handoff.requested_at < end)
    total = session.scalar(select(func.count()).select_from(Handoff).where(in_period)) or 0
    claim = session.execute(select(*_durations(Handoff.claimed_at)).where(in_period, Handoff.claimed_at.is_not(None))
                            ).one()
    resolve = session.execute(select(*_durations(Handoff.resolved_at)).where(in_period,
                                                                             Handoff.resolved_at.is_not(None))).one()
    worked = session.scalar(select(func.count(func.distinct(Conversation.id))).select_from(Conversation)
                            .join(ConversationAIConfig, ConversationAIConfig.conversation_id == Conversation.id)
                            .join(Message, Message.conversation_id == Conversation.id)
                            .where(Message.created_at >= start, Message.created_at < end)) or 0
    by_reason = session.execute(select(Handoff.reason, func.count(), *_durations(Handoff.claimed_at))
                                .where(in_period).group_by(Handoff.reason).order_by(func.count().desc())).all()
    by_person = session.execute(
        select(Handoff.claimed_by, User.name, func.count(), *_durations(Handoff.claimed_at),
               func.count(Handoff.resolved_at))
        .join(User, User.id == Handoff.claimed_by).where(in_period, Handoff.claimed_by.is_not(None))
        .group_by(Handoff.claimed_by, User.name).order_by(func.count().desc())).all()
    by_sub = session.execute(
        select(Handoff.sub_account_id, SubAccount.name, func.count(), *_durations(Handoff.claimed_at))
        .join(SubAccount, SubAccount.id == Handoff.sub_account_id).where(in_period)
        .group_by(Handoff.sub_account_id, SubAccount.name).order_by(SubAccount.name)).all()

    def rate(count: int) -> float | None:
        return round(count / worked, 4) if worked else None

    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "handoffs": total, "ai_conversations": worked, "handoff_rate": rate(total),
        "time_to_claim": _stats(claim), "time_to_resolve": _stats(resolve),
        "by_reason": [{"reason": r, "handoffs": n, "rate": rate(n), "time_to_claim": _stats((a, b, c))}
                      for r, n, a, b, c in by_reason],
        "by_person": [{"user_id": str(u), "name": name, "claimed": n, "resolved": done,
                       "time_to_claim": _stats((a, b, c))} for u, name, n, a, b, c, done in by_person],
        "by_sub_account": [{"sub_account_id": str(s), "name": name, "handoffs": n,
                            "time_to_claim": _stats((a, b, c))} for s, name, n, a, b, c in by_sub],
    }


def chart(metrics: dict[str, Any]) -> bytes:
    """Handoffs by reason (bars) with the median time to claim of each (labels): a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reasons = metrics["by_reason"] or [{"reason": "none", "handoffs": 0, "time_to_claim": {"p50_s": None}}]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    labels = [r["reason"].replace("_", " ") for r in reasons]
    bars = ax.barh(labels, [r["handoffs"] for r in reasons], color="#2563eb")
    for bar, r in zip(bars, reasons, strict=True):
        median = r["time_to_claim"]["p50_s"]
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f"  claimed in {median / 60:.1f} min (median)" if median is not None else "  not claimed yet",
                va="center", fontsize=8)
    ax.set_xlabel("handoffs")
    ax.set_title(f"Handoffs by reason (rate {metrics['handoff_rate'] or 0:.1%} of AI conversations)", fontsize=10)
    ax.invert_yaxis()
    ax.set_xlim(0, max([r["handoffs"] for r in reasons] + [1]) * 1.8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()
