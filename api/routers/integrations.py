"""Integrations of a sub-account (Meta, Stripe, Whop, ...): connect with encrypted credentials, watch the sync
status, retry a sync, import a Meta CSV export, and map Meta campaigns to LeadPilot campaigns. Credentials go
in and never come out: no response carries a token or a secret."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from api.deps import Tenant, sub_account
from api.params import Day
from models.activity import PROVIDERS
from models.db import after_commit
from services.errors import Conflict, InvalidInput, TooLarge, UnsupportedMedia
from services.integrations import ad_spend, connections, csv_import
from tools.base import jsonable

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}/integrations", tags=["Integrations"])
Manage = Annotated[Tenant, Depends(sub_account("integrations.manage"))]
Read = Annotated[Tenant, Depends(sub_account("reports.read"))]
Provider = Literal[PROVIDERS]  # type: ignore[valid-type]
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel", "text/tab-separated-values")


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Provider  # type: ignore[valid-type]
    name: str = Field(min_length=1, max_length=255)
    connection_id: str | None = Field(None, max_length=255,
                                      description="Meta: the ad account id (act_<number> or the number).")
    api_version: str | None = Field(None, max_length=32, description="Meta: the Graph API version, e.g. v21.0.")
    access_token: SecretStr | None = Field(None, description="Meta: a system-user access token with ads_read. "
                                                             "Stored encrypted; never returned.")
    webhook_secret: SecretStr | None = Field(None, description="Providers that push webhooks: the signing secret. "
                                                               "Stored encrypted; never returned.")
    sync_interval_hours: float | None = Field(None, ge=1, le=connections.MAX_INTERVAL_H)
    currency: str | None = Field(None, min_length=3, max_length=3,
                                 description="Currency of CSV rows that name none (default USD).")


class IntegrationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=255)
    api_version: str | None = Field(None, max_length=32)
    access_token: SecretStr | None = Field(None, description="A new token reconnects an expired connection.")
    webhook_secret: SecretStr | None = None
    sync_interval_hours: float | None = Field(None, ge=1, le=connections.MAX_INTERVAL_H)
    currency: str | None = Field(None, min_length=3, max_length=3)
    is_active: bool | None = Field(None, description="false pauses scheduled syncs")


class CampaignMapIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    map: dict[str, uuid.UUID | None] = Field(
        description="{Meta campaign id: LeadPilot campaign id}; null removes an explicit mapping (the campaign "
                    "whose external_campaign_id is the Meta id then takes the spend, if any).")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _out(integration: Any) -> dict[str, Any]:
    return jsonable(connections.public(integration, datetime.now(UTC)))


@router.get("", summary="The sub-account's integrations with their sync status (never their credentials)")
def list_integrations(t: Read) -> list[dict[str, Any]]:
    with t.session() as s:
        return [_out(i) for i in connections.list_integrations(session=s, sub_account_id=t.sub_account_id)]


@router.post("", status_code=201, summary="Connect an integration (credentials encrypted at rest)")
def create_integration(t: Manage, body: IntegrationCreate) -> dict[str, Any]:
    with t.session() as s:
        integration = connections.create_integration(
            session=s, sub_account_id=t.sub_account_id, provider=body.provider, name=body.name,
            connection_id=body.connection_id, api_version=body.api_version, access_token=_secret(body.access_token),
            webhook_secret=_secret(body.webhook_secret), sync_interval_hours=body.sync_interval_hours,
            currency=body.currency)
        return _out(integration)


@router.get("/{integration_id}", summary="One integration")
def get_integration(t: Read, integration_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        return _out(connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                         integration_id=integration_id))


@router.patch("/{integration_id}", summary="Rename, change settings, pause, or reconnect with a new token")
def update_integration(t: Manage, integration_id: uuid.UUID, body: IntegrationUpdate) -> dict[str, Any]:
    with t.session() as s:
        integration = connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                           integration_id=integration_id, for_update=True)
        connections.update_integration(
            session=s, integration=integration, name=body.name, api_version=body.api_version,
            access_token=_secret(body.access_token), webhook_secret=_secret(body.webhook_secret),
            sync_interval_hours=body.sync_interval_hours, currency=body.currency, is_active=body.is_active)
        return _out(integration)


@router.post("/{integration_id}/disconnect", summary="Forget the credentials (imported data stays)")
def disconnect(t: Manage, integration_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        integration = connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                           integration_id=integration_id, for_update=True)
        return _out(connections.disconnect(session=s, integration=integration))


@router.delete("/{integration_id}", status_code=204, summary="Remove the integration (imported data stays)")
def remove(t: Manage, integration_id: uuid.UUID) -> Response:
    with t.session() as s:
        integration = connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                           integration_id=integration_id, for_update=True)
        connections.remove(session=s, integration=integration, now=datetime.now(UTC))
    return Response(status_code=204)


@router.post("/{integration_id}/sync", status_code=202, summary="Sync now (the retry button): queued for a worker")
def sync_now(t: Manage, integration_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        integration = connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                           integration_id=integration_id)
        if integration.provider_name not in connections.PULLED:
            raise Conflict(f"{integration.provider_name} pushes its data by webhook; there is nothing to pull.")
        if not integration.credentials_encrypted or integration.authentication_status != "connected":
            raise Conflict("The integration is not connected (its token is missing or expired): reconnect it with "
                           "a new access token first.", authentication_status=integration.authentication_status)
        if not integration.is_active:
            raise Conflict("The integration is paused; activate it first.")
        agency_id = integration.agency_id

        def hand_over() -> None:
            from workers.tasks import sync_integration

            sync_integration.apply_async(args=[str(integration_id), str(agency_id), str(t.sub_account_id)])

        after_commit(s, hand_over)
        return {"id": str(integration_id), "status": "queued"}


async def _body(request: Request) -> bytes:
    """The raw body, refused past the import's size limit without holding more of it in memory."""
    limit = csv_import.MAX_BYTES
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"The file is larger than {limit // (1024 * 1024)} MB; export fewer days at once.")
        chunks.append(chunk)
    return b"".join(chunks)


