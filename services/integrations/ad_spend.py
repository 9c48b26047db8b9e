"""Daily ad spend per Meta campaign, stored as financial_records of type `ad_spend` (what reporting sums into
ad spend, ROI and cost per call).

One row per (integration, Meta campaign, day), keyed by `reference_number = meta:{campaign_id}:{YYYY-MM-DD}` on
the unique (integration_source_id, reference_number) index: importing the same figures again writes nothing, a
restated figure replaces the old one in place. The day is stored as the start of that calendar day in the
sub-account's timezone, so reporting (which cuts days in that timezone) puts it on the day Meta reported.

A Meta campaign is attributed to a LeadPilot campaign by an explicit mapping kept in
`integration.config["campaign_map"]` ({meta campaign id: campaign uuid}), else to the sub-account's campaign on
platform `meta` whose `external_campaign_id` is the Meta id; otherwise its spend stays unattributed
(campaign_id NULL) until a mapping is set, which re-attributes the rows already stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, Uuid, cast, column, func, select, update, values
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.activity import Integration
from models.performance import Campaign, FinancialRecord
from models.tenancy import SubAccount
from services.errors import InvalidInput

CENT = Decimal("0.01")
CHUNK = 1000  # references looked up / rows written per statement
MAX_AMOUNT = Decimal("999999999999.99")  # Numeric(14, 2)


@dataclass(frozen=True)
class SpendRow:
    """One Meta campaign's spend on one day (as Meta reports it, in the ad account's currency)."""

    campaign_id: str
    campaign_name: str | None
    day: date
    amount: Decimal
    currency: str

    @property
    def reference(self) -> str:
        """The financial record's reference number: stable across imports, API or CSV."""
        return reference(self.campaign_id, self.day)


def reference(campaign_id: str, day: date) -> str:
    """`meta:{campaign_id}:{YYYY-MM-DD}`."""
    return f"meta:{campaign_id}:{day.isoformat()}"


