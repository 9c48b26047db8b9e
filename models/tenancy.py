"""Tenancy and access: agencies, sub-accounts (the sales seed's clients), users, roles, permissions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    SoftDelete,
    Timestamps,
    UUIDPrimaryKey,
    choice,
    fk,
    flag,
    jsonb_list,
    jsonb_obj,
    short,
)

SUBSCRIPTION_PLANS = ("starter", "unlimited", "saas_pro", "enterprise")
ACCOUNT_STATUSES = ("active", "inactive", "suspended", "churned")
ROLE_TYPES = ("admin", "agency_user", "client_user")
ROLE_SCOPES = ("agency", "sub_account")


class Agency(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """The primary tenant: a marketing agency running many client businesses."""

    __tablename__ = "agencies"
    __tenancy__: ClassVar[str | None] = "agency_root"
    __audited__: ClassVar[bool] = True

    name: Mapped[str] = short(255, nullable=False)
    slug: Mapped[str] = short(100, nullable=False, unique=True)
    registration_date: Mapped[datetime] = mapped_column(nullable=False, server_default=func.now())
    subscription_plan: Mapped[str] = mapped_column(
        choice("subscription_plan", *SUBSCRIPTION_PLANS), nullable=False, server_default="starter"
    )
    contact_info: Mapped[dict[str, Any]] = jsonb_obj()
    billing_address: Mapped[str | None]
    active_status: Mapped[bool] = flag(True)
    settings: Mapped[dict[str, Any]] = jsonb_obj()


class SubAccount(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A client business of the agency (the sales seed's `clients`)."""

    __tablename__ = "sub_accounts"
    __tenancy__: ClassVar[str | None] = "sub_account_root"
    __audited__: ClassVar[bool] = True
    __table_args__ = (
        UniqueConstraint("agency_id", "slug"),
        # lets child rows that carry both ids prove their sub-account belongs to their agency
        UniqueConstraint("agency_id", "id"),
    )

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    name: Mapped[str] = short(255, nullable=False)
    slug: Mapped[str] = short(100, nullable=False)
    timezone: Mapped[str] = short(64, nullable=False, server_default="America/New_York")
    onboarding_date: Mapped[datetime] = mapped_column(nullable=False, server_default=func.now())
    contact_info: Mapped[dict[str, Any]] = jsonb_obj()
    industry: Mapped[str | None] = short(120)
    account_status: Mapped[str] = mapped_column(
        choice("account_status", *ACCOUNT_STATUSES), nullable=False, server_default="active"
    )
    billing_info: Mapped[dict[str, Any]] = jsonb_obj()
    phone: Mapped[str | None] = short(32)
    email: Mapped[str | None] = short(320)
    address: Mapped[str | None]
    currency: Mapped[str] = short(3, nullable=False, server_default="USD")
    # business hours, quiet hours, help text, branding
    settings: Mapped[dict[str, Any]] = jsonb_obj()


class Permission(UUIDPrimaryKey, Base):
    """A named access right, e.g. `contacts.write` (global catalog)."""

    __tablename__ = "permissions"

    key: Mapped[str] = short(100, nullable=False, unique=True)
    name: Mapped[str] = short(255, nullable=False)
    category: Mapped[str] = short(64, nullable=False)
    description: Mapped[str | None]


class Role(UUIDPrimaryKey, Timestamps, Base):
    """System or custom role at agency or sub-account level (both seeds' fields)."""

    __tablename__ = "roles"
    __tenancy__: ClassVar[str | None] = "role"
    __table_args__ = (
        Index("uq_roles_scope_name", "agency_id", "sub_account_id", "name", unique=True,
              postgresql_nulls_not_distinct=True),
    )

    agency_id: Mapped[uuid.UUID | None] = fk("agencies.id", ondelete="CASCADE", nullable=True)
    sub_account_id: Mapped[uuid.UUID | None] = fk("sub_accounts.id", ondelete="CASCADE", nullable=True)
    role_type: Mapped[str] = mapped_column(choice("role_type", *ROLE_TYPES), nullable=False)
    scope: Mapped[str] = mapped_column(choice("role_scope", *ROLE_SCOPES), nullable=False)
    name: Mapped[str] = short(100, nullable=False)
    description: Mapped[str | None]
    # the sales seed's denormalised access list; the source of truth is role_permissions
    permissions: Mapped[list[Any]] = jsonb_list()
    is_system: Mapped[bool] = flag(False)
    active_status: Mapped[bool] = flag(True)


