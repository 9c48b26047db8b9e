"""Authentication and tenant binding for REST routes: one dependency decides who calls, whether the caller
may act in the sub-account of the path with the permission the route needs, and hands the route a way to
open a session scoped to exactly that (row-level security does the rest)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from models.db import TenantScope, tenant_session
from services.access import Principal, authenticate
from services.errors import Forbidden, NotFound, Unauthorized

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer lp_<prefix>_<secret>`.")


SESSION_COOKIE = "lp_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def principal(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The authenticated caller: a bearer API key, or the app's session cookie (401 without either). A
    cookie-authenticated change must come from our own pages (Origin or Referer on this host): the cookie
    is SameSite=Lax as well, so another site cannot act with a signed-in user's session."""
    if credentials is not None:
        return authenticate(credentials.credentials)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthorized("Sign in, or send an API key as 'Authorization: Bearer lp_...'.")
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("origin") or request.headers.get("referer") or ""
        if urlsplit(origin).netloc != request.headers.get("host", ""):
            raise Forbidden("Changes made with a session cookie must come from the LeadPilot app itself.",
                            permission="same-origin")
    return authenticate(cookie)


@dataclass(frozen=True)
class Tenant:
    """The caller, bound to one sub-account (or to the agency view when `sub_account_id` is None)."""

    principal: Principal
    scope: TenantScope

    @property
    def sub_account_id(self) -> uuid.UUID:
        """The sub-account of the path (routes under /v1/sub-accounts/{id} only)."""
        assert self.scope.sub_account_id is not None
        return self.scope.sub_account_id

    @property
    def user_id(self) -> uuid.UUID:
        return self.principal.user_id

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction scoped to this tenant: committed when the block ends, rolled back on any error,
        so a response is only sent for work that is durable."""
        with tenant_session(self.scope) as session:
            yield session


def _scope(request: Request, who: Principal, sub_account_id: uuid.UUID | None) -> TenantScope:
    return TenantScope(agency_id=who.agency_id, sub_account_id=sub_account_id, user_id=who.user_id,
                       ip_address=request.client.host if request.client else None,
                       user_agent=request.headers.get("user-agent"))


def sub_account(permission: str) -> Callable[..., Tenant]:
    """Dependency: the caller in the path's sub-account, holding `permission` there (404 / 403 otherwise)."""

    def dependency(request: Request, sub_account_id: Annotated[uuid.UUID, Path()],
                   who: Annotated[Principal, Depends(principal)]) -> Tenant:
        if sub_account_id not in who.sub_accounts():
            raise NotFound("No such sub-account.")
        if permission not in who.permissions_in(sub_account_id):
            raise Forbidden(f"Your role has no '{permission}' permission in this sub-account.",
                            permission=permission)
        return Tenant(who, _scope(request, who, sub_account_id))

    dependency.__name__ = f"sub_account_{permission.replace('.', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]  # read by the authorization sweep test
    return dependency


def agency(permission: str) -> Callable[..., Tenant]:
    """Dependency: the caller on the agency view (every sub-account of the agency) holding `permission`."""

    def dependency(request: Request, who: Annotated[Principal, Depends(principal)]) -> Tenant:
        if permission not in who.agency_wide():
            raise Forbidden(f"The agency view needs the agency-level '{permission}' permission.",
                            permission=permission)
        return Tenant(who, _scope(request, who, None))

    dependency.__name__ = f"agency_{permission.replace('.', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency
