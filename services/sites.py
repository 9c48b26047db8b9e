"""Sites: funnels of ordered pages served at /s/{sub_account_slug}/{funnel_slug}/{page_slug}, rendered on the
server from the builder's JSON blocks (hero, text, image, form, survey, calendar booking, webchat, pricing
with a checkout button) or from the author's HTML/CSS, sanitized either way. Jinja2 autoescapes every value;
author HTML goes through `services.sanitize`; the only scripts a page runs are the product's own."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.calendars import Appointment, Calendar
from models.conversations import Channel
from models.db import TenantScope, owner_session
from models.payments import Price, Product
from models.sites import Form, Funnel, Page, Survey
from models.tenancy import SubAccount
from services import analytics, availability, calendars, payments, sanitize
from services.errors import Conflict, InvalidInput, NotFound
from services.forms import Visit, _rate_limited, check_fields, check_questions, identify, validate

BLOCKS: dict[str, dict[str, tuple[str, ...]]] = {
    # type: {"required": props, "optional": props}
    "hero": {"required": ("title",), "optional": ("subtitle", "image", "cta_text", "cta_href", "align")},
    "text": {"required": (), "optional": ("text", "html", "heading")},
    "image": {"required": ("src",), "optional": ("alt", "caption", "href", "width")},
    "form": {"required": ("form_id",), "optional": ("title", "submit_text")},
    "survey": {"required": ("survey_id",), "optional": ("title", "submit_text")},
    "calendar": {"required": ("calendar_id",), "optional": ("service_id", "title", "days", "redirect")},
    "webchat": {"required": ("widget_key",), "optional": ()},
    "pricing": {"required": ("price_id",), "optional": ("title", "features", "button_text")},
    "spacer": {"required": (), "optional": ("height",)},
}
SLOT_DAYS = 7
SLOTS_SHOWN = 24
VISITOR_COOKIE = "lp_vid"
_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "site_templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                   lstrip_blocks=True)
_env.filters["safe_url"] = sanitize.url
_env.filters["safe_image"] = lambda value: sanitize.url(value, images=True)


@dataclass(frozen=True)
class SitePage:
    """A published page and where it lives: enough to render it and to act in its sub-account's scope."""

    agency_id: uuid.UUID
    sub_account_id: uuid.UUID
    sub_account_slug: str
    business: str
    timezone: str
    funnel_id: uuid.UUID
    funnel_slug: str
    page_id: uuid.UUID

    @property
    def scope(self) -> TenantScope:
        return TenantScope(agency_id=self.agency_id, sub_account_id=self.sub_account_id)

    @property
    def base(self) -> str:
        return f"/s/{self.sub_account_slug}/{self.funnel_slug}"


def page_path(slug: str) -> str:
    """A page slug as stored ("/", "/menu", "menu") in the form the URL carries ("" for the first page)."""
    return slug.strip("/")


def resolve(sub_account_slug: str, funnel_slug: str, page_slug: str, *, preview: bool = False) -> SitePage:
    """The published page at this address (NotFound otherwise). Sub-account slugs are unique within an agency;
    publishing refuses an address another business already serves, so the lookup finds one page at most."""
    wanted = page_path(page_slug)
    with owner_session() as session:  # before any tenant is known: one lookup by the public address
        rows = session.execute(
            select(SubAccount, Funnel, Page).join(Funnel, Funnel.sub_account_id == SubAccount.id)
            .join(Page, Page.funnel_id == Funnel.id)
            .where(SubAccount.slug == sub_account_slug, SubAccount.deleted_at.is_(None),
                   Funnel.slug == funnel_slug, Funnel.deleted_at.is_(None), Page.deleted_at.is_(None),
                   *(() if preview else (Funnel.status == "published", Page.is_published)))
            .order_by(Page.position)).all()
    if wanted:
        rows = [r for r in rows if page_path(r[2].slug) == wanted]
    if not rows:
        raise NotFound("No such page.")
    sub, funnel, page = rows[0]
    return SitePage(sub.agency_id, sub.id, sub.slug, sub.name, sub.timezone, funnel.id, funnel.slug, page.id)


