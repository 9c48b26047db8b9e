"""Connections to outside systems, one `integrations` row each: connect (credentials encrypted at rest with
services.secrets), change, disconnect, remove; and the public view of a connection, which never carries its
credentials. Providers LeadPilot pulls data from (Meta) also carry a sync interval and a sync status."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.activity import PROVIDERS, Integration
from models.tenancy import SubAccount
from services import secrets
from services.errors import Conflict, InvalidInput, NotFound
from services.integrations.meta import API_VERSION, DEFAULT_API_VERSION, normalize_account_id

CLAIM_INDEX = "uq_integrations_provider_connection"  # one live integration per outside account (migration 0010)
PULLED = ("meta",)  # providers whose data LeadPilot fetches on a schedule (the others push webhooks)
DEFAULT_INTERVAL_H = 6
MAX_INTERVAL_H = 24 * 7
STATUS_LABELS = {"up_to_date": "Up to date", "delayed": "Delayed", "failed": "Failed",
                 "never_synced": "Never synced"}


def interval(integration: Integration) -> timedelta:
    """How often the integration syncs (config `sync_interval_hours`, default 6 h)."""
    try:
        hours = float((integration.config or {}).get("sync_interval_hours") or DEFAULT_INTERVAL_H)
    except (TypeError, ValueError):
        hours = DEFAULT_INTERVAL_H
    return timedelta(hours=min(max(hours, 1), MAX_INTERVAL_H))


def sync_state(integration: Integration) -> dict[str, Any]:
    """The bookkeeping of the last sync attempts (retry time, consecutive failures, last window and summary)."""
    return dict((integration.config or {}).get("sync_state") or {})


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def retry_at(integration: Integration) -> datetime | None:
    """When a failed or throttled sync is due again (None: on the normal interval)."""
    return _when(sync_state(integration).get("retry_at"))


def effective_sync_status(integration: Integration, now: datetime) -> str:
    """The status to show: a pulled integration whose last successful sync is older than two intervals is
    `delayed` even if its last attempt never got to say so (a stopped worker, a lost queue)."""
    status = integration.data_sync_status
    if (integration.provider_name in PULLED and status == "up_to_date" and integration.last_sync_time is not None
            and now - integration.last_sync_time > 2 * interval(integration)):
        return "delayed"
    return status


def public(integration: Integration, now: datetime) -> dict[str, Any]:
    """What the API shows of a connection: status and settings, never the credentials."""
    status = effective_sync_status(integration, now)
    state = sync_state(integration)
    config = integration.config or {}
    return {
        "id": integration.id, "sub_account_id": integration.sub_account_id, "provider": integration.provider_name,
        "name": integration.name, "connection_id": integration.connection_id, "api_version": integration.api_version,
        "authentication_status": integration.authentication_status, "data_sync_status": status,
        "status_label": STATUS_LABELS[status], "last_sync_time": integration.last_sync_time,
        "last_error": integration.last_error, "next_retry_at": _when(state.get("retry_at")),
        "last_attempt_at": _when(state.get("last_attempt_at")), "last_summary": state.get("last_summary"),
        "sync_interval_hours": interval(integration).total_seconds() / 3600 if integration.provider_name in PULLED
        else None,
        "syncs": integration.provider_name in PULLED, "is_active": integration.is_active,
        "has_credentials": bool(integration.credentials_encrypted), "currency": config.get("currency"),
        "campaign_map": config.get("campaign_map") or {},
        "created_at": integration.created_at, "updated_at": integration.updated_at,
    }


def list_integrations(*, session: Session, sub_account_id: uuid.UUID) -> list[Integration]:
    """The sub-account's connections (not removed), newest first."""
    return list(session.scalars(select(Integration).where(
        Integration.sub_account_id == sub_account_id, Integration.deleted_at.is_(None))
        .order_by(Integration.created_at.desc(), Integration.id)))


def get_integration_or_raise(*, session: Session, sub_account_id: uuid.UUID, integration_id: uuid.UUID,
                             for_update: bool = False) -> Integration:
    """The sub-account's connection, or NotFound (another sub-account's id is not found either)."""
    query = select(Integration).where(Integration.id == integration_id, Integration.sub_account_id == sub_account_id,
                                      Integration.deleted_at.is_(None))
    found = session.scalar(query.with_for_update() if for_update else query)
    if found is None:
        raise NotFound("No such integration.")
    return found


def _credentials(access_token: str | None, webhook_secret: str | None) -> dict[str, str]:
    out = {}
    if access_token is not None:
        if not access_token.strip() or len(access_token) > 4096:
            raise InvalidInput("The access token is empty or too long.", field="access_token")
        out["access_token"] = access_token.strip()
    if webhook_secret is not None:
        if not webhook_secret.strip() or len(webhook_secret) > 1024:
            raise InvalidInput("The webhook secret is empty or too long.", field="webhook_secret")
        out["webhook_secret"] = webhook_secret.strip()
    return out


