"""Declarative base, naming convention, shared column types and mixins for every domain module."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    MetaData,
    Numeric,
    String,
    Text,
    Time,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(14, 2)
JsonDict = dict[str, Any]
JsonList = list[Any]


class Base(DeclarativeBase):
    """Base of every LeadPilot table.

    Class flags read by the row-level-security and audit set-up:
    `__tenancy__` is "sub_account" (row owned by one sub-account), "agency_sub_account" (agency row that may
    belong to one sub-account), "agency" (agency-wide row), or None (global catalog / system table);
    `__audited__` makes creates, updates and (soft) deletes land in activity_logs.
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: Uuid(as_uuid=True),
        datetime: DateTime(timezone=True),
        date: Date(),
        time: Time(),
        Decimal: Money,
        str: Text(),
        bool: Boolean(),
        dict[str, Any]: JSONB().with_variant(JSON(), "sqlite"),
        list[Any]: JSONB().with_variant(JSON(), "sqlite"),
    }

    __tenancy__: ClassVar[str | None] = None
    __audited__: ClassVar[bool] = False


def choice(name: str, *values: str) -> Enum:
    """A string column restricted to `values` by a named CHECK constraint (no native PG enum to migrate)."""
    return Enum(
        *values,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(v) for v in values),
        validate_strings=True,
    )


def fk(target: str, *, ondelete: str | None = None, nullable: bool = False, index: bool = True) -> Any:
    """A uuid foreign-key column with an index (every FK is indexed)."""
    return mapped_column(
        Uuid(as_uuid=True), ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index
    )


def jsonb_obj(name: str | None = None) -> Any:
    """A NOT NULL JSONB object column defaulting to {} (`name` when the attribute name differs)."""
    args: tuple[Any, ...] = (name, JSONB) if name else (JSONB,)
    return mapped_column(*args, nullable=False, default=dict, server_default=text("'{}'::jsonb"))


def jsonb_list() -> Any:
    """A NOT NULL JSONB array column defaulting to []."""
    return mapped_column(JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb"))


def flag(default: bool) -> Any:
    """A NOT NULL boolean with the same default in Python and in the database."""
    return mapped_column(Boolean, nullable=False, default=default, server_default=text(str(default).lower()))


def counter() -> Any:
    """A NOT NULL integer counter starting at 0."""
    return mapped_column(nullable=False, default=0, server_default=text("0"))


def short(length: int = 255, *, nullable: bool = True, **kw: Any) -> Any:
    """A bounded string column."""
    return mapped_column(String(length), nullable=nullable, **kw)


class UUIDPrimaryKey:
    """A uuid primary key generated in Python (so ids are known before flush) with a database default."""

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=func.gen_random_uuid()
    )


class Timestamps:
    """created_at / updated_at in UTC; a trigger keeps updated_at honest for raw SQL too."""

    created_at: Mapped[datetime] = mapped_column(nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        nullable=False, server_default=func.now(), onupdate=func.now()
    )


class SoftDelete:
    """Recoverable rows: deleted_at set instead of DELETE."""

    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SubAccountOwned:
    """Row owned by exactly one sub-account; row-level security filters on it."""

    __tenancy__: ClassVar[str | None] = "sub_account"
    # False where another index of the table leads with sub_account_id (a second one only costs every write)
    __sub_account_index__: ClassVar[bool] = True

    @declared_attr
    def sub_account_id(cls) -> Mapped[uuid.UUID]:
        return fk("sub_accounts.id", ondelete="CASCADE", index=cls.__sub_account_index__)


class Entity(UUIDPrimaryKey, SubAccountOwned, Timestamps, SoftDelete):
    """The common shape of a tenant entity: id, sub-account, timestamps, soft delete, audited."""

    __audited__: ClassVar[bool] = True


DECIMAL_ZERO = Decimal("0")