class RolePermission(Base):
    """Which permissions a role grants."""

    __tablename__ = "role_permissions"

    role_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class User(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A person who signs in: agency staff or a client's staff."""

    __tablename__ = "users"
    __tenancy__: ClassVar[str | None] = "agency"
    __audited__: ClassVar[bool] = True
    __table_args__ = (Index("uq_users_email_lower", text("lower(email)"), unique=True),)

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    role_id: Mapped[uuid.UUID] = fk("roles.id", ondelete="RESTRICT")
    email: Mapped[str] = short(320, nullable=False)
    name: Mapped[str] = short(255, nullable=False)
    password_hash: Mapped[str | None]
    phone: Mapped[str | None] = short(32)
    timezone: Mapped[str | None] = short(64)
    # skill tags for skill-based routing of handoffs
    skills: Mapped[list[Any]] = jsonb_list()
    is_available: Mapped[bool] = flag(True)
    last_login: Mapped[datetime | None]
    active_status: Mapped[bool] = flag(True)


class UserAgencyMembership(UUIDPrimaryKey, Timestamps, Base):
    """A user's role across the whole agency."""

    __tablename__ = "user_agency_memberships"
    __tenancy__: ClassVar[str | None] = "agency"
    __table_args__ = (UniqueConstraint("user_id", "agency_id"),)

    user_id: Mapped[uuid.UUID] = fk("users.id", ondelete="CASCADE")
    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    role_id: Mapped[uuid.UUID] = fk("roles.id", ondelete="RESTRICT")


class UserSubAccountMembership(UUIDPrimaryKey, Timestamps, Base):
    """A user's role in one sub-account."""

    __tablename__ = "user_sub_account_memberships"
    __tenancy__: ClassVar[str | None] = "sub_account"
    __table_args__ = (UniqueConstraint("user_id", "sub_account_id"),)

    user_id: Mapped[uuid.UUID] = fk("users.id", ondelete="CASCADE")
    sub_account_id: Mapped[uuid.UUID] = fk("sub_accounts.id", ondelete="CASCADE")
    role_id: Mapped[uuid.UUID] = fk("roles.id", ondelete="RESTRICT")


class AgencyScoped:
    """Row carrying both agency_id and an optional sub_account_id that must belong to that agency."""

    @staticmethod
    def agency_sub_account_fk() -> ForeignKeyConstraint:
        """Composite FK proving the sub-account is the agency's."""
        return ForeignKeyConstraint(
            ["agency_id", "sub_account_id"], ["sub_accounts.agency_id", "sub_accounts.id"],
            ondelete="CASCADE",
        )


class DocumentSequence(Base):
    """Per-sub-account counters for human numbers such as INV-2026-0001 (gap-free under row lock)."""

    __tablename__ = "document_sequences"
    __tenancy__: ClassVar[str | None] = "sub_account"

    sub_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sub_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last_value: Mapped[int] = mapped_column(nullable=False, server_default=text("0"))


class ApiKey(UUIDPrimaryKey, Timestamps, Base):
    """A bearer key for the REST API: acts as its user, with that user's roles, optionally pinned to one
    sub-account. Only a SHA-256 digest of the secret is stored; the token is shown once at creation."""

    __tablename__ = "api_keys"
    __tenancy__: ClassVar[str | None] = "agency_sub_account"
    __audited__: ClassVar[bool] = True
    __table_args__ = (ForeignKeyConstraint(
        ["agency_id", "sub_account_id"], ["sub_accounts.agency_id", "sub_accounts.id"],
        ondelete="CASCADE", name="fk_api_keys_agency_sub_account"),)

    agency_id: Mapped[uuid.UUID] = fk("agencies.id", ondelete="CASCADE")
    user_id: Mapped[uuid.UUID] = fk("users.id", ondelete="CASCADE")
    sub_account_id: Mapped[uuid.UUID | None] = fk("sub_accounts.id", ondelete="CASCADE", nullable=True)
    name: Mapped[str] = short(100, nullable=False)
    # public half of the token (lp_<prefix>_<secret>): finds the row without scanning digests
    prefix: Mapped[str] = short(16, nullable=False, unique=True)
    secret_sha256: Mapped[str] = short(64, nullable=False)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
