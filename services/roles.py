"""Custom roles: an agency defines a role from the permission catalogue (for the whole agency or for client
users of its sub-accounts) and gives it to a person in a sub-account. The one authorization dependency
(api/deps.py) reads permissions through role_permissions, so a custom role is enforced exactly like a seeded
one. Runs on the agency view (RLS: the agency's own roles and memberships only)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.tenancy import (
    Permission,
    Role,
    RolePermission,
    SubAccount,
    User,
    UserAgencyMembership,
    UserSubAccountMembership,
)
from services.errors import InvalidInput, NotFound


def list_roles(*, session: Session) -> list[dict[str, Any]]:
    """The seeded system roles and the agency's custom roles, each with its permissions."""
    roles = session.scalars(select(Role).where(Role.active_status).order_by(Role.is_system.desc(), Role.name)).all()
    keys: dict[uuid.UUID, list[str]] = {r.id: [] for r in roles}
    for role_id, key in session.execute(select(RolePermission.role_id, Permission.key).join(
            Permission, Permission.id == RolePermission.permission_id).where(RolePermission.role_id.in_(keys))):
        keys[role_id].append(key)
    return [{"id": str(r.id), "name": r.name, "scope": r.scope, "role_type": r.role_type, "custom": not r.is_system,
             "sub_account_id": str(r.sub_account_id) if r.sub_account_id else None,
             "permissions": sorted(keys[r.id])} for r in roles]


def create_role(*, session: Session, agency_id: uuid.UUID, name: str, permissions: list[str], scope: str,
                description: str | None = None) -> dict[str, Any]:
    """A custom role from permission keys of the catalogue; `scope` agency (staff across sub-accounts) or
    sub_account (a client user's role inside one)."""
    if scope not in ("agency", "sub_account"):
        raise InvalidInput("scope must be agency or sub_account.", field="scope")
    wanted = sorted(set(permissions))
    found = dict(session.execute(select(Permission.key, Permission.id).where(Permission.key.in_(wanted))).all())
    unknown = [k for k in wanted if k not in found]
    if unknown or not wanted:
        raise InvalidInput(f"Unknown permissions: {', '.join(unknown)}." if unknown else "Pick some permissions.",
                           field="permissions")
    role = Role(agency_id=agency_id, name=name.strip(), description=description, scope=scope, permissions=wanted,
                role_type="agency_user" if scope == "agency" else "client_user", is_system=False)
    session.add(role)
    session.flush()
    session.execute(pg_insert(RolePermission), [{"role_id": role.id, "permission_id": found[k]} for k in wanted])
    return {"id": str(role.id), "name": role.name, "scope": scope, "permissions": wanted, "custom": True}


def grant_sub_account_role(*, session: Session, user_id: uuid.UUID, sub_account_id: uuid.UUID,
                           role_id: uuid.UUID | None) -> dict[str, Any]:
    """Give a person a role in one sub-account (replacing their role there), or take it away (None)."""
    user, sub = session.get(User, user_id), session.get(SubAccount, sub_account_id)
    if user is None or user.deleted_at is not None or sub is None:
        raise NotFound("No such user or sub-account in this agency.")
    if role_id is None:
        session.execute(delete(UserSubAccountMembership).where(
            UserSubAccountMembership.user_id == user_id, UserSubAccountMembership.sub_account_id == sub_account_id))
        return {"user_id": str(user_id), "sub_account_id": str(sub_account_id), "role_id": None}
    role = session.get(Role, role_id)
    if role is None or role.scope != "sub_account":
        raise InvalidInput("Give a sub-account role here (agency roles apply across the agency).", field="role_id")
    if session.scalar(select(UserAgencyMembership.id).where(UserAgencyMembership.user_id == user_id)) is not None:
        raise InvalidInput("Agency staff already reach every sub-account with their agency role.", field="user_id")
    session.execute(pg_insert(UserSubAccountMembership).values(
        user_id=user_id, sub_account_id=sub_account_id, role_id=role_id,
    ).on_conflict_do_update(index_elements=["user_id", "sub_account_id"], set_={"role_id": role_id}))
    return {"user_id": str(user_id), "sub_account_id": str(sub_account_id), "role_id": str(role_id)}