def _import_csv(t: Tenant, integration_id: uuid.UUID, data: bytes | str | None, content_type: str) -> dict[str, Any]:
    with t.session() as s:
        integration = connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                           integration_id=integration_id, for_update=True)
        if data is None:
            raise UnsupportedMedia(f"Send the export as a multipart/form-data field 'file' or as a text/csv body, "
                                   f"not {content_type or 'no content type'}.")
        summary = csv_import.import_csv(session=s, integration=integration, data=data)
        return jsonable({"id": integration_id, "summary": summary.as_json()})


@router.post("/{integration_id}/import-csv", summary="Import daily campaign spend from a Meta Ads Manager export",
             openapi_extra={"requestBody": {"content": {
                 "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                    "properties": {"file": {"type": "string", "format": "binary"}}}},
                 "text/csv": {"schema": {"type": "string"}}}}})
async def import_csv(t: Manage, integration_id: uuid.UUID, request: Request) -> dict[str, Any]:
    """Columns as Meta exports them, broken down by day: Day (or Reporting starts), Campaign ID, Campaign name,
    Amount spent (USD) (or spend), optionally Currency. Rows share reference numbers with the API sync, so
    importing data already synced changes nothing. Any bad row: 422 naming the lines, nothing stored."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > csv_import.MAX_BYTES + 64 * 1024:  # the file plus multipart framing
        raise TooLarge(f"The file is larger than {csv_import.MAX_BYTES // (1024 * 1024)} MB; export fewer days at "
                       "once.")
    data: bytes | str | None = None
    if content_type == "multipart/form-data":
        from starlette.datastructures import UploadFile

        async with request.form(max_part_size=csv_import.MAX_BYTES + 1) as form:
            upload = form.get("file")
            if isinstance(upload, UploadFile):
                data = await upload.read()
            elif isinstance(upload, str):
                data = upload
            else:
                raise InvalidInput("The form has no 'file' field.", field="file")
    elif content_type in CSV_TYPES:
        data = await _body(request)
    return await run_in_threadpool(_import_csv, t, integration_id, data, content_type)


@router.get("/{integration_id}/campaigns", summary="Meta campaigns seen, with their spend and where it goes")
def meta_campaigns(t: Read, integration_id: uuid.UUID, since: Day | None = None,
                   until: Day | None = None) -> dict[str, Any]:
    with t.session() as s:
        integration = connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                           integration_id=integration_id)
        rows = ad_spend.meta_campaigns(session=s, integration=integration, since=since, until=until)
        unmapped = [r for r in rows if r["unmapped"]]
        return jsonable({"campaigns": rows, "unmapped_count": len(unmapped),
                         "unmapped_spend": sum((r["spend"] for r in unmapped), Decimal("0.00"))})


@router.put("/{integration_id}/campaign-map", summary="Map Meta campaigns to LeadPilot campaigns")
def put_campaign_map(t: Manage, integration_id: uuid.UUID, body: CampaignMapIn) -> dict[str, Any]:
    """Stored spend of each mapped Meta campaign moves to its campaign at once (reports follow)."""
    with t.session() as s:
        integration = connections.get_integration_or_raise(session=s, sub_account_id=t.sub_account_id,
                                                           integration_id=integration_id, for_update=True)
        current, moved = ad_spend.set_campaign_map(session=s, integration=integration, changes=body.map)
        return {"campaign_map": current, "rows_reattributed": moved}
