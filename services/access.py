"""Who is calling the REST API: bearer API keys (lp_<prefix>_<secret>, SHA-256 of the secret stored), resolved
to their user's permissions per sub-account. Agency memberships grant their role everywhere in the agency;
sub-account memberships grant their role in that sub-account; a key pinned to a sub-account sees only it."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.db import owner_session
from models.tenancy import (
    ApiKey,
    Permission,
    RolePermission,
    SubAccount,
    User,
    UserAgencyMembership,
    UserSubAccountMembership,
)
from services.errors import InvalidInput, NotFound, Unauthorized

TOKEN = re.compile(r"^lp_([0-9a-f]{12})_([A-Za-z0-9_-]{40,64})$")
BAD_KEY = "The API key is unknown, revoked or expired."


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and what it may do where."""

    agency_id: uuid.UUID
    user_id: uuid.UUID
    key_id: uuid.UUID
    pinned_sub_account_id: uuid.UUID | None
    agency_permissions: frozenset[str]
    sub_account_permissions: dict[uuid.UUID, frozenset[str]] = field(default_factory=dict)
    agency_sub_accounts: frozenset[uuid.UUID] = frozenset()

    def sub_accounts(self) -> frozenset[uuid.UUID]:
        """The sub-accounts this caller may enter at all."""
        reachable = self.agency_sub_accounts if self.agency_permissions else frozenset(self.sub_account_permissions)
        reachable &= self.agency_sub_accounts
        if self.pinned_sub_account_id is not None:
            reachable &= {self.pinned_sub_account_id}
        return reachable

    def permissions_in(self, sub_account_id: uuid.UUID) -> frozenset[str]:
        """Permissions in one sub-account (empty when it is out of reach)."""
        if sub_account_id not in self.sub_accounts():
            return frozenset()
        return self.agency_permissions | self.sub_account_permissions.get(sub_account_id, frozenset())

    def agency_wide(self) -> frozenset[str]:
        """Permissions on the agency view (every sub-account at once): agency members only, unpinned keys only."""
        return frozenset() if self.pinned_sub_account_id is not None else self.agency_permissions


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_api_key(*, session: Session, user_id: uuid.UUID, name: str, sub_account_id: uuid.UUID | None = None,
                  expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key for `user_id`; the token is returned once and never stored."""
    user = session.get(User, user_id)
    if user is None or user.deleted_at is not None or not user.active_status:
        raise NotFound("No such active user.")
    if sub_account_id is not None:
        sub = session.get(SubAccount, sub_account_id)
        if sub is None or sub.agency_id != user.agency_id:
            raise InvalidInput("The sub-account is not in the user's agency.", field="sub_account_id")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(36)
    key = ApiKey(agency_id=user.agency_id, user_id=user.id, sub_account_id=sub_account_id, name=name,
                 prefix=prefix, secret_sha256=_digest(secret), expires_at=expires_at)
    session.add(key)
    session.flush()
    return key, f"lp_{prefix}_{secret}"


def revoke_api_key(*, session: Session, key_id: uuid.UUID) -> None:
    """Revoke a key of the current agency; calls with it fail from now on."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound("No such API key.")
    key.revoked_at = datetime.now(UTC)
    session.flush()


def _permissions(session: Session, role_ids: set[uuid.UUID]) -> dict[uuid.UUID, frozenset[str]]:
    out: dict[uuid.UUID, set[str]] = {r: set() for r in role_ids}
    rows = session.execute(select(RolePermission.role_id, Permission.key).join(
        Permission, Permission.id == RolePermission.permission_id).where(RolePermission.role_id.in_(role_ids)))
    for role_id, key in rows:
        out[role_id].add(key)
    return {r: frozenset(p) for r, p in out.items()}


def authenticate(token: str, *, now: datetime | None = None) -> Principal:
    """The principal a bearer token stands for, or Unauthorized. Runs before any tenant is known, so it reads
    as the owner role, and only the rows the token itself points at."""
    now = now or datetime.now(UTC)
    match = TOKEN.match(token.strip())
    if match is None:
        raise Unauthorized(BAD_KEY)
    prefix, secret = match.groups()
    with owner_session() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if (key is None or not hmac.compare_digest(key.secret_sha256, _digest(secret)) or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)):
            raise Unauthorized(BAD_KEY)
        user = session.get(User, key.user_id)
        if user is None or user.deleted_at is not None or not user.active_status:
            raise Unauthorized("The key's user is inactive.")
        agency_roles = set(session.scalars(select(UserAgencyMembership.role_id).where(
            UserAgencyMembership.user_id == user.id, UserAgencyMembership.agency_id == key.agency_id)))
        sub_roles = dict(session.execute(select(UserSubAccountMembership.sub_account_id,
                                                UserSubAccountMembership.role_id)
                                         .where(UserSubAccountMembership.user_id == user.id)).all())
        perms = _permissions(session, agency_roles | set(sub_roles.values()))
        subs = frozenset(session.scalars(select(SubAccount.id).where(
            SubAccount.agency_id == key.agency_id, SubAccount.deleted_at.is_(None))))
        if key.last_used_at is None or key.last_used_at < now - timedelta(minutes=1):  # one write a minute at most
            session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        return Principal(
            agency_id=key.agency_id, user_id=user.id, key_id=key.id, pinned_sub_account_id=key.sub_account_id,
            agency_permissions=frozenset().union(*(perms[r] for r in agency_roles)),
            sub_account_permissions={s: perms[r] for s, r in sub_roles.items()},
            agency_sub_accounts=subs,
        )