def check_address_free(session: Session, sub_account_id: uuid.UUID, funnel_slug: str) -> None:
    """Publishing: another sub-account (of any agency) with the same slug must not already serve this funnel
    slug, or /s/{slug}/{funnel} would be ambiguous."""
    mine = session.scalar(select(SubAccount.slug).where(SubAccount.id == sub_account_id))
    with owner_session() as owner:
        taken = owner.scalar(select(func.count()).select_from(Funnel).join(SubAccount, SubAccount.id ==
                                                                           Funnel.sub_account_id)
                             .where(SubAccount.slug == mine, SubAccount.id != sub_account_id,
                                    Funnel.slug == funnel_slug, Funnel.status == "published",
                                    Funnel.deleted_at.is_(None)))
    if taken:
        raise Conflict(f"/s/{mine}/{funnel_slug} is already served by another business; choose another slug.")


def check_builder(session: Session, builder: dict[str, Any]) -> dict[str, Any]:
    """Builder JSON, checked when a page is saved: known block types, required props present, and the forms,
    surveys, calendars, prices and chat widgets it names belong to this sub-account (the session's scope)."""
    blocks = builder.get("blocks")
    if blocks is None:
        return builder
    if not isinstance(blocks, list):
        raise InvalidInput("builder_json.blocks is a list of blocks.", field="builder_json.blocks")
    lookups: dict[str, tuple[Any, Any]] = {"form_id": (Form, Form.id), "survey_id": (Survey, Survey.id),
                                           "calendar_id": (Calendar, Calendar.id), "price_id": (Price, Price.id)}
    for i, block in enumerate(blocks):
        where = f"builder_json.blocks[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCKS:
            raise InvalidInput(f"Block {i + 1}: type must be one of {', '.join(BLOCKS)}.", field=f"{where}.type")
        props = block.get("props") or {}
        if not isinstance(props, dict):
            raise InvalidInput(f"Block {i + 1}: props is an object.", field=f"{where}.props")
        for name in BLOCKS[kind]["required"]:
            if not props.get(name):
                raise InvalidInput(f"Block {i + 1} ({kind}) needs '{name}'.", field=f"{where}.props.{name}")
        unknown = set(props) - set(BLOCKS[kind]["required"]) - set(BLOCKS[kind]["optional"])
        if unknown:
            raise InvalidInput(f"Block {i + 1} ({kind}) has unknown props: {', '.join(sorted(unknown))}.",
                               field=f"{where}.props")
        for name, (model, column) in lookups.items():
            if name in props:
                try:
                    ident = uuid.UUID(str(props[name]))
                except ValueError:
                    raise InvalidInput(f"Block {i + 1}: {name} is not an id.", field=f"{where}.props.{name}") from None
                if session.scalar(select(func.count()).select_from(model).where(column == ident)) == 0:
                    raise InvalidInput(f"Block {i + 1}: no such {name.removesuffix('_id')} in this sub-account.",
                                       field=f"{where}.props.{name}")
        if kind == "webchat" and _widget_channel(session, str(props["widget_key"])) is None:
            raise InvalidInput(f"Block {i + 1}: no active chat widget with that key in this sub-account.",
                               field=f"{where}.props.widget_key")
    return builder


def _widget_channel(session: Session, key: str) -> Channel | None:
    return session.scalar(select(Channel).where(Channel.channel_type == "webchat", Channel.address == key,
                                                Channel.is_active, Channel.deleted_at.is_(None)))


@dataclass
class Feedback:
    """What a re-rendered page shows next to a block: the errors and the values the visitor sent."""

    block: str | None = None  # "form:<id>", "survey:<id>", "calendar:<id>", "pricing:<id>"
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


def _slots(session: Session, calendar: Calendar, service_id: str | None, days: int) -> list[dict[str, Any]]:
    today = datetime.now(ZoneInfo(calendar.timezone)).date()
    found = availability.available_slots(session=session, calendar_id=calendar.id, start=today,
                                         end=today + timedelta(days=max(1, min(days, 31)) - 1),
                                         service_id=uuid.UUID(service_id) if service_id else None)
    return [{"value": s.start.isoformat(), "day": s.local_start.strftime("%a %b %-d"),
             "time": s.local_start.strftime("%-I:%M %p")} for s in found[:SLOTS_SHOWN]]


