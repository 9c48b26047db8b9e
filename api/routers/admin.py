"""Agency administration: the permission catalogue, custom roles, and who holds which role in a sub-account.
Agency view only, with the agency-level `users.manage` permission."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import Tenant, agency
from models.tenancy import Permission
from services import roles

router = APIRouter(prefix="/v1/agency", tags=["Administration"])
Manage = Annotated[Tenant, Depends(agency("users.manage"))]


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2, max_length=100)
    permissions: list[str] = Field(min_length=1, max_length=100)
    scope: Literal["agency", "sub_account"] = "sub_account"
    description: str | None = Field(None, max_length=500)


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role_id: uuid.UUID | None = Field(description="A sub-account role; null takes the person out of it.")


@router.get("/permissions", summary="The permission catalogue")
def permissions(t: Manage) -> list[dict[str, Any]]:
    with t.session() as s:
        return [{"key": p.key, "name": p.name, "category": p.category}
                for p in s.scalars(select(Permission).order_by(Permission.category, Permission.key))]


@router.get("/roles", summary="System and custom roles with their permissions")
def list_roles(t: Manage) -> list[dict[str, Any]]:
    with t.session() as s:
        return roles.list_roles(session=s)


@router.post("/roles", status_code=201, summary="Create a custom role")
def create_role(t: Manage, body: RoleIn) -> dict[str, Any]:
    with t.session() as s:
        return roles.create_role(session=s, agency_id=t.scope.agency_id, name=body.name,
                                 permissions=body.permissions, scope=body.scope, description=body.description)


@router.put("/users/{user_id}/sub-accounts/{sub_account_id}/role", summary="Give a person a role in a sub-account")
def grant(t: Manage, user_id: uuid.UUID, sub_account_id: uuid.UUID, body: Grant) -> dict[str, Any]:
    with t.session() as s:
        return roles.grant_sub_account_role(session=s, user_id=user_id, sub_account_id=sub_account_id,
                                            role_id=body.role_id)
