"""The staff analyst over HTTP: plain-language questions about the numbers, answered within the asker's role."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.deps import principal
from api.params import TimeZone
from models.db import TenantScope, tenant_session
from services.access import Principal
from services.errors import Forbidden, NotFound

router = APIRouter(tags=["Analyst"])


class Question(BaseModel):
    question: str = Field(min_length=3, max_length=1000,
                          examples=["What was our show rate last month vs the month before?"])
    sub_account_id: uuid.UUID | None = Field(None, description="Ask about one sub-account; omit for the agency "
                                                               "view (agency staff only).")
    timezone: TimeZone | None = Field(None, description="Periods in this IANA zone (default: the sub-account's).")


@router.post("/v1/analyst/ask", summary="Ask the analyst")
def ask(body: Question, request: Request, who: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
    """Figures come from the reporting and CRM tools (never from the model), with a table and, for
    comparisons and trends, a PNG chart (base64). A client user can only ask about their sub-account."""
    from agents.analyst.graph import ask as run
    from services.reporting import sub_account_timezone

    if body.sub_account_id is None:
        if "reports.read" not in who.agency_wide():
            raise Forbidden("The agency view needs the agency-level 'reports.read' permission; ask about one of "
                            "your sub-accounts instead.", permission="reports.read")
        zone = body.timezone or "America/New_York"
    else:
        if body.sub_account_id not in who.sub_accounts():
            raise NotFound("No such sub-account.")
        if "reports.read" not in who.permissions_in(body.sub_account_id):
            raise Forbidden("Your role has no 'reports.read' permission in this sub-account.",
                            permission="reports.read")
        with tenant_session(TenantScope(agency_id=who.agency_id, sub_account_id=body.sub_account_id)) as session:
            zone = body.timezone or sub_account_timezone(session=session, sub_account_id=body.sub_account_id)
    return run(body.question, agency_id=who.agency_id, sub_account_id=body.sub_account_id, user_id=who.user_id,
               timezone=zone).as_json()
