"""Sites: the public funnel pages and what their blocks post (forms, surveys, bookings, checkouts), and the
staff API that builds funnels, pages, forms and surveys and reads their submissions.

Public pages answer HTML: a success redirects (303) to the next page, a mistake re-renders the page with the
visitor's values and an error beside each field (422), too many tries is a 429 page. A client that asks for
JSON (`Accept: application/json`) gets JSON and problem details instead. Every page carries a
Content-Security-Policy that runs scripts from this server only."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import Tenant, sub_account
from api.problems import problem
from models.db import tenant_session
from models.sites import Form, FormSubmission, Funnel, Page, Survey, SurveyResponse
from services import forms, sites
from services.calendars import SlotTaken
from services.errors import DomainError, InvalidInput, NotFound
from services.sites import VISITOR_COOKIE, Feedback, SitePage

public = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/v1/sub-accounts/{sub_account_id}", tags=["Sites"])
Manage = Annotated[Tenant, Depends(sub_account("sites.manage"))]
STATIC = Path(__file__).resolve().parent.parent.parent / "services" / "site_templates"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src * data:; "
       "connect-src 'self' ws: wss:; font-src * data:; object-src 'none'; base-uri 'none'; "
       "form-action 'self' https:; frame-ancestors *")
NOTICES = {"submitted": "Thanks! We got your details and will be in touch shortly.",
           "answered": "Thanks for answering!", "booked": "You're booked. A confirmation is on its way."}
UTM = forms.UTM_KEYS


# ------------------------------------------------------------------ public pages
@public.get("/s/_static/{name}")
def site_static(name: str) -> Response:
    if name not in ("site.js", "site.css"):
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type="application/javascript" if name.endswith(".js") else "text/css",
                        headers={"Cache-Control": "public, max-age=300"})


def _visit(request: Request, visitor: str | None, page_url: str | None = None) -> forms.Visit:
    referer = request.headers.get("referer") or ""
    from urllib.parse import parse_qsl, urlsplit

    query = dict(parse_qsl(urlsplit(referer).query)) if referer else {}
    attribution = {k: query[k][:255] for k in UTM if query.get(k)}
    if attribution and referer:
        attribution["landing_page"] = urlsplit(referer).path[:500]
    return forms.Visit(ip_address=request.client.host if request.client else None,
                       user_agent=(request.headers.get("user-agent") or "")[:1000] or None,
                       page_url=(page_url or urlsplit(referer).path or None), session_id=visitor,
                       attribution=attribution)


def _html(body: str, status: int = 200, visitor: str | None = None, new_visitor: bool = False) -> HTMLResponse:
    response = HTMLResponse(body, status_code=status, headers={
        "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store"})
    if new_visitor and visitor:
        response.set_cookie(VISITOR_COOKIE, visitor, max_age=60 * 60 * 24 * 365, httponly=True, samesite="lax")
    return response


def _render(site: SitePage, feedback: Feedback | None = None, notice: str | None = None) -> str:
    with tenant_session(site.scope) as session:
        return sites.render(session, site, feedback=feedback, notice=notice)


@public.get("/s/{sub_slug}/{funnel_slug}")
@public.get("/s/{sub_slug}/{funnel_slug}/{page_slug:path}")
def site_page(request: Request, sub_slug: str, funnel_slug: str, page_slug: str = "",
              done: Annotated[str | None, Query()] = None) -> Response:
    """A published page, rendered on the server; each view is a page_viewed event of the visitor."""
    site = sites.resolve(sub_slug, funnel_slug, page_slug)
    visitor = request.cookies.get(VISITOR_COOKIE)
    new_visitor = not visitor or len(visitor) > 64
    if new_visitor:
        visitor = secrets.token_urlsafe(16)
    assert visitor is not None
    utm = {k: v[:255] for k, v in request.query_params.items() if k in UTM}
    with tenant_session(site.scope) as session:
        body = sites.render(session, site, notice=NOTICES.get(done or ""))
        sites.record_view(session, site, visitor=visitor, url=request.url.path, utm=utm,
                          referrer=(request.headers.get("referer") or "")[:500] or None)
    return _html(body, visitor=visitor, new_visitor=new_visitor)


async def _posted(request: Request) -> dict[str, Any]:
    """The posted fields: a form post (repeated names become lists) or a JSON object."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            raise InvalidInput("The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise InvalidInput("The body is a JSON object of field values.")
        return data
    form = await request.form()
    return {key: (values if len(values := form.getlist(key)) > 1 else values[0]) for key in form}


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or \
        request.headers.get("content-type", "").startswith("application/json")


