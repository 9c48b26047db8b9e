"""Human Handover settings per agent (tags, a task, a reactivation timer), a staff reply pausing the bot by
itself, the timer giving the conversation back when nobody answered, and suggestive mode."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from agents.lead.runner import lead_graph, return_to_ai, run_config
from models.ai import AIAgent
from models.conversations import ConversationAIConfig, Handoff, Message, OutboxEvent
from models.crm import Task
from models.db import tenant_session
from services import crm
from services.handoff import staff_reply
from workers.tasks import reactivate_handoff

pytestmark = pytest.mark.integration


@pytest.fixture
def strict_agent(lead):  # type: ignore[no-untyped-def]
    """A copy of the demo agent whose lack-of-information handover tags, creates a task and reactivates."""
    with tenant_session(lead.scope) as session:
        demo = session.get(AIAgent, lead.agent_id)
        agent = AIAgent(sub_account_id=lead.demo.a, name="Strict", capabilities=demo.capabilities,
                        system_prompt=demo.system_prompt, handoff_settings={
                            "lack_of_information": {"tags": ["needs-human"], "create_task": True,
                                                    "reactivate_after_minutes": 30}})
        session.add(agent)
        session.flush()
        session.execute(update(ConversationAIConfig).where(ConversationAIConfig.conversation_id == lead.conversation_id)
                        .values(ai_agent_id=agent.id))
        return agent.id


def _graph_waiting(lead) -> bool:  # type: ignore[no-untyped-def]
    with tenant_session(lead.scope) as session:
        config, _ = run_config(session, lead.conversation_id)
    return bool(lead_graph().get_state({"configurable": config}).interrupts)


def test_the_handover_settings_tag_task_and_schedule_reactivation(turn, lead, strict_agent) -> None:  # type: ignore[no-untyped-def]
    result = turn("can you fix my car's transmission?")
    assert result.decision == "handoff" and result.handoff["reason"] == "lack_of_information"
    with tenant_session(lead.scope) as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == lead.conversation_id)).one()
        assert "needs-human" in crm.contact_tags(session=session, contact_id=lead.contact_id)
        task = session.scalars(select(Task).where(Task.contact_id == lead.contact_id)).one()
        assert task.title == "Handoff: lack of information" and task.priority == "high"
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == handoff.id)).one()
        assert event.topic == "handoff.reactivate"
        assert event.available_at - handoff.requested_at == timedelta(minutes=30)
    assert _graph_waiting(lead)

    # the timer fires and nobody answered: the AI gets the conversation back and the graph resumes
    outcome = reactivate_handoff.apply(args=[str(event.id), str(lead.demo.agency_id), str(lead.demo.a)]).get()
    assert outcome == "reactivate" and not _graph_waiting(lead)
    with tenant_session(lead.scope) as session:
        assert session.get(Handoff, handoff.id).status == "returned_to_ai"
        assert session.scalars(select(ConversationAIConfig).where(
            ConversationAIConfig.conversation_id == lead.conversation_id)).one().is_active
    again = turn("ok thanks")
    assert again.decision != "skipped" and again.reply


def test_a_staff_reply_keeps_it_with_the_humans_and_the_graph_learns_it(turn, lead, strict_agent) -> None:  # type: ignore[no-untyped-def]
    turn("can you fix my car's transmission?")
    with tenant_session(lead.scope) as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == lead.conversation_id)).one()
        staff_reply(session=session, conversation_id=lead.conversation_id, user_id=None,  # type: ignore[arg-type]
                    body="We're a restaurant, but try Joe's Garage on 5th!")
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == handoff.id)).one()
    assert reactivate_handoff.apply(args=[str(event.id), str(lead.demo.agency_id),
                                          str(lead.demo.a)]).get() == "human_answered"
    assert _graph_waiting(lead) and turn("thanks!").decision == "skipped"
    return_to_ai(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a, conversation_id=lead.conversation_id)
    with tenant_session(lead.scope) as session:
        config, _ = run_config(session, lead.conversation_id)
    note = lead_graph().get_state({"configurable": config}).values["messages"][-1].content
    assert "Joe's Garage" in note


def test_a_person_answering_pauses_the_bot_by_itself(turn, lead) -> None:  # type: ignore[no-untyped-def]
    assert turn("do you have parking?").decision == "answer"
    with tenant_session(lead.scope) as session:
        staff_reply(session=session, conversation_id=lead.conversation_id, user_id=None,  # type: ignore[arg-type]
                    body="Hi, it's Maria from the restaurant - I'll take it from here.")
    assert turn("great, thanks Maria").decision == "skipped"


def test_suggestive_mode_drafts_for_approval(turn, lead) -> None:  # type: ignore[no-untyped-def]
    with tenant_session(lead.scope) as session:
        session.execute(update(ConversationAIConfig).where(ConversationAIConfig.conversation_id == lead.conversation_id)
                        .values(mode="suggestive"))
    result = turn("do you have parking?")
    with tenant_session(lead.scope) as session:
        draft = session.get(Message, result.reply_message_id)
    assert draft.status == "pending_approval" and draft.body == result.reply  # nothing reaches the lead unapproved


def test_the_agents_channel_mode_makes_email_replies_drafts(turn, lead) -> None:  # type: ignore[no-untyped-def]
    """The demo agent says {"email": "suggestive"}: an email conversation on autopilot still only drafts."""
    from models.conversations import Channel, Conversation

    with tenant_session(lead.scope) as session:
        email = session.scalars(select(Channel).where(Channel.channel_type == "email")
                                .order_by(Channel.created_at, Channel.id).limit(1)).one()  # the seeded one
        session.execute(update(Conversation).where(Conversation.id == lead.conversation_id)
                        .values(channel_id=email.id))
        assert session.get(AIAgent, lead.agent_id).channel_modes == {"email": "suggestive"}
    result = turn("do you have parking?")
    with tenant_session(lead.scope) as session:
        assert session.get(Message, result.reply_message_id).status == "pending_approval"
    with tenant_session(lead.scope) as session:  # and an agent switched off answers nothing
        session.execute(update(AIAgent).where(AIAgent.id == lead.agent_id).values(is_active=False))
    try:
        assert turn("hello?").decision == "skipped"
    finally:
        with tenant_session(lead.scope) as session:
            session.execute(update(AIAgent).where(AIAgent.id == lead.agent_id).values(is_active=True))
