"""Campaigns (templates, launch, analytics) and the public tracking endpoints their emails point at."""

from __future__ import annotations

import html
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api.deps import Tenant, sub_account
from models.conversations import Message
from models.db import TenantScope, owner_session, tenant_session
from models.marketing import EmailTemplate, MessageCampaign, MessageCampaignRecipient, SmsTemplate
from models.tenancy import SubAccount
from services import campaigns
from services.errors import NotFound

router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["Campaigns"])
tracking = APIRouter(include_in_schema=False)
Manage = Annotated[Tenant, Depends(sub_account("workflows.manage"))]
Read = Annotated[Tenant, Depends(sub_account("reports.read"))]
PIXEL = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b")


class Variable(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    default: str = ""


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["email", "sms"]
    name: str = Field(min_length=1, max_length=255)
    subject: str | None = Field(None, max_length=998)
    body: str = Field(min_length=1, description="Text (SMS, or the email's plain part); Jinja2 {{ variables }}.")
    html: str | None = None
    variables: list[Variable] = []


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    template_id: uuid.UUID
    channel: Literal["email", "sms"]
    audience: dict[str, Any] = Field(default_factory=dict, description="tags, any_tags, exclude_tags, "
                                                                       "lifecycle_stage, source")


@router.post("/templates", status_code=201, summary="An email or SMS template (checked for syntax)")
def create_template(t: Manage, body: TemplateIn) -> dict[str, Any]:
    for text in (body.subject, body.body, body.html):
        if text:
            campaigns.compile_template(text)
    variables = [v.model_dump() for v in body.variables]
    with t.session() as s:
        if body.channel == "email":
            if not body.subject:
                from services.errors import InvalidInput

                raise InvalidInput("An email template needs a subject.", field="subject")
            row: Any = EmailTemplate(sub_account_id=t.sub_account_id, name=body.name, subject=body.subject,
                                     html_content=body.html or f"<p>{body.body}</p>", text_content=body.body,
                                     variables=variables)
        else:
            row = SmsTemplate(sub_account_id=t.sub_account_id, name=body.name, body=body.body, variables=variables)
        s.add(row)
        s.flush()
        return {"id": str(row.id), "channel": body.channel, "name": body.name}


@router.post("/campaigns", status_code=201, summary="A campaign (draft)")
def create_campaign(t: Manage, body: CampaignIn) -> dict[str, Any]:
    with t.session() as s:
        campaign = MessageCampaign(sub_account_id=t.sub_account_id, name=body.name, channel_type=body.channel,
                                   audience=body.audience, created_by_user_id=t.user_id,
                                   **({"email_template_id": body.template_id} if body.channel == "email"
                                      else {"sms_template_id": body.template_id}))
        s.add(campaign)
        s.flush()
        eligible = s.scalar(select(func.count()).select_from(campaigns.audience_query(campaign).subquery()))
        return {"id": str(campaign.id), "status": campaign.status, "eligible_now": eligible}


class When(BaseModel):
    at: AwareDatetime


@router.post("/campaigns/{campaign_id}/schedule", summary="Send at a later time (the audience is resolved then)")
def schedule(t: Manage, campaign_id: uuid.UUID, body: When) -> dict[str, Any]:
    with t.session() as s:
        campaigns.schedule(session=s, campaign_id=campaign_id, at=body.at)
    return {"id": str(campaign_id), "status": "scheduled", "at": body.at.isoformat()}


@router.post("/campaigns/{campaign_id}/launch", summary="Resolve the audience now and start sending")
def launch(t: Manage, campaign_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        total = campaigns.launch(session=s, campaign_id=campaign_id)
    from workers.tasks import campaign_batch

    campaign_batch.apply_async(args=[str(campaign_id), str(t.scope.agency_id), str(t.sub_account_id)])
    return {"id": str(campaign_id), "recipients": total, "status": "sending"}


@router.get("/campaigns/{campaign_id}/stats", summary="Counts and rates, computed from the recipients")
def stats(t: Read, campaign_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        if s.get(MessageCampaign, campaign_id) is None:
            raise NotFound("No such campaign.")
        return campaigns.stats(session=s, campaign_id=campaign_id)


def _scope_of(token: str) -> TenantScope | None:
    """Tracking links carry no tenant: find the recipient's sub-account by its token (owner role, one row)."""
    with owner_session() as session:
        if token.startswith("m-"):  # a workflow's email
            found = session.execute(select(Message.sub_account_id, SubAccount.agency_id).join(
                SubAccount, SubAccount.id == Message.sub_account_id).where(
                Message.metadata_["tracking_token"].astext == token)).first()
        else:
            found = session.execute(select(MessageCampaignRecipient.sub_account_id, SubAccount.agency_id).join(
                SubAccount, SubAccount.id == MessageCampaignRecipient.sub_account_id).where(
                MessageCampaignRecipient.tracking_token == token)).first()
    return TenantScope(agency_id=found[1], sub_account_id=found[0]) if found else None


def _track(token: str, action: Any) -> Any:
    scope = _scope_of(token)
    if scope is None:
        return None
    with tenant_session(scope) as session:
        return action(session)


@tracking.get("/t/o/{token}.gif")
async def opened(token: str) -> Response:
    await run_in_threadpool(_track, token, lambda s: campaigns.record_open(session=s, token=token))
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@tracking.get("/t/c/{token}")
async def clicked(token: str, request: Request, u: str, s: str) -> Response:
    target = await run_in_threadpool(_track, token, lambda session: campaigns.record_click(
        session=session, token=token, url=u, signature=s, ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent")))
    if target is None:
        return Response("This link is not valid.", status_code=404)
    return RedirectResponse(target, status_code=302)


@tracking.get("/u/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str) -> HTMLResponse:
    action = html.escape(f"/u/{quote(token, safe='')}", quote=True)
    return HTMLResponse(f"""<!doctype html><meta charset="utf-8"><title>Unsubscribe</title>
<body style="font-family:system-ui;margin:4rem"><form method="post" action="{action}">
<p>Stop receiving these messages?</p><button type="submit">Unsubscribe</button></form></body>""")


@tracking.post("/u/{token}")
async def unsubscribe(token: str) -> HTMLResponse:
    """One click (RFC 8058 `List-Unsubscribe-Post` sends this POST too)."""
    done = await run_in_threadpool(_track, token, lambda s: campaigns.unsubscribe(session=s, token=token))
    if not done:
        return HTMLResponse("<p>This link is not valid.</p>", status_code=404)
    return HTMLResponse("<p>You're unsubscribed. You won't get these messages any more.</p>")