def _after_error(request: Request, site: SitePage, data: dict[str, Any], block: str, exc: DomainError) -> Response:
    if _wants_json(request):
        return problem(exc.status, exc.detail, title=exc.title, **exc.extra)
    try:
        page_site = sites.resolve(site.sub_account_slug, site.funnel_slug, str(data.get("_page") or ""))
    except NotFound:
        page_site = site
    values = {k: v for k, v in data.items() if not k.startswith("_") and isinstance(v, str | list)}
    feedback = Feedback(block=block, errors=dict(exc.extra.get("errors") or {}), message=exc.detail, values=values)
    return _html(_render(page_site, feedback), status=exc.status)


def _done(request: Request, location: str, payload: dict[str, Any]) -> Response:
    if _wants_json(request):
        return JSONResponse({**payload, "redirect": location}, status_code=201)
    return RedirectResponse(location, status_code=303)


def _notice_url(site: SitePage, page: str, notice: str) -> str:
    return f"{sites.redirect_after(site, None, sites.page_path(page))}?done={notice}"


Work = Callable[[Session, SitePage, dict[str, Any], forms.Visit], tuple[str, dict[str, Any]]]


async def _post(request: Request, sub_slug: str, funnel_slug: str, block: str, work: Work) -> Response:
    """What every block's post does: the site, the posted fields and the visit; `work` in one transaction of
    the sub-account (where next, and what a JSON client is told); a mistake re-renders the page beside `block`."""
    site = await run_in_threadpool(sites.resolve, sub_slug, funnel_slug, "")
    data = await _posted(request)
    visit = _visit(request, request.cookies.get(VISITOR_COOKIE))

    def run() -> tuple[str, dict[str, Any]]:
        with tenant_session(site.scope) as session:
            return work(session, site, data, visit)

    try:
        location, payload = await run_in_threadpool(run)
    except NotFound as exc:
        return problem(404, exc.detail)
    except DomainError as exc:
        return await run_in_threadpool(_after_error, request, site, data, block, exc)
    return _done(request, location, payload)


def _next(site: SitePage, redirect: str | None, data: dict[str, Any], notice: str) -> str:
    """The configured redirect, else the page posted from with its thank-you notice."""
    return sites.redirect_after(site, redirect, "") if redirect else \
        _notice_url(site, str(data.get("_page") or ""), notice)


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


@public.post("/s/{sub_slug}/{funnel_slug}/_form/{form_id}")
async def submit_form(request: Request, sub_slug: str, funnel_slug: str, form_id: uuid.UUID) -> Response:
    """A form post: validated, spam-checked, stored with the visitor's address and browser, matched to or
    creating a contact, the form_submitted workflows started; all in one transaction."""
    def work(session: Session, site: SitePage, data: dict[str, Any], visit: forms.Visit) -> tuple[str, dict[str, Any]]:
        outcome = forms.submit_form(session, form_id, data, visit)
        form = session.get(Form, form_id)
        redirect = (form.settings or {}).get("redirect") if form else None
        return _next(site, redirect, data, "submitted"), {"submission_id": _id(outcome.submission_id),
                                                          "contact_id": _id(outcome.contact_id)}

    return await _post(request, sub_slug, funnel_slug, f"form:{form_id}", work)


@public.post("/s/{sub_slug}/{funnel_slug}/_survey/{survey_id}")
async def submit_survey(request: Request, sub_slug: str, funnel_slug: str, survey_id: uuid.UUID) -> Response:
    """A survey: the answers along the branches the visitor took, scored and stored; survey_submitted fired."""
    def work(session: Session, site: SitePage, data: dict[str, Any], visit: forms.Visit) -> tuple[str, dict[str, Any]]:
        outcome = forms.submit_survey(session, survey_id, data, visit)
        survey = session.get(Survey, survey_id)
        redirect = (survey.scoring or {}).get("redirect") if survey else None
        return _next(site, redirect, data, "answered"), {"response_id": _id(outcome.submission_id)}

    return await _post(request, sub_slug, funnel_slug, f"survey:{survey_id}", work)


@public.post("/s/{sub_slug}/{funnel_slug}/_book/{calendar_id}")
async def book(request: Request, sub_slug: str, funnel_slug: str, calendar_id: uuid.UUID,
               service_id: uuid.UUID | None = None) -> Response:
    """The booking block: an offered slot booked through the calendar service; a slot taken meanwhile is a
    409 page showing the fresh times."""
    def work(session: Session, site: SitePage, data: dict[str, Any], visit: forms.Visit) -> tuple[str, dict[str, Any]]:
        try:
            appointment = sites.book(session, site, calendar_id, data, visit, service_id=service_id)
        except SlotTaken as exc:
            exc.detail = "That time was just taken. Please choose another."
            raise
        return _next(site, None, data, "booked"), {"appointment_id": str(appointment.id)}

    return await _post(request, sub_slug, funnel_slug, f"calendar:{calendar_id}", work)