def _block_context(session: Session, site: SitePage, block: dict[str, Any]) -> dict[str, Any] | None:
    """What one block needs to render, loaded in the sub-account's scope; None hides a block whose target was
    removed or switched off since the page was saved."""
    kind, props = block.get("type"), dict(block.get("props") or {})
    ctx: dict[str, Any] = {"type": kind, "props": props}
    if kind == "text" and props.get("html"):
        ctx["html"] = Markup(sanitize.html(props["html"]))  # noqa: S704 - sanitized by ammonia just above
    elif kind == "form":
        form = session.get(Form, uuid.UUID(str(props["form_id"])))
        if form is None or form.deleted_at is not None or not form.is_active:
            return None
        ctx.update(form=form, honeypot=(form.settings or {}).get("honeypot") or "website")
    elif kind == "survey":
        survey = session.get(Survey, uuid.UUID(str(props["survey_id"])))
        if survey is None or survey.deleted_at is not None or not survey.is_active:
            return None
        ctx.update(survey=survey, honeypot=(survey.scoring or {}).get("honeypot") or "website")
    elif kind == "calendar":
        calendar = session.get(Calendar, uuid.UUID(str(props["calendar_id"])))
        if calendar is None or calendar.deleted_at is not None or not calendar.is_active:
            return None
        ctx.update(calendar=calendar, slots=_slots(session, calendar, props.get("service_id"),
                                                   int(props.get("days") or SLOT_DAYS)),
                   nonce=secrets.token_urlsafe(12))
    elif kind == "pricing":
        price = session.get(Price, uuid.UUID(str(props["price_id"])))
        if price is None or price.deleted_at is not None or not price.is_active:
            return None
        ctx.update(price=price, product=session.get(Product, price.product_id))
    elif kind == "webchat":
        if _widget_channel(session, str(props["widget_key"])) is None:
            return None
    elif kind not in BLOCKS:
        return None
    return ctx


def render(session: Session, site: SitePage, *, feedback: Feedback | None = None,
           notice: str | None = None) -> str:
    """The page as HTML, in the sub-account's scope."""
    page = session.get(Page, site.page_id)
    funnel = session.get(Funnel, site.funnel_id)
    if page is None or funnel is None:
        raise NotFound("No such page.")
    blocks = [ctx for b in ((page.builder_json or {}).get("blocks") or []) if isinstance(b, dict)
              if (ctx := _block_context(session, site, b)) is not None]
    pages = session.execute(select(Page.name, Page.slug).where(Page.funnel_id == funnel.id, Page.is_published,
                                                               Page.deleted_at.is_(None))
                            .order_by(Page.position)).all()
    seo = page.seo or {}
    return _env.get_template("page.html").render(
        site=site, page=page, funnel=funnel, blocks=blocks, feedback=feedback or Feedback(), notice=notice,
        html=Markup(sanitize.html(page.html_content)),  # noqa: S704 - sanitized by ammonia
        css=Markup(sanitize.css(page.css_content)),  # noqa: S704 - rebuilt from parsed CSS, "<" escaped
        title=seo.get("title") or f"{page.name} · {site.business}", description=seo.get("description"),
        nav=[(name, f"{site.base}/{page_path(slug)}".rstrip("/")) for name, slug in pages],
        page_path=page_path, tz=site.timezone)


def record_view(session: Session, site: SitePage, *, visitor: str, url: str, referrer: str | None,
                utm: dict[str, str]) -> None:
    """A page_viewed analytics event for the funnel reports (the visitor's id ties views to a later lead)."""
    analytics.record(session, site.sub_account_id, "page_viewed", source="site", session_id=visitor,
                     properties={"page_url": url, "funnel_id": str(site.funnel_id), "page_id": str(site.page_id),
                                 "referrer": referrer, **utm})


def redirect_after(site: SitePage, target: str | None, fallback_page: str) -> str:
    """Where a successful submission goes: the form's redirect (a funnel page slug, a path on this site, or an
    http(s) address), else the given page of the funnel."""
    target = (target or "").strip()
    if target.startswith(("http://", "https://")):
        return sanitize.url(target)
    if target.startswith("/s/"):
        return target
    slug = page_path(target) if target else fallback_page
    return f"{site.base}/{slug}".rstrip("/") if slug else site.base


