"""Syncs: pull an integration's data on a schedule and keep its status honest.

A sync of a Meta integration runs in three steps so no database transaction stays open while Meta is called
(paging, throttling waits): read the connection under the tenant's scope; fetch the window's daily campaign
spend; write it all, with the new status, in one transaction. Its window is incremental: from a few days
before the last successful sync (Meta restates recent days as late conversions and invalid-click credits
settle) to today, or the last 30 days on a first sync; both ends are days in the sub-account's timezone.

Outcomes on the row: `up_to_date` with `last_sync_time` on success; `delayed` with `last_error` and a retry time
(config `sync_state.retry_at`) when Meta throttles or cannot be reached; `failed` otherwise, with
`authentication_status = expired` when Meta rejects the token (nothing retries that until someone reconnects).

The sweep (Celery beat) queues every integration that is due: connected, active, a pulled provider, and
either its retry time has come or its last successful sync is older than its interval (default 6 h). One whose
last successful sync is older than two intervals is marked `delayed`, whatever it last said."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.activity import Integration
from models.db import TenantScope, tenant_session
from models.tenancy import SubAccount
from services import secrets
from services.errors import DomainError
from services.integrations import meta
from services.integrations.ad_spend import ImportSummary, upsert_spend
from services.integrations.connections import PULLED, effective_sync_status, interval, retry_at, sync_state

RESTATEMENT_DAYS = 3
FIRST_SYNC_DAYS = 30


@dataclass
class SyncResult:
    """What one sync did."""

    integration_id: uuid.UUID
    status: str  # up_to_date | delayed | failed | skipped
    summary: ImportSummary | None = None
    error: str | None = None
    retry_at: datetime | None = None
    since: date | None = None
    until: date | None = None
    requests: int = 0
    pages: int = 0

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, for task results and logs."""
        return {"integration_id": str(self.integration_id), "status": self.status, "error": self.error,
                "retry_at": self.retry_at.isoformat() if self.retry_at else None,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None, "requests": self.requests,
                "pages": self.pages, "summary": self.summary.as_json() if self.summary else None}


@dataclass(frozen=True)
class _Plan:
    token: str
    account: str
    api_version: str
    currency: str
    since: date
    until: date


class _CannotSync(Exception):
    def __init__(self, message: str, auth_status: str | None = None) -> None:
        super().__init__(message)
        self.auth_status = auth_status


def sync_window(*, last_sync_time: datetime | None, tz: str, now: datetime) -> tuple[date, date]:
    """The days to fetch (both inclusive, in `tz`)."""
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    if last_sync_time is None:
        return today - timedelta(days=FIRST_SYNC_DAYS - 1), today
    return min(last_sync_time.astimezone(zone).date() - timedelta(days=RESTATEMENT_DAYS), today), today


def _plan(session: Session, integration: Integration, now: datetime, since: date | None,
          until: date | None) -> _Plan:
    try:
        token = secrets.decrypt(integration.credentials_encrypted).get("access_token")
    except ValueError as exc:
        raise _CannotSync(f"{exc} Reconnect the integration with its access token.", "error") from exc
    if not token:
        raise _CannotSync("No access token is stored; connect the integration with a Meta access token.",
                          "disconnected")
    if not integration.connection_id:
        raise _CannotSync("No Meta ad account id (connection_id) is set.")
    tz = session.scalar(select(SubAccount.timezone).where(SubAccount.id == integration.sub_account_id)) or "UTC"
    window = sync_window(last_sync_time=integration.last_sync_time, tz=tz, now=now)
    return _Plan(token=token, account=integration.connection_id,
                 api_version=integration.api_version or meta.DEFAULT_API_VERSION,
                 currency=(integration.config or {}).get("currency") or "USD",
                 since=since or window[0], until=until or window[1])


def _with_state(integration: Integration, **changes: Any) -> None:
    state = sync_state(integration)
    state.update({k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in changes.items()})
    integration.config = {**(integration.config or {}), "sync_state": state}


def _record_failure(session: Session, integration_id: uuid.UUID, now: datetime, message: str, *,
                    error: Exception | None = None, auth_status: str | None = None,
                    window: tuple[date, date] | None = None) -> SyncResult:
    integration = session.scalar(select(Integration).where(Integration.id == integration_id).with_for_update())
    assert integration is not None
    failures = int(sync_state(integration).get("failures") or 0) + 1
    if isinstance(error, meta.MetaAuthError):
        status, when, auth_status = "failed", None, "expired"
        message = f"Meta rejected the access token; reconnect the integration with a new one. {message}"
    elif isinstance(error, meta.MetaError) and error.retryable:
        status = "delayed"
        when = meta.retry_time(error, now, failures=failures, interval=interval(integration))
        message = f"{message} Retrying after {when.isoformat(timespec='minutes')}."
    else:
        status, when = "failed", (None if auth_status else now + interval(integration))
    integration.data_sync_status = status
    integration.last_error = message[:2000]
    if auth_status:
        integration.authentication_status = auth_status
    _with_state(integration, last_attempt_at=now, retry_at=when, failures=failures,
                last_window=[d.isoformat() for d in window] if window else None)
    session.flush()
    return SyncResult(integration_id=integration_id, status=status, error=integration.last_error, retry_at=when,
                      since=window[0] if window else None, until=window[1] if window else None)


