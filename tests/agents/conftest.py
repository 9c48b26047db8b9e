"""A fresh lead with an SMS conversation in sub-account A, its AI on autopilot (committed: the runner, the tools
and the checkpointer open their own connections, as in production)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from models.ai import AIAgent, KnowledgeBase
from models.conversations import Channel, Conversation, ConversationAIConfig, Message
from models.crm import Contact
from models.db import TenantScope, tenant_session
from tests.conftest import Demo


@dataclass
class Lead:
    demo: Demo
    contact_id: uuid.UUID
    conversation_id: uuid.UUID
    agent_id: uuid.UUID

    @property
    def scope(self) -> TenantScope:
        return TenantScope(agency_id=self.demo.agency_id, sub_account_id=self.demo.a)

    def says(self, text: str) -> uuid.UUID:
        """Store an inbound SMS from the lead (what the channel adapter does) and return its id."""
        with tenant_session(self.scope) as session:
            conversation = session.get(Conversation, self.conversation_id)
            assert conversation is not None
            message = Message(sub_account_id=self.demo.a, conversation_id=conversation.id,
                              channel_id=conversation.channel_id, contact_id=self.contact_id, direction="inbound",
                              sender_type="contact", body=text, status="received")
            session.add(message)
            session.flush()
            return message.id


@pytest.fixture
def lead(demo: Demo) -> Lead:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:
        channel = session.scalars(select(Channel).where(Channel.channel_type == "sms")
                                  .order_by(Channel.created_at, Channel.id).limit(1)).one()  # the seeded one
        agent = session.scalars(select(AIAgent).join(KnowledgeBase, KnowledgeBase.ai_agent_id == AIAgent.id)).one()
        contact = Contact(sub_account_id=demo.a, agency_id=demo.agency_id, first_name="Test",
                          last_name=f"Lead {uuid.uuid4().hex[:6]}", email=f"lead-{uuid.uuid4().hex}@example.com",
                          timezone="America/Chicago", lifecycle_stage="lead")
        session.add(contact)
        session.flush()
        conversation = Conversation(sub_account_id=demo.a, channel_id=channel.id, contact_id=contact.id)
        session.add(conversation)
        session.flush()
        session.add(ConversationAIConfig(sub_account_id=demo.a, conversation_id=conversation.id,
                                         ai_agent_id=agent.id, mode="autopilot", is_active=True))
        return Lead(demo, contact.id, conversation.id, agent.id)


@pytest.fixture
def turn(lead: Lead) -> Callable[[str], object]:
    from agents.lead.runner import run_turn

    def run(text: str):  # type: ignore[no-untyped-def]
        message_id = lead.says(text)
        return run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                        conversation_id=lead.conversation_id, message_id=message_id)

    return run
