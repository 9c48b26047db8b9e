"""Sign-in for the staff app: a session cookie (HttpOnly, SameSite=Lax, Secure over https), sign-out, and
`/auth/me` (who is signed in, and the sub-accounts they can switch between with their permissions there)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import SESSION_COOKIE, principal
from leadpilot.settings import get_settings
from models.db import owner_session
from models.tenancy import SubAccount, User
from services import auth
from services.access import Principal

router = APIRouter(prefix="/auth", tags=["auth"])


class SignIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


def _cookie(response: Response, token: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", path="/",
                        secure=get_settings().public_base_url.startswith("https://"))


@router.post("/sign-in", summary="Sign in with email and password (sets the session cookie)")
async def sign_in(body: SignIn, request: Request, response: Response) -> dict[str, Any]:
    """Wrong email or password: 401 (the same for both); too many failures from one address: 429 with
    Retry-After. On success the session cookie is set and `/auth/me`'s answer returned."""
    signed = await run_in_threadpool(auth.sign_in, body.email, body.password,
                                     client=request.client.host if request.client else None,
                                     user_agent=request.headers.get("user-agent"))
    _cookie(response, signed.token, auth.SESSION_HOURS * 3600)
    from services.access import authenticate

    who = await run_in_threadpool(authenticate, signed.token)
    return await run_in_threadpool(describe, who)


@router.post("/sign-out", status_code=204, summary="Sign out (revokes the session)")
async def sign_out(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await run_in_threadpool(auth.sign_out, token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", summary="The signed-in user and the sub-accounts they can switch between")
async def me(who: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
    return await run_in_threadpool(describe, who)


def describe(who: Principal) -> dict[str, Any]:
    """The user, their agency-wide permissions, and each reachable sub-account with their permissions in it."""
    with owner_session() as session:
        user = session.get(User, who.user_id)
        assert user is not None
        subs = session.execute(select(SubAccount.id, SubAccount.name, SubAccount.timezone)
                               .where(SubAccount.id.in_(who.sub_accounts())).order_by(SubAccount.name)).all()
    return {"user": {"id": str(user.id), "name": user.name, "email": user.email},
            "agency_id": str(who.agency_id), "agency_permissions": sorted(who.agency_wide()),
            "sub_accounts": [{"id": str(s.id), "name": s.name, "timezone": s.timezone,
                              "permissions": sorted(who.permissions_in(s.id))} for s in subs]}