def sync_integration(*, scope: TenantScope, integration_id: uuid.UUID, now: datetime | None = None,
                     since: date | None = None, until: date | None = None, client: httpx.Client | None = None,
                     sleep: meta.Sleep = time.sleep) -> SyncResult:
    """Sync one integration of `scope`'s sub-account now (default window: incremental); the outcome is recorded
    on the row and returned. Safe to run twice: the second run finds every figure unchanged."""
    now = now or datetime.now(UTC)
    with tenant_session(scope) as session:
        integration = session.get(Integration, integration_id)
        if (integration is None or integration.deleted_at is not None
                or integration.sub_account_id != scope.sub_account_id):
            return SyncResult(integration_id=integration_id, status="skipped", error="No such integration.")
        if integration.provider_name not in PULLED or not integration.is_active:
            reason = "Paused." if not integration.is_active else \
                f"{integration.provider_name} pushes its data; nothing to pull."
            return SyncResult(integration_id=integration_id, status="skipped", error=reason)
        try:
            plan = _plan(session, integration, now, since, until)
        except _CannotSync as exc:
            return _record_failure(session, integration_id, now, str(exc), auth_status=exc.auth_status)
    window = (plan.since, plan.until)
    try:
        fetched = meta.fetch_daily_spend(access_token=plan.token, ad_account_id=plan.account, since=plan.since,
                                         until=plan.until, api_version=plan.api_version,
                                         default_currency=plan.currency, client=client, sleep=sleep)
    except (meta.MetaError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, DomainError) else str(exc)
        with tenant_session(scope) as session:
            return _record_failure(session, integration_id, now, meta.redact(detail, plan.token),
                                   error=exc if isinstance(exc, meta.MetaError) else None, window=window)
    except Exception as exc:  # a bug, not Meta: on the row as well, then up to the caller
        with tenant_session(scope) as session:
            _record_failure(session, integration_id, now,
                            meta.redact(f"Sync failed: {type(exc).__name__}: {exc}", plan.token)[:2000], window=window)
        raise
    try:
        with tenant_session(scope) as session:
            integration = session.scalar(select(Integration).where(Integration.id == integration_id)
                                         .with_for_update())
            assert integration is not None
            summary = upsert_spend(session=session, integration=integration, rows=fetched.rows, source="meta_api")
            integration.data_sync_status, integration.last_sync_time = "up_to_date", now
            integration.last_error, integration.api_version = None, fetched.api_version
            integration.authentication_status = "connected"
            _with_state(integration, last_attempt_at=now, retry_at=None, failures=0,
                        last_window=[d.isoformat() for d in window],
                        last_summary={**summary.as_json(), "requests": fetched.requests, "pages": fetched.pages})
    except Exception as exc:  # the data rolled back: say so on the row, then let the caller see the error
        detail = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        with tenant_session(scope) as session:
            _record_failure(session, integration_id, now, f"Storing the spend failed: {detail}"[:2000], window=window)
        raise
    return SyncResult(integration_id=integration_id, status="up_to_date", summary=summary, since=plan.since,
                      until=plan.until, requests=fetched.requests, pages=fetched.pages)


def is_due(integration: Integration, now: datetime) -> bool:
    """Whether the sweep should queue this (connected, active, pulled) integration now."""
    when = retry_at(integration)
    if when is not None:
        return when <= now
    last = integration.last_sync_time
    return last is None or now - last >= interval(integration)


def due_integrations(*, session: Session, now: datetime) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    """(integration, agency, sub-account) of every integration due for a sync, across tenants (owner session:
    the sweep precedes any tenant; it only reads)."""
    candidates = session.scalars(
        select(Integration).join(SubAccount, SubAccount.id == Integration.sub_account_id)
        .where(Integration.provider_name.in_(PULLED), Integration.is_active, Integration.deleted_at.is_(None),
               Integration.authentication_status == "connected", Integration.credentials_encrypted.is_not(None),
               Integration.connection_id.is_not(None), SubAccount.deleted_at.is_(None),
               SubAccount.account_status == "active")
        .order_by(Integration.last_sync_time.asc().nulls_first(), Integration.id)).all()
    return [(i.id, i.agency_id, i.sub_account_id) for i in candidates  # type: ignore[misc]
            if i.sub_account_id is not None and is_due(i, now)]


def mark_if_stale(*, session: Session, integration_id: uuid.UUID, now: datetime) -> bool:
    """Mark `delayed` an integration still saying `up_to_date` whose last successful sync is older than two
    intervals (under the tenant's scope); True when it did."""
    integration = session.get(Integration, integration_id)
    if integration is None or integration.data_sync_status != "up_to_date":
        return False
    if effective_sync_status(integration, now) != "delayed":
        return False
    integration.data_sync_status = "delayed"
    integration.last_error = (f"No successful sync since {integration.last_sync_time.isoformat(timespec='minutes')}"
                              if integration.last_sync_time else "Never synced.")
    session.flush()
    return True
