"""Engines and sessions. The tenant is bound once per transaction as Postgres settings that the
row-level-security policies (and the audit trigger) read; code never has to remember a WHERE clause."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from leadpilot.infra import ensure_infra
from leadpilot.settings import get_settings

log = logging.getLogger("leadpilot.db")

TENANT_KEY = "tenant"


@dataclass(frozen=True)
class TenantScope:
    """Who is acting and on whose data: set on every transaction of a session bound to it.

    With `sub_account_id` the transaction sees that sub-account only; without it (agency staff on the
    agency view) it sees every sub-account of `agency_id`.
    """

    agency_id: uuid.UUID
    sub_account_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    ip_address: str | None = None
    user_agent: str | None = None

    def settings(self) -> dict[str, str]:
        """The `app.*` settings this scope puts on a transaction."""
        return {
            "app.agency_id": str(self.agency_id),
            "app.sub_account_id": str(self.sub_account_id or ""),
            "app.user_id": str(self.user_id or ""),
            "app.ip_address": self.ip_address or "",
            "app.user_agent": (self.user_agent or "")[:500],
        }


# one constant statement (compiled once, prepared by the driver), run at the start of every tenant transaction
_SCOPE = text("SELECT " + ", ".join(f"set_config('{key}', :v{i}, true)"
                                    for i, key in enumerate(TenantScope(uuid.UUID(int=0)).settings())))


def _scope_params(scope: TenantScope) -> dict[str, str]:
    return {f"v{i}": value for i, value in enumerate(scope.settings().values())}


def apply_scope(session: Session, scope: TenantScope) -> None:
    """Put `scope` on the session's current transaction (transaction-local, like SET LOCAL)."""
    session.execute(_SCOPE, _scope_params(scope))


def owner_url() -> str:
    """URL of the owner role: migrations, seeding, system lookups that precede a tenant."""
    return ensure_infra().database_url


def app_url() -> str:
    """URL of the non-superuser application role that row-level security applies to."""
    settings = get_settings()
    if settings.app_database_url:
        return settings.app_database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    url = make_url(owner_url()).set(username=settings.app_db_role, password=settings.app_db_password)
    return url.render_as_string(hide_password=False)


def _engine(url: str, **kw: Any) -> Engine:
    # one pooled connection per request thread (settings.api_threads) plus a few for workers' helper threads:
    # connections stay open instead of being opened and closed per request under load
    size = get_settings().api_threads
    return create_engine(url, pool_pre_ping=True, pool_size=size, max_overflow=4, **kw)


@lru_cache
def get_owner_engine() -> Engine:
    """The owner engine (bypasses RLS as the tables' owner): never used for tenant requests."""
    return _engine(owner_url())


@lru_cache
def get_app_engine() -> Engine:
    """The application engine: every query through it is filtered by row-level security."""
    return _engine(app_url())


def _bind_scope_on_begin(session: Session, transaction: Any, connection: Any) -> None:
    scope = session.info.get(TENANT_KEY)
    if scope is not None and transaction.parent is None:
        connection.execute(_SCOPE, _scope_params(scope))


event.listen(Session, "after_begin", _bind_scope_on_begin)

AFTER_COMMIT_KEY = "after_commit"


def after_commit(session: Session, action: Any) -> None:
    """Run `action()` once the session's outermost transaction has committed (hand work to a worker, publish a
    realtime event); dropped if that transaction, or the savepoint it was registered in, rolls back. What is done
    before the commit could announce rows that never exist."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append((session.get_nested_transaction(), action))


def _run_after_commit(session: Session) -> None:
    # SQLAlchemy fires after_commit for a released savepoint too; the outer transaction may still roll back
    if session.in_nested_transaction():
        return
    for _, action in session.info.pop(AFTER_COMMIT_KEY, []):
        try:
            action()
        except Exception:  # the data is committed; a lost hand-off is picked up again by the outbox dispatcher
            log.exception("after-commit action failed")


event.listen(Session, "after_commit", _run_after_commit)


def _within(transaction: Any, ancestor: Any) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _drop_after_commit(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the whole transaction rolled back
        session.info.pop(AFTER_COMMIT_KEY, None)
    elif previous_transaction.nested and AFTER_COMMIT_KEY in session.info:  # a savepoint: only what it announced
        session.info[AFTER_COMMIT_KEY] = [(where, action) for where, action in session.info[AFTER_COMMIT_KEY]
                                          if not _within(where, previous_transaction)]


event.listen(Session, "after_soft_rollback", _drop_after_commit)


@lru_cache
def _app_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_app_engine(), expire_on_commit=False)


@contextmanager
def tenant_session(scope: TenantScope, *, bind: Engine | None = None) -> Iterator[Session]:
    """A session whose every transaction is scoped to `scope`; commits on success, rolls back on error."""
    factory = sessionmaker(bind, expire_on_commit=False) if bind is not None else _app_sessionmaker()
    with factory() as session:
        session.info[TENANT_KEY] = scope
        with session.begin():
            yield session


@contextmanager
def tenant_unit_of_work(scope: TenantScope) -> Iterator[Session]:
    """A scoped session for long work that commits as it goes (`session.commit()` after each step): every new
    transaction is bound to `scope` again; whatever is uncommitted is rolled back on error."""
    with _app_sessionmaker()() as session:
        session.info[TENANT_KEY] = scope
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def owner_session() -> Iterator[Session]:
    """A session as the owner role, for migrations, seeding and pre-tenant lookups (webhook routing)."""
    with Session(get_owner_engine(), expire_on_commit=False) as session, session.begin():
        yield session