@public.post("/s/{sub_slug}/{funnel_slug}/_checkout/{price_id}")
async def checkout(request: Request, sub_slug: str, funnel_slug: str, price_id: uuid.UUID) -> Response:
    """The pricing block's button: an invoice for the price and a redirect to the gateway's payment page."""
    def work(session: Session, site: SitePage, data: dict[str, Any], visit: forms.Visit) -> tuple[str, dict[str, Any]]:
        url = sites.checkout(session, site, price_id, data, visit)
        return url, {"payment_url": url}

    return await _post(request, sub_slug, funnel_slug, f"pricing:{price_id}", work)


# ------------------------------------------------------------------ staff API
class FunnelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    slug: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str | None = None
    status: Literal["draft", "published", "archived"] = "draft"
    settings: dict[str, Any] = {}


class FunnelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=255)
    slug: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str | None = None
    status: Literal["draft", "published", "archived"] | None = None
    settings: dict[str, Any] | None = None


class PageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    slug: str = Field(max_length=255, pattern=r"^/?[a-z0-9-]*(/[a-z0-9-]+)*$",
                      description='"/" for the funnel\'s first page, "/pricing" or "pricing" for others')
    page_type: Literal["landing", "standard", "optin", "checkout", "upsell", "thank_you"] = "standard"
    position: int = Field(0, ge=0, le=10_000)
    html_content: str | None = None
    css_content: str | None = None
    js_content: str | None = Field(None, description="Refused when set: pages run the product's scripts only")
    builder_json: dict[str, Any] = {}
    seo: dict[str, Any] = {}
    is_published: bool = False


class PagePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=255)
    slug: str | None = Field(None, max_length=255, pattern=r"^/?[a-z0-9-]*(/[a-z0-9-]+)*$")
    page_type: Literal["landing", "standard", "optin", "checkout", "upsell", "thank_you"] | None = None
    position: int | None = Field(None, ge=0, le=10_000)
    html_content: str | None = None
    css_content: str | None = None
    js_content: str | None = None
    builder_json: dict[str, Any] | None = None
    seo: dict[str, Any] | None = None
    is_published: bool | None = None


class FormIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    page_id: uuid.UUID | None = None
    fields: list[dict[str, Any]] = Field(min_length=1, description="See services/forms.py for the field shape")
    settings: dict[str, Any] = Field(default_factory=dict, description="redirect, honeypot, rate_limit, tags, "
                                                                       "source, submit_text")
    is_active: bool = True


class SurveyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    page_id: uuid.UUID | None = None
    questions: list[dict[str, Any]] = Field(min_length=1)
    scoring: dict[str, Any] = {}
    is_active: bool = True


def _funnel_row(t: Tenant, funnel: Funnel, slug: str, pages: list[Page] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": str(funnel.id), "name": funnel.name, "slug": funnel.slug, "status": funnel.status,
                           "description": funnel.description, "settings": funnel.settings,
                           "url": f"/s/{slug}/{funnel.slug}"}
    if pages is not None:
        row["pages"] = [_page_row(p, row["url"]) for p in pages]
    return row


def _page_row(page: Page, base: str) -> dict[str, Any]:
    return {"id": str(page.id), "funnel_id": str(page.funnel_id), "name": page.name, "slug": page.slug,
            "page_type": page.page_type, "position": page.position, "is_published": page.is_published,
            "html_content": page.html_content, "css_content": page.css_content, "builder_json": page.builder_json,
            "seo": page.seo, "url": f"{base}/{sites.page_path(page.slug)}".rstrip("/")}


def _sub_slug(t: Tenant, session: Any) -> str:
    from models.tenancy import SubAccount

    return str(session.scalar(select(SubAccount.slug).where(SubAccount.id == t.sub_account_id)))


def _funnel(session: Any, funnel_id: uuid.UUID) -> Funnel:
    funnel = session.get(Funnel, funnel_id)
    if funnel is None or funnel.deleted_at is not None:
        raise NotFound("No such funnel.")
    return funnel


def _page(session: Any, page_id: uuid.UUID) -> Page:
    page = session.get(Page, page_id)
    if page is None or page.deleted_at is not None:
        raise NotFound("No such page.")
    return page


