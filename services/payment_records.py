"""Money from payment providers (Stripe, Whop) into financial_records, and the buyer it came from: shared by the
providers' webhook handlers so every provider records money the same way (once per reference, attributed to the
buyer's campaign)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.crm import Contact
from models.performance import FinancialRecord
from models.tenancy import SubAccount
from services import crm
from services.errors import InvalidInput

CENT = Decimal("0.01")


def buyer_contact(session: Session, *, sub_account_id: uuid.UUID, email: str | None, name: str | None = None,
                  source: str, create: bool = True) -> Contact | None:
    """The sub-account's contact with this email (RLS scopes the lookup), created with `source` when unknown and
    `create`; None without a usable email."""
    try:
        normalized = crm.normalize_email(email)
    except InvalidInput:
        return None
    if normalized is None:
        return None
    if not create:
        return crm.find_contact(session=session, email=normalized)
    first, _, last = (name or "").strip().partition(" ")
    defaults: dict[str, Any] = {"source": source}
    if first:
        defaults["first_name"] = first[:120]
    if last.strip():
        defaults["last_name"] = last.strip()[:120]
    contact, _ = crm.match_or_create_contact(session=session, sub_account_id=sub_account_id, email=normalized,
                                             defaults=defaults)
    return contact


def record_money(session: Session, *, sub_account_id: uuid.UUID, integration_id: uuid.UUID | None, kind: str,
                 amount: Decimal, reference: str, when: datetime, contact_id: uuid.UUID | None,
                 campaign_id: uuid.UUID | None, currency: str | None = None, status: str = "paid",
                 transaction_id: uuid.UUID | None = None, metadata: dict[str, Any] | None = None) -> bool:
    """Record a provider's payment or refund in financial_records once per reference in the sub-account; True when
    this call stored it. A later call for the same reference only fills in what the first could not know (the
    contact and campaign, our transaction) and moves the status forward (never back to pending)."""
    existing = session.scalars(select(FinancialRecord).where(
        FinancialRecord.sub_account_id == sub_account_id, FinancialRecord.reference_number == reference)
        .with_for_update()).first()
    if existing is not None:
        if existing.contact_id is None and contact_id is not None:
            existing.contact_id = contact_id
            existing.campaign_id = existing.campaign_id or campaign_id
        if existing.transaction_id is None and transaction_id is not None:
            existing.transaction_id = transaction_id
        if status != existing.payment_status and status != "pending":
            existing.payment_status = status
        session.flush()
        return False
    agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == sub_account_id))
    values: dict[str, Any] = {
        "agency_id": agency_id, "sub_account_id": sub_account_id, "campaign_id": campaign_id,
        "integration_source_id": integration_id, "contact_id": contact_id, "transaction_id": transaction_id,
        "transaction_date": when, "amount": amount, "transaction_type": kind, "payment_status": status,
        "reference_number": reference, "metadata_": metadata or {}}
    if currency:
        values["currency"] = currency.upper()
    stored = session.execute(pg_insert(FinancialRecord).values(**values).on_conflict_do_nothing()
                             .returning(FinancialRecord.id)).first()
    return stored is not None