@dataclass
class ImportSummary:
    """What an import did: every row seen is inserted, updated (a restated figure), unchanged, or skipped (a zero
    that restates nothing)."""

    rows_seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_zero: int = 0
    remapped: int = 0
    amount_inserted: Decimal = Decimal("0.00")
    amount_changed: Decimal = Decimal("0.00")  # net: new minus old figures of the updated rows
    currencies: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (money as exact strings)."""
        out = asdict(self)
        out["amount_inserted"], out["amount_changed"] = str(self.amount_inserted), str(self.amount_changed)
        return out


def day_start(day: date, tz: str) -> datetime:
    """Midnight starting `day` in `tz`, as UTC: the instant reporting buckets into that local day."""
    return datetime.combine(day, time(), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def resolve_campaigns(*, session: Session, integration: Integration,
                      meta_ids: Iterable[str]) -> dict[str, uuid.UUID | None]:
    """The LeadPilot campaign each Meta campaign's spend belongs to (None: unmapped). An explicit mapping wins
    over a matching `external_campaign_id`; a mapping to a campaign since deleted no longer counts."""
    ids = sorted(set(meta_ids))
    explicit = {k: uuid.UUID(v) for k, v in campaign_map(integration).items() if k in ids}
    alive = set(session.scalars(select(Campaign.id).where(
        Campaign.id.in_(list(explicit.values())), Campaign.sub_account_id == integration.sub_account_id,
        Campaign.deleted_at.is_(None)))) if explicit else set()
    out: dict[str, uuid.UUID | None] = dict.fromkeys(ids)
    for chunk in _chunks(ids):
        # the oldest campaign when several carry the same Meta id: a stable choice
        for external, campaign_id in session.execute(
                select(Campaign.external_campaign_id, Campaign.id)
                .where(Campaign.sub_account_id == integration.sub_account_id, Campaign.platform == "meta",
                       Campaign.external_campaign_id.in_(list(chunk)), Campaign.deleted_at.is_(None))
                .order_by(Campaign.external_campaign_id, Campaign.created_at.desc(), Campaign.id.desc())).all():
            if external is not None:
                out[external] = campaign_id
    out.update({k: v for k, v in explicit.items() if v in alive})
    return out


def campaign_map(integration: Integration) -> dict[str, str]:
    """The explicit {meta campaign id: LeadPilot campaign id} mapping of an integration."""
    raw = (integration.config or {}).get("campaign_map") or {}
    return {str(k): str(v) for k, v in raw.items() if v}


def _timezone(session: Session, integration: Integration) -> str:
    if integration.sub_account_id is None:
        raise InvalidInput("Ad spend belongs to a sub-account; this integration is agency-wide.")
    tz = session.scalar(select(SubAccount.timezone).where(SubAccount.id == integration.sub_account_id))
    if tz is None:
        raise InvalidInput("No such sub-account.")
    return tz


def upsert_spend(*, session: Session, integration: Integration, rows: Sequence[SpendRow],
                 source: str) -> ImportSummary:
    """Write daily spend rows (in the caller's transaction): new ones inserted, changed figures replaced,
    unchanged ones left alone (no write at all), attribution brought in line with the campaign mapping."""
    summary = ImportSummary(rows_seen=len(rows))
    latest: dict[str, SpendRow] = {}
    for row in rows:  # the same campaign and day twice in one import: the later figure is the current one
        if row.amount < 0 or row.amount > MAX_AMOUNT:
            raise InvalidInput(f"Spend {row.amount} for campaign {row.campaign_id} on {row.day} is out of range.")
        latest[row.reference] = row
    summary.unchanged += len(rows) - len(latest)
    tz = _timezone(session, integration)
    refs = list(latest)
    existing: dict[str, tuple[Decimal, str, datetime]] = {}
    for chunk in _chunks(refs):
        existing.update({str(ref): (amount, currency, when) for ref, amount, currency, when in session.execute(
            select(FinancialRecord.reference_number, FinancialRecord.amount, FinancialRecord.currency,
                   FinancialRecord.transaction_date).where(
                FinancialRecord.integration_source_id == integration.id,
                FinancialRecord.reference_number.in_(list(chunk)))).all()})
    mapping = resolve_campaigns(session=session, integration=integration,
                                meta_ids={r.campaign_id for r in latest.values()})
    writes = []
    for ref, row in latest.items():
        amount, when = row.amount.quantize(CENT), day_start(row.day, tz)
        before = existing.get(ref)
        if before is None and amount == 0:
            summary.skipped_zero += 1  # a day without spend is no record, unless it restates one
            continue
        # the day's instant moves only when the sub-account's timezone changed since the row was written
        if before is not None and before == (amount, row.currency, when):
            summary.unchanged += 1
            continue
        if before is None:
            summary.inserted += 1
            summary.amount_inserted += amount
        else:
            summary.updated += 1
            summary.amount_changed += amount - before[0]
        writes.append({
            "agency_id": integration.agency_id, "sub_account_id": integration.sub_account_id,
            "campaign_id": mapping.get(row.campaign_id), "integration_source_id": integration.id,
            "transaction_date": when, "amount": amount, "currency": row.currency,
            "transaction_type": "ad_spend", "payment_status": "paid", "reference_number": ref,
            "metadata_": {"source": source, "meta_campaign_id": row.campaign_id,
                          "meta_campaign_name": row.campaign_name, "date": row.day.isoformat()},
        })
    table = FinancialRecord.__table__
    for chunk in _chunks(writes):
        stmt = pg_insert(FinancialRecord).values(list(chunk))
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.integration_source_id, table.c.reference_number],
            index_where=table.c.reference_number.is_not(None),
            set_={"amount": stmt.excluded.amount, "currency": stmt.excluded.currency,
                  "transaction_date": stmt.excluded.transaction_date, "metadata": stmt.excluded["metadata"],
                  "updated_at": func.now()},
            # a concurrent import may have written the same figure since we looked: then nothing changes
            where=(table.c.amount != stmt.excluded.amount) | (table.c.currency != stmt.excluded.currency)
            | (table.c.transaction_date != stmt.excluded.transaction_date))
        session.execute(stmt)
    summary.remapped = attribute(session=session, integration=integration, mapping=mapping)
    summary.currencies = sorted({r.currency for r in latest.values()})
    session.flush()
    return summary


def attribute(*, session: Session, integration: Integration,
              mapping: dict[str, uuid.UUID | None] | None = None) -> int:
    """Bring the campaign of every stored spend row of these Meta campaigns (default: all of the integration's)
    in line with the mapping; returns how many rows moved (rows already right are not written)."""
    if mapping is None:
        mapping = resolve_campaigns(session=session, integration=integration,
                                    meta_ids=stored_campaign_ids(session=session, integration=integration))
    moved = 0
    meta_id = FinancialRecord.metadata_["meta_campaign_id"].astext
    for chunk in _chunks(sorted(mapping.items())):
        wanted = values(column("meta_id", String), column("campaign_id", Uuid), name="wanted").data(list(chunk))
        campaign_id = cast(wanted.c.campaign_id, Uuid)  # an all-NULL column needs its type said
        result = session.execute(
            update(FinancialRecord)
            .where(FinancialRecord.integration_source_id == integration.id, meta_id == wanted.c.meta_id,
                   FinancialRecord.transaction_type == "ad_spend",
                   FinancialRecord.campaign_id.is_distinct_from(campaign_id))
            .values(campaign_id=campaign_id)
            .execution_options(synchronize_session=False))
        moved += result.rowcount or 0  # type: ignore[attr-defined]
    return moved


def stored_campaign_ids(*, session: Session, integration: Integration) -> list[str]:
    """Every Meta campaign id this integration has spend rows for."""
    meta_id = FinancialRecord.metadata_["meta_campaign_id"].astext
    return [m for m in session.scalars(select(meta_id).where(
        FinancialRecord.integration_source_id == integration.id,
        FinancialRecord.transaction_type == "ad_spend").distinct()) if m]


def set_campaign_map(*, session: Session, integration: Integration,
                     changes: dict[str, uuid.UUID | None]) -> tuple[dict[str, str], int]:
    """Map Meta campaigns to LeadPilot campaigns of the sub-account (None removes an explicit mapping, leaving
    the `external_campaign_id` match); re-attributes the stored rows. Returns the new map and rows moved."""
    wanted = {str(k).strip(): v for k, v in changes.items()}
    bad = [k for k in wanted if not k or len(k) > 64]
    if bad:
        raise InvalidInput("Meta campaign ids must be 1 to 64 characters.", field="map")
    targets = {v for v in wanted.values() if v is not None}
    found = set(session.scalars(select(Campaign.id).where(
        Campaign.id.in_(list(targets)), Campaign.sub_account_id == integration.sub_account_id,
        Campaign.deleted_at.is_(None)))) if targets else set()
    missing = sorted(str(t) for t in targets - found)
    if missing:
        raise InvalidInput(f"No such campaign in this sub-account: {', '.join(missing)}.", field="map",
                           campaign_ids=missing)
    current = campaign_map(integration)
    for key, value in wanted.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = str(value)
    integration.config = {**(integration.config or {}), "campaign_map": dict(sorted(current.items()))}
    session.flush()
    mapping = resolve_campaigns(session=session, integration=integration, meta_ids=wanted)
    return current, attribute(session=session, integration=integration, mapping=mapping)


def meta_campaigns(*, session: Session, integration: Integration, since: date | None = None,
                   until: date | None = None) -> list[dict[str, Any]]:
    """The Meta campaigns this integration has seen: spend, days, currency, and where the spend goes."""
    fr = FinancialRecord
    meta_id = fr.metadata_["meta_campaign_id"].astext
    meta_name = fr.metadata_["meta_campaign_name"].astext
    tz = _timezone(session, integration)
    scope = [fr.integration_source_id == integration.id, fr.transaction_type == "ad_spend"]
    if since is not None:
        scope.append(fr.transaction_date >= day_start(since, tz))
    if until is not None:
        scope.append(fr.transaction_date < day_start(until + timedelta(days=1), tz))
    rows = session.execute(
        select(meta_id, func.sum(fr.amount), func.count(), func.min(fr.transaction_date),
               func.max(fr.transaction_date), func.array_agg(func.distinct(fr.currency)))
        .where(*scope).group_by(meta_id).order_by(func.sum(fr.amount).desc(), meta_id)).all()
    # the name of the latest day that has one: campaigns get renamed
    latest_names: dict[str, str] = dict(session.execute(  # type: ignore[arg-type]
        select(meta_id, meta_name).where(*scope, meta_name.is_not(None))
        .order_by(meta_id, fr.transaction_date.desc()).ext(distinct_on(meta_id))).all())
    mapping = resolve_campaigns(session=session, integration=integration, meta_ids=[r[0] for r in rows if r[0]])
    explicit = campaign_map(integration)
    targets = [v for v in mapping.values() if v is not None]
    names = dict(session.execute(select(Campaign.id, Campaign.name).where(Campaign.id.in_(targets))).all()) \
        if targets else {}
    zone = ZoneInfo(tz)
    out = []
    for external, spend, days, first, last, currencies in rows:
        campaign_id = mapping.get(external)
        out.append({
            "meta_campaign_id": external, "meta_campaign_name": latest_names.get(external), "spend": spend,
            "days": days, "first_day": first.astimezone(zone).date(), "last_day": last.astimezone(zone).date(),
            "currencies": sorted(c for c in currencies if c),
            "campaign_id": campaign_id, "campaign_name": names.get(campaign_id) if campaign_id else None,
            "mapped_by": None if campaign_id is None else (
                "campaign_map" if explicit.get(external) == str(campaign_id) else "external_campaign_id"),
            "unmapped": campaign_id is None,
        })
    return out