@router.get("/funnels", summary="Funnels")
def list_funnels(t: Manage) -> list[dict[str, Any]]:
    with t.session() as s:
        slug = _sub_slug(t, s)
        return [_funnel_row(t, f, slug) for f in s.scalars(select(Funnel).where(Funnel.deleted_at.is_(None))
                                                          .order_by(Funnel.name))]


@router.post("/funnels", status_code=201, summary="A funnel")
def create_funnel(t: Manage, body: FunnelIn) -> dict[str, Any]:
    with t.session() as s:
        if body.status == "published":
            sites.check_address_free(s, t.sub_account_id, body.slug)
        funnel = Funnel(sub_account_id=t.sub_account_id, **body.model_dump())
        s.add(funnel)
        s.flush()
        return _funnel_row(t, funnel, _sub_slug(t, s), [])


@router.get("/funnels/{funnel_id}", summary="A funnel with its pages in order")
def get_funnel(t: Manage, funnel_id: uuid.UUID) -> dict[str, Any]:
    with t.session() as s:
        funnel = _funnel(s, funnel_id)
        pages = list(s.scalars(select(Page).where(Page.funnel_id == funnel.id, Page.deleted_at.is_(None))
                               .order_by(Page.position, Page.name)))
        return _funnel_row(t, funnel, _sub_slug(t, s), pages)


@router.patch("/funnels/{funnel_id}", summary="Rename, publish or archive a funnel")
def update_funnel(t: Manage, funnel_id: uuid.UUID, body: FunnelPatch) -> dict[str, Any]:
    with t.session() as s:
        funnel = _funnel(s, funnel_id)
        changes = body.model_dump(exclude_unset=True)
        if (changes.get("status") or funnel.status) == "published":
            sites.check_address_free(s, t.sub_account_id, changes.get("slug") or funnel.slug)
        for key, value in changes.items():
            setattr(funnel, key, value)
        s.flush()
        return _funnel_row(t, funnel, _sub_slug(t, s))


@router.delete("/funnels/{funnel_id}", status_code=204, summary="Delete a funnel (its pages go offline)")
def delete_funnel(t: Manage, funnel_id: uuid.UUID) -> Response:
    with t.session() as s:
        funnel = _funnel(s, funnel_id)
        funnel.deleted_at = datetime.now(UTC)
        funnel.status = "archived"
    return Response(status_code=204)


@router.post("/funnels/{funnel_id}/pages", status_code=201, summary="A page (builder blocks or HTML/CSS)")
def create_page(t: Manage, funnel_id: uuid.UUID, body: PageIn) -> dict[str, Any]:
    """Builder blocks are checked (types, props, and that their form, survey, calendar, price and chat widget
    belong to this sub-account); HTML and CSS are kept as written and sanitized whenever they are served."""
    with t.session() as s:
        funnel = _funnel(s, funnel_id)
        sites.check_page(s, html_content=body.html_content, js_content=body.js_content,
                         builder_json=body.builder_json)
        page = Page(sub_account_id=t.sub_account_id, funnel_id=funnel.id,
                    **body.model_dump(exclude={"js_content"}))
        s.add(page)
        s.flush()
        return _page_row(page, f"/s/{_sub_slug(t, s)}/{funnel.slug}")


@router.patch("/pages/{page_id}", summary="Edit a page")
def update_page(t: Manage, page_id: uuid.UUID, body: PagePatch) -> dict[str, Any]:
    with t.session() as s:
        page = _page(s, page_id)
        changes = body.model_dump(exclude_unset=True)
        sites.check_page(s, html_content=changes.get("html_content"), js_content=changes.pop("js_content", None),
                         builder_json=changes.get("builder_json"))
        for key, value in changes.items():
            setattr(page, key, value)
        s.flush()
        funnel = _funnel(s, page.funnel_id)
        return _page_row(page, f"/s/{_sub_slug(t, s)}/{funnel.slug}")


@router.delete("/pages/{page_id}", status_code=204, summary="Delete a page")
def delete_page(t: Manage, page_id: uuid.UUID) -> Response:
    with t.session() as s:
        _page(s, page_id).deleted_at = datetime.now(UTC)
    return Response(status_code=204)


@router.get("/pages/{page_id}/preview", response_class=HTMLResponse, summary="Preview a page (drafts too)")
def preview_page(t: Manage, page_id: uuid.UUID) -> Response:
    with t.session() as s:
        page = _page(s, page_id)
        funnel = _funnel(s, page.funnel_id)
        from models.tenancy import SubAccount

        sub = s.get(SubAccount, t.sub_account_id)
        assert sub is not None
        site = SitePage(sub.agency_id, sub.id, sub.slug, sub.name, sub.timezone, funnel.id, funnel.slug, page.id)
        return _html(sites.render(s, site, notice="Preview: visitors see this page once it is published."))


