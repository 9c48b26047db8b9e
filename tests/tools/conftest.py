"""The tool tests' shared fixture: a tool called as the lead agent of sub-account A would call it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from models.conversations import Conversation
from models.db import TenantScope
from tests.conftest import Demo

ALL = ["answer_faq", "book_appointments", "qualify_leads", "take_payments", "escalate_to_human", "reporting"]


@pytest.fixture
def run(scoped, demo: Demo):  # type: ignore[no-untyped-def]
    """Call a tool as a lead agent of sub-account A would, in A's conversation with one of its contacts."""
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    conversation = session.scalars(select(Conversation).order_by(Conversation.id).limit(1)).one()

    def call(tool: Any, args: dict[str, Any], capabilities: list[str] | None = None, **overrides: Any) -> Any:
        configurable = {"agency_id": demo.agency_id, "sub_account_id": demo.a,
                        "contact_id": conversation.contact_id, "conversation_id": conversation.id,
                        "capabilities": ALL if capabilities is None else capabilities,
                        "timezone": "America/Chicago", "db_session": session, **overrides}
        return tool.invoke(args, config={"configurable": configurable})

    call.session, call.conversation = session, conversation  # type: ignore[attr-defined]
    return call
