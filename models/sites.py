"""Sites: funnels of pages, forms and their submissions, surveys and their responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, Numeric, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    Entity,
    SubAccountOwned,
    UUIDPrimaryKey,
    choice,
    counter,
    fk,
    flag,
    jsonb_list,
    jsonb_obj,
    short,
)

FUNNEL_STATUSES = ("draft", "published", "archived")
PAGE_TYPES = ("landing", "standard", "optin", "checkout", "upsell", "thank_you")


class Funnel(Entity, Base):
    """An ordered set of pages served at /s/{sub_account}/{funnel}/{page}."""

    __tablename__ = "funnels"
    __table_args__ = (
        Index("uq_funnels_slug", "sub_account_id", "slug", unique=True, postgresql_where=text("deleted_at IS NULL")),
    )

    name: Mapped[str] = short(255, nullable=False)
    slug: Mapped[str] = short(100, nullable=False)
    description: Mapped[str | None]
    status: Mapped[str] = mapped_column(choice("funnel_status", *FUNNEL_STATUSES), nullable=False,
                                        server_default="draft")
    domain: Mapped[str | None] = short(255)
    settings: Mapped[dict[str, Any]] = jsonb_obj()


class Page(Entity, Base):
    """A funnel page: raw HTML/CSS/JS or builder JSON blocks."""

    __tablename__ = "pages"
    __table_args__ = (
        Index("uq_pages_slug", "funnel_id", "slug", unique=True, postgresql_where=text("deleted_at IS NULL")),
    )

    funnel_id: Mapped[uuid.UUID] = fk("funnels.id", ondelete="CASCADE")
    name: Mapped[str] = short(255, nullable=False)
    slug: Mapped[str] = short(255, nullable=False)
    page_type: Mapped[str] = mapped_column(choice("page_type", *PAGE_TYPES), nullable=False,
                                           server_default="standard")
    position: Mapped[int] = counter()
    html_content: Mapped[str | None]
    css_content: Mapped[str | None]
    js_content: Mapped[str | None]
    builder_json: Mapped[dict[str, Any]] = jsonb_obj()
    seo: Mapped[dict[str, Any]] = jsonb_obj()
    is_published: Mapped[bool] = flag(False)


class Form(Entity, Base):
    """A form with typed, validated fields; submissions match or create contacts."""

    __tablename__ = "forms"

    page_id: Mapped[uuid.UUID | None] = fk("pages.id", ondelete="SET NULL", nullable=True)
    name: Mapped[str] = short(255, nullable=False)
    fields: Mapped[list[Any]] = jsonb_list()
    settings: Mapped[dict[str, Any]] = jsonb_obj()
    is_active: Mapped[bool] = flag(True)


class FormSubmission(UUIDPrimaryKey, SubAccountOwned, Base):
    """What a visitor sent through a form, and the contact it was matched to."""

    __tablename__ = "form_submissions"
    __table_args__ = (Index("ix_form_submissions_form_created", "form_id", "created_at"),)

    form_id: Mapped[uuid.UUID] = fk("forms.id", ondelete="CASCADE", index=False)
    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="SET NULL", nullable=True)
    data: Mapped[dict[str, Any]] = jsonb_obj()
    ip_address: Mapped[str | None] = short(45)
    user_agent: Mapped[str | None]
    page_url: Mapped[str | None]
    is_processed: Mapped[bool] = flag(False)
    processed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))


class Survey(Entity, Base):
    """A survey with branching questions and scoring."""

    __tablename__ = "surveys"

    page_id: Mapped[uuid.UUID | None] = fk("pages.id", ondelete="SET NULL", nullable=True)
    name: Mapped[str] = short(255, nullable=False)
    questions: Mapped[list[Any]] = jsonb_list()
    scoring: Mapped[dict[str, Any]] = jsonb_obj()
    is_active: Mapped[bool] = flag(True)


class SurveyResponse(UUIDPrimaryKey, SubAccountOwned, Base):
    """One completed survey."""

    __tablename__ = "survey_responses"

    survey_id: Mapped[uuid.UUID] = fk("surveys.id", ondelete="CASCADE")
    contact_id: Mapped[uuid.UUID | None] = fk("contacts.id", ondelete="SET NULL", nullable=True)
    answers: Mapped[dict[str, Any]] = jsonb_obj()
    score: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    ip_address: Mapped[str | None] = short(45)
    user_agent: Mapped[str | None]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