@router.get("/forms", summary="Forms with their submission counts")
def list_forms(t: Manage) -> list[dict[str, Any]]:
    with t.session() as s:
        counts = dict(s.execute(select(FormSubmission.form_id, func.count()).group_by(FormSubmission.form_id)).all())
        return [{"id": str(f.id), "name": f.name, "page_id": str(f.page_id) if f.page_id else None,
                 "fields": f.fields, "settings": f.settings, "is_active": f.is_active,
                 "submissions": counts.get(f.id, 0)}
                for f in s.scalars(select(Form).where(Form.deleted_at.is_(None)).order_by(Form.name))]


def _save(t: Tenant, model: type[Form] | type[Survey], row_id: uuid.UUID | None, body: FormIn | SurveyIn) -> Any:
    """Create (no id) or replace a form or survey of the sub-account; its page, when named, must be one."""
    with t.session() as s:
        if body.page_id:
            _page(s, body.page_id)
        if row_id is None:
            row: Any = model(sub_account_id=t.sub_account_id, **body.model_dump())
            s.add(row)
        else:
            row = s.get(model, row_id)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"No such {model.__tablename__.removesuffix('s')}.")
            for key, value in body.model_dump().items():
                setattr(row, key, value)
        s.flush()
        return row


def _form_row(form: Form) -> dict[str, Any]:
    return {"id": str(form.id), "name": form.name, "fields": form.fields, "settings": form.settings}


@router.post("/forms", status_code=201, summary="A form (fields checked)")
def create_form(t: Manage, body: FormIn) -> dict[str, Any]:
    forms.check_fields(body.fields)
    return _form_row(_save(t, Form, None, body))


@router.put("/forms/{form_id}", summary="Replace a form's fields and settings")
def update_form(t: Manage, form_id: uuid.UUID, body: FormIn) -> dict[str, Any]:
    forms.check_fields(body.fields)
    return _form_row(_save(t, Form, form_id, body))


@router.get("/forms/{form_id}/submissions", summary="A form's submissions, newest first")
def form_submissions(t: Manage, form_id: uuid.UUID, limit: Annotated[int, Query(ge=1, le=500)] = 100
                     ) -> list[dict[str, Any]]:
    with t.session() as s:
        if s.get(Form, form_id) is None:
            raise NotFound("No such form.")
        rows = s.scalars(select(FormSubmission).where(FormSubmission.form_id == form_id)
                         .order_by(FormSubmission.created_at.desc()).limit(limit))
        return [{"id": str(r.id), "contact_id": str(r.contact_id) if r.contact_id else None, "data": r.data,
                 "ip_address": r.ip_address, "user_agent": r.user_agent, "page_url": r.page_url,
                 "is_processed": r.is_processed, "created_at": r.created_at.isoformat()} for r in rows]


def _survey_row(survey: Survey) -> dict[str, Any]:
    return {"id": str(survey.id), "name": survey.name, "questions": survey.questions}


@router.post("/surveys", status_code=201, summary="A survey (branches and scores checked)")
def create_survey(t: Manage, body: SurveyIn) -> dict[str, Any]:
    forms.check_questions(body.questions)
    return _survey_row(_save(t, Survey, None, body))


@router.put("/surveys/{survey_id}", summary="Replace a survey's questions")
def update_survey(t: Manage, survey_id: uuid.UUID, body: SurveyIn) -> dict[str, Any]:
    forms.check_questions(body.questions)
    return _survey_row(_save(t, Survey, survey_id, body))


@router.get("/surveys/{survey_id}/responses", summary="A survey's responses with scores, newest first")
def survey_responses(t: Manage, survey_id: uuid.UUID, limit: Annotated[int, Query(ge=1, le=500)] = 100
                     ) -> dict[str, Any]:
    with t.session() as s:
        if s.get(Survey, survey_id) is None:
            raise NotFound("No such survey.")
        rows = list(s.scalars(select(SurveyResponse).where(SurveyResponse.survey_id == survey_id)
                              .order_by(SurveyResponse.created_at.desc()).limit(limit)))
        average = s.scalar(select(func.avg(SurveyResponse.score)).where(SurveyResponse.survey_id == survey_id))
        return {"average_score": float(average) if average is not None else None,
                "responses": [{"id": str(r.id), "contact_id": str(r.contact_id) if r.contact_id else None,
                               "answers": r.answers, "score": float(r.score) if r.score is not None else None,
                               "completed_at": r.completed_at.isoformat() if r.completed_at else None}
                              for r in rows]}
