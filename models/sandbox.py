"""What the sandbox transports would have sent (Stripe, Twilio, SMTP) when no real credentials are set:
kept per sub-account so the app can show it and tests can assert on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, SubAccountOwned, UUIDPrimaryKey, jsonb_obj, short


class SandboxDelivery(UUIDPrimaryKey, SubAccountOwned, Base):
    """One outbound provider call that a sandbox transport recorded instead of making."""

    __tablename__ = "sandbox_deliveries"

    provider: Mapped[str] = short(32, nullable=False)
    operation: Mapped[str] = short(64, nullable=False)
    # the same key a real provider call would carry: a retried call is recorded once
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    request: Mapped[dict[str, Any]] = jsonb_obj()
    response: Mapped[dict[str, Any]] = jsonb_obj()
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
