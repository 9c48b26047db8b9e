"""Staff sign-in: argon2 password hashes, sessions held in an HttpOnly cookie, and a sign-in rate limit.

A web session is an API key of its user with a short life (`SESSION_HOURS`, named "web session"): the same
digest-only storage, revocation and role resolution as a bearer key (services/access.py), so the REST API
and the app authorize in exactly one way. Signing out revokes it."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update

from leadpilot.infra import ensure_infra
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import ApiKey, User
from services.access import issue_api_key
from services.errors import DomainError, Unauthorized

SESSION_HOURS = 12
SESSION_NAME = "web session"
MAX_FAILURES = 8  # per email and client address, per window
FAILURE_WINDOW_S = 15 * 60
BAD_SIGN_IN = "The email or password is wrong."
_hasher = PasswordHasher()


class TooManyAttempts(DomainError):
    status = 429
    title = "Too many sign-in attempts"


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie's token (shown once) and who it is."""

    token: str
    user_id: uuid.UUID
    agency_id: uuid.UUID
    expires_at: datetime


def _limiter() -> redis.Redis:
    return redis.Redis.from_url(ensure_infra().redis_url)


def _failures_key(email: str, client: str | None) -> str:
    return f"lp:signin:fail:{email.strip().lower()}:{client or '-'}"


def sign_in(email: str, password: str, *, client: str | None = None, user_agent: str | None = None,
            now: datetime | None = None) -> SignedIn:
    """Check the password (argon2) and open a session. The same answer for an unknown email, a wrong password
    and an inactive user; after MAX_FAILURES failures from one address for one email, 429 for the window."""
    now = now or datetime.now(UTC)
    limiter, key = _limiter(), _failures_key(email, client)
    failures = int(limiter.get(key) or 0)
    if failures >= MAX_FAILURES:
        raise TooManyAttempts(f"Too many failed sign-ins. Try again in {max(limiter.ttl(key), 1) // 60 + 1} "
                              f"minutes.", retry_after=max(limiter.ttl(key), 1))
    with owner_session() as session:  # before any tenant is known: the one row the email names
        user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower(),
                                                 User.deleted_at.is_(None)))
        stored = user.password_hash if user is not None else None
    ok = False
    if user is not None and stored and user.active_status:
        try:
            ok = _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:  # spend the same time as a real check, so timing does not tell which emails exist
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
    if not ok or user is None:
        with limiter.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, FAILURE_WINDOW_S)
            pipe.execute()
        raise Unauthorized(BAD_SIGN_IN)
    limiter.delete(key)
    expires = now + timedelta(hours=SESSION_HOURS)
    with tenant_session(TenantScope(agency_id=user.agency_id, user_id=user.id, ip_address=client,
                                    user_agent=user_agent)) as session:
        _, token = issue_api_key(session=session, user_id=user.id, name=SESSION_NAME, expires_at=expires)
        values: dict[str, object] = {"last_login": now}
        if _hasher.check_needs_rehash(stored or ""):
            values["password_hash"] = _hasher.hash(password)
        session.execute(update(User).where(User.id == user.id).values(**values))
    return SignedIn(token, user.id, user.agency_id, expires)


def sign_out(token: str) -> None:
    """Revoke the session behind a cookie (a bad or finished one is simply gone already)."""
    prefix = token.split("_")[1] if token.count("_") >= 2 else ""
    with owner_session() as session:
        session.execute(update(ApiKey).where(ApiKey.prefix == prefix, ApiKey.name == SESSION_NAME,
                                             ApiKey.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC)))


def hash_password(password: str) -> str:
    """An argon2id hash for a new or changed password."""
    return _hasher.hash(password)


_DUMMY_HASH = _hasher.hash("not-a-real-password")