def _api_version(value: str | None, provider: str) -> str | None:
    if provider != "meta":
        return value
    version = value or DEFAULT_API_VERSION
    if not API_VERSION.match(version):
        raise InvalidInput(f"{version!r} is not a Graph API version like {DEFAULT_API_VERSION}.", field="api_version")
    return version


def _settings(config: dict[str, Any], *, sync_interval_hours: float | None, currency: str | None) -> dict[str, Any]:
    out = dict(config)
    if sync_interval_hours is not None:
        if not 1 <= sync_interval_hours <= MAX_INTERVAL_H:
            raise InvalidInput(f"Sync every 1 to {MAX_INTERVAL_H} hours.", field="sync_interval_hours")
        out["sync_interval_hours"] = sync_interval_hours
    if currency is not None:
        if len(currency) != 3 or not currency.isalpha():
            raise InvalidInput("A currency is a three-letter ISO 4217 code.", field="currency")
        out["currency"] = currency.upper()
    return out


def create_integration(*, session: Session, sub_account_id: uuid.UUID, provider: str, name: str,
                       connection_id: str | None = None, api_version: str | None = None,
                       access_token: str | None = None, webhook_secret: str | None = None,
                       sync_interval_hours: float | None = None, currency: str | None = None) -> Integration:
    """Connect a provider: credentials encrypted, `connected` when there are any (a Meta connection without a
    token only takes CSV imports), `never_synced` until its first sync."""
    if provider not in PROVIDERS:
        raise InvalidInput(f"Unknown provider {provider!r}.", field="provider")
    agency_id = session.scalar(select(SubAccount.agency_id).where(SubAccount.id == sub_account_id))
    if agency_id is None:
        raise NotFound("No such sub-account.")
    connection_id = (connection_id or "").strip() or None
    if provider == "meta":
        if not connection_id:
            raise InvalidInput("Give the Meta ad account id (act_<number>) as connection_id.", field="connection_id")
        try:
            connection_id = normalize_account_id(connection_id)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="connection_id") from exc
    credentials = _credentials(access_token, webhook_secret)
    integration = Integration(
        agency_id=agency_id, sub_account_id=sub_account_id, provider_name=provider, name=name.strip(),
        connection_id=connection_id, api_version=_api_version(api_version, provider),
        config=_settings({}, sync_interval_hours=sync_interval_hours, currency=currency),
        credentials_encrypted=secrets.encrypt(credentials) if credentials else None,
        authentication_status="connected" if credentials else "disconnected", data_sync_status="never_synced",
    )
    try:
        with session.begin_nested():
            session.add(integration)
            session.flush()
    except IntegrityError as exc:
        if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) != CLAIM_INDEX:
            raise
        # the index sees every sub-account, which this tenant's session cannot: the same answer whoever holds
        # it, naming nobody, so a claim tells a sub-account nothing about another
        raise Conflict(f"This {provider} account ({connection_id}) is already connected to a LeadPilot "
                       "sub-account. Remove that integration first.", field="connection_id") from exc
    return integration


def update_integration(*, session: Session, integration: Integration, name: str | None = None,
                       api_version: str | None = None, access_token: str | None = None,
                       webhook_secret: str | None = None, sync_interval_hours: float | None = None,
                       currency: str | None = None, is_active: bool | None = None) -> Integration:
    """Rename, change settings, or reconnect: a new token or secret replaces the stored one and makes the
    connection `connected` again (after an expired token, the next sync is due at once)."""
    if name is not None:
        if not name.strip():
            raise InvalidInput("A name is required.", field="name")
        integration.name = name.strip()
    if api_version is not None:
        integration.api_version = _api_version(api_version, integration.provider_name)
    config = _settings(integration.config or {}, sync_interval_hours=sync_interval_hours, currency=currency)
    fresh = _credentials(access_token, webhook_secret)
    if fresh:
        integration.credentials_encrypted = secrets.encrypt({**_stored(integration), **fresh})
        integration.authentication_status = "connected"
        config["sync_state"] = {**(config.get("sync_state") or {}), "retry_at": None, "failures": 0}
    if is_active is not None:
        integration.is_active = is_active
    integration.config = config
    session.flush()
    return integration


def _stored(integration: Integration) -> dict[str, Any]:
    """The stored credentials, or {} when they cannot be read any more (a rotated-away key): replaced anyway."""
    try:
        return secrets.decrypt(integration.credentials_encrypted)
    except ValueError:
        return {}


def disconnect(*, session: Session, integration: Integration) -> Integration:
    """Forget the credentials (imported data stays); no scheduled sync runs until it is connected again."""
    integration.credentials_encrypted = None
    integration.authentication_status = "disconnected"
    config = dict(integration.config or {})
    config.pop("sync_state", None)
    integration.config = config
    session.flush()
    return integration


def remove(*, session: Session, integration: Integration, now: datetime) -> None:
    """Remove the connection (soft delete, credentials wiped); the spend it imported stays in reports."""
    disconnect(session=session, integration=integration)
    integration.is_active = False
    integration.deleted_at = now
    session.flush()