BOOKING_FIELDS: list[dict[str, Any]] = [
    {"key": "full_name", "label": "Name", "type": "text", "required": True},
    {"key": "email", "label": "Email", "type": "email", "required": True},
    {"key": "phone", "label": "Phone", "type": "phone"},
]


def book(session: Session, site: SitePage, calendar_id: uuid.UUID, data: dict[str, Any], visit: Visit,
         *, service_id: uuid.UUID | None = None) -> Appointment:
    """A visitor books an offered slot from the page's booking block: the contact is matched or created, the
    booking goes through the calendar service (offered slots only, no double booking) and a repeated submit of
    the same form (its nonce) returns the first booking."""
    if str(data.get("website") or "").strip():
        raise InvalidInput("Not accepted.")
    if _rate_limited(f"book:{calendar_id}", visit.ip_address, 10):
        from services.forms import TooManySubmissions

        raise TooManySubmissions("Too many bookings from your address; try again in a minute.")
    clean, errors = validate(BOOKING_FIELDS, data)
    try:
        start = datetime.fromisoformat(str(data.get("slot") or ""))
        if start.tzinfo is None:
            raise ValueError
    except ValueError:
        errors["slot"] = "Choose a time."
    if errors:
        raise InvalidInput("Some fields need another look.", errors=errors)
    calendar = session.get(Calendar, calendar_id)
    if calendar is None or calendar.deleted_at is not None or not calendar.is_active:
        raise NotFound("No such calendar.")
    contact = identify(session, site.sub_account_id, BOOKING_FIELDS, clean, visit, source="booking_widget")
    assert contact is not None  # email is required
    nonce = str(data.get("nonce") or "")[:64]
    request = calendars.BookingRequest(
        calendar_id=calendar.id, contact_id=contact.id, start=start.astimezone(UTC), service_id=service_id,
        source="booking_widget", timezone=calendar.timezone,
        idempotency_key=f"site:{calendar.id}:{nonce}" if nonce else None)
    return calendars.book_appointment(session=session, request=request)


def checkout(session: Session, site: SitePage, price_id: uuid.UUID, data: dict[str, Any], visit: Visit) -> str:
    """The pricing block's button: the buyer becomes (or is matched to) a contact, an invoice for the price is
    opened and the payment gateway's hosted page is where the buyer goes next."""
    fields: list[dict[str, Any]] = [{"key": "email", "label": "Email", "type": "email", "required": True},
              {"key": "full_name", "label": "Name", "type": "text"}]
    clean, errors = validate(fields, data)
    if errors:
        raise InvalidInput("Some fields need another look.", errors=errors)
    if _rate_limited(f"checkout:{price_id}", visit.ip_address, 10):
        from services.forms import TooManySubmissions

        raise TooManySubmissions("Too many attempts from your address; try again in a minute.")
    line = payments.line_for_price(session=session, price_id=price_id)
    price = session.get(Price, price_id)
    assert price is not None
    contact = identify(session, site.sub_account_id, fields, clean, visit, source="funnel_checkout")
    assert contact is not None
    invoice = payments.create_invoice(session=session, contact_id=contact.id, lines=[line], currency=price.currency,
                                      due_in_days=1, notes=f"Checkout from {site.base}")
    from services.payment_gateway import gateway_for

    invoice = payments.send_payment_link(session=session, invoice_id=invoice.id, gateway=gateway_for())
    assert invoice.payment_link_url
    return invoice.payment_link_url


def check_page(session: Session, *, html_content: str | None, js_content: str | None,
               builder_json: dict[str, Any] | None) -> None:
    """A page's content, checked when saved: custom scripts are refused (a page runs only the product's
    scripts), builder blocks must be well formed."""
    if js_content:
        raise InvalidInput("Pages cannot carry their own scripts; use the form, survey, booking, chat and "
                           "checkout blocks, which bring the product's scripts.", field="js_content")
    if builder_json:
        check_builder(session, builder_json)


__all__ = ["SitePage", "Feedback", "resolve", "render", "record_view", "book", "checkout", "check_builder",
           "check_page", "check_fields", "check_questions", "check_address_free", "redirect_after",
           "VISITOR_COOKIE"]
