"""The lead agent end to end on the offline policy model: real graph, tools, database and checkpointer."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from agents.lead.runner import lead_graph, return_to_ai, run_turn
from models.ai import AIConversationLog
from models.calendars import Appointment
from models.conversations import ConversationAIConfig, Handoff, Message
from models.crm import Contact
from models.db import tenant_session

pytestmark = pytest.mark.integration


def test_a_faq_is_answered_from_the_knowledge_base_and_logged(turn, lead) -> None:  # type: ignore[no-untyped-def]
    result = turn("what time do you open on sundays?")
    assert result.decision == "answer"
    assert "Sunday 10:00-21:00" in result.reply and len(result.reply) <= 320
    with tenant_session(lead.scope) as session:
        reply = session.get(Message, result.reply_message_id)
        assert (reply.direction, reply.sender_type, reply.status) == ("outbound", "bot", "queued")
        logs = session.scalars(select(AIConversationLog).where(
            AIConversationLog.conversation_id == lead.conversation_id).order_by(AIConversationLog.created_at)).all()
    assert [log.decision for log in logs] == ["tool", "answer"]
    assert logs[0].tools_called[0]["name"] == "search_knowledge" and logs[1].retrieved_docs
    assert logs[1].confidence_score > 0.5 and logs[1].total_tokens > 0 and logs[1].latency_ms is not None


def test_a_retried_turn_replies_once(turn, lead) -> None:  # type: ignore[no-untyped-def]
    message_id = lead.says("do you have parking?")
    first = run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                     conversation_id=lead.conversation_id, message_id=message_id)
    again = run_turn(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                     conversation_id=lead.conversation_id, message_id=message_id)
    assert again.reply_message_id == first.reply_message_id and again.reply == first.reply
    with tenant_session(lead.scope) as session:
        assert session.scalar(select(func.count()).where(Message.conversation_id == lead.conversation_id,
                                                         Message.direction == "outbound")) == 1


def test_booking_offers_real_slots_then_books_the_one_chosen(turn, lead) -> None:  # type: ignore[no-untyped-def]
    offer = turn("hi, I'd like to book a table")
    assert offer.decision == "ask" and "I can offer" in offer.reply
    first = re.search(r"offer (\w{3} \w{3} \d{1,2} at [\d:]+ [AP]M)", offer.reply)
    assert first, offer.reply
    booked = turn(f"{first.group(1)} works for us")
    assert booked.decision == "answer" and booked.reply.startswith("You're booked for " + first.group(1))
    assert "America/Chicago" in booked.reply
    with tenant_session(lead.scope) as session:
        appointment = session.scalars(select(Appointment).where(Appointment.contact_id == lead.contact_id)).one()
    local = appointment.start_time.astimezone(ZoneInfo("America/Chicago"))
    assert local.strftime("%a %b %-d at %-I:%M %p").replace(":00 ", " ") == first.group(1)
    assert appointment.status == "scheduled" and appointment.source == "ai_agent"

    cancelled = turn("something came up, please cancel my reservation")
    assert cancelled.reply.startswith("Done: your appointment for " + first.group(1))
    with tenant_session(lead.scope) as session:
        assert session.get(Appointment, appointment.id).status == "cancelled"


def test_unknown_questions_hand_off_pause_the_bot_and_resume(turn, lead) -> None:  # type: ignore[no-untyped-def]
    result = turn("do you sell car insurance for teenagers?")
    assert result.decision == "handoff" and result.handoff["reason"] == "lack_of_information"
    assert result.reply  # the lead is told a person will follow up
    with tenant_session(lead.scope) as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == lead.conversation_id)).one()
        config = session.scalars(select(ConversationAIConfig).where(
            ConversationAIConfig.conversation_id == lead.conversation_id)).one()
        assert handoff.reason == "lack_of_information" and handoff.resolved_at is None and not config.is_active
    assert turn("hello??").decision == "skipped"  # a human has it now

    back = return_to_ai(agency_id=lead.demo.agency_id, sub_account_id=lead.demo.a,
                        conversation_id=lead.conversation_id, human_messages=["We don't sell insurance, sorry!"])
    assert back.decision == "resumed"
    from agents.lead.runner import lead_graph, run_config

    with tenant_session(lead.scope) as session:
        config, ai_config = run_config(session, lead.conversation_id)
        assert ai_config.is_active
    state = lead_graph().get_state({"configurable": config}).values
    assert "We don't sell insurance, sorry!" in state["messages"][-1].content  # the graph knows what was said
    assert turn("ok, and do you have parking?").decision == "answer"


def test_asking_for_a_person_hands_off_at_once(turn, lead) -> None:  # type: ignore[no-untyped-def]
    result = turn("can I talk to a real person please")
    assert result.decision == "handoff" and result.handoff["reason"] == "human_requested"
    assert result.reply == "Connecting you with our team now."  # the agent's configured final message


def test_stop_opts_the_lead_out_of_the_channel(turn, lead) -> None:  # type: ignore[no-untyped-def]
    result = turn("STOP")
    assert result.decision == "opted_out" and "unsubscribed" in result.reply
    with tenant_session(lead.scope) as session:
        contact = session.get(Contact, lead.contact_id)
        assert contact.dnd_channels.get("sms")


def test_now_is_in_the_leads_timezone(turn, lead) -> None:  # type: ignore[no-untyped-def]
    """'Friday at 6pm' is the lead's Friday 6 PM (America/Chicago), not the server's or the business's: it is
    what the parsers read and what availability is asked for."""
    turn("can I book a table for Friday at 6pm?")
    state = lead_graph().get_state({"configurable": {"thread_id": str(lead.conversation_id)}})
    found = state.values["turn"]["when"]
    assert (found["at"], found["exact"]) == ("18:00:00", True)
    with tenant_session(lead.scope) as session:
        calls = [c for tools in session.scalars(select(AIConversationLog.tools_called).where(
            AIConversationLog.conversation_id == lead.conversation_id)) for c in tools or []]
    asked = [c["args"]["preferred"] for c in calls if c["name"] == "check_availability"]
    assert asked and all(datetime.fromisoformat(a).astimezone(ZoneInfo("America/Chicago")).hour == 18
                         for a in asked), asked


def test_the_worker_task_answers_a_stored_message(lead) -> None:  # type: ignore[no-untyped-def]
    from workers.tasks import agent_turn

    message_id = lead.says("are dogs allowed?")
    args = [str(lead.conversation_id), str(message_id), str(lead.demo.agency_id), str(lead.demo.a)]
    first = agent_turn.apply(args=args).get()
    assert first["decision"] in ("answer", "handoff") and first["reply_message_id"]
    assert agent_turn.apply(args=args).get() == first  # redelivered: the same reply, not a second one


def test_rescheduling_moves_the_booking_to_a_time_that_is_free(turn, lead) -> None:  # type: ignore[no-untyped-def]
    offer = turn("I'd like to book a table")
    times = re.findall(r"(\w{3} \w{3} \d{1,2} at [\d:]+ [AP]M)", offer.reply)
    assert len(times) >= 2, offer.reply
    assert turn(f"{times[0]} please").reply.startswith("You're booked")
    moved = turn(f"can I move my reservation to {times[1]}?")
    assert moved.reply.startswith(f"Done: you're now booked for {times[1]}"), moved.reply
    with tenant_session(lead.scope) as session:
        rows = session.scalars(select(Appointment).where(Appointment.contact_id == lead.contact_id)
                               .order_by(Appointment.created_at)).all()
    assert [a.status for a in rows] == ["rescheduled", "scheduled"]


def test_a_payment_link_for_the_leads_own_invoice(turn, lead) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal

    from services import payments

    with tenant_session(lead.scope) as session:
        invoice = payments.create_invoice(session=session, contact_id=lead.contact_id,
                                          lines=[payments.Line("Event deposit", Decimal(1), Decimal("300.00"))])
    result = turn("can you send me the payment link for my deposit?")
    assert invoice.invoice_number in result.reply and "USD 300.00 due" in result.reply
    assert f"/sandbox/pay/{invoice.id}" in result.reply


def test_an_event_enquiry_is_qualified_into_custom_fields_and_an_opportunity(turn, lead) -> None:  # type: ignore[no-untyped-def]
    from models.pipelines import Opportunity

    first = turn("we're planning a party for 40 people, can you help?")
    assert first.decision == "ask" and first.reply == "What date is your event?"  # party size already saved
    second = turn("December 12")
    assert second.reply == "Any dietary needs we should plan for?"
    done = turn("two of us are vegan and one is gluten free")
    assert done.reply.startswith("Thank you, that's everything")
    with tenant_session(lead.scope) as session:
        contact = session.get(Contact, lead.contact_id)
        assert contact.custom_fields["party_size"] == 40
        assert contact.custom_fields["event_date"].endswith("-12-12")
        assert sorted(contact.custom_fields["dietary_preferences"]) == ["gluten_free", "vegan"]
        assert contact.qualification_status == "contacted"
        deal = session.scalars(select(Opportunity).where(Opportunity.contact_id == lead.contact_id)).one()
    assert deal.name.endswith("event enquiry") and deal.status == "open"
    assert _stage(lead, deal.id) == "Qualified"  # the agent's pipeline_settings.on_qualified


def _stage(lead, opportunity_id) -> str:  # type: ignore[no-untyped-def]
    from models.pipelines import Opportunity, PipelineStage

    with tenant_session(lead.scope) as session:
        return session.scalar(select(PipelineStage.name).join(Opportunity, Opportunity.stage_id == PipelineStage.id)
                              .where(Opportunity.id == opportunity_id))


def _open_deal(lead, stage: str):  # type: ignore[no-untyped-def]
    from models.pipelines import Pipeline, PipelineStage
    from services import pipelines

    with tenant_session(lead.scope) as session:
        pipeline = session.scalars(select(Pipeline).where(Pipeline.is_default)).one()
        stage_id = session.scalar(select(PipelineStage.id).where(PipelineStage.pipeline_id == pipeline.id,
                                                                 PipelineStage.name == stage))
        return pipelines.create_opportunity(session=session, pipeline_id=pipeline.id, contact_id=lead.contact_id,
                                            name="Garcia - tasting", stage_id=stage_id).id


def test_booking_moves_the_leads_open_deal_to_the_agents_booked_stage(turn, lead) -> None:  # type: ignore[no-untyped-def]
    from models.pipelines import Opportunity, OpportunityStageHistory

    deal_id = _open_deal(lead, "Qualified")
    offer = turn("hi, I'd like to book a table")
    first = re.search(r"offer (\w{3} \w{3} \d{1,2} at [\d:]+ [AP]M)", offer.reply)
    assert first, offer.reply
    booked = turn(f"{first.group(1)} works for us")
    assert booked.reply.startswith("You're booked for " + first.group(1))  # the lead hears about the booking
    assert _stage(lead, deal_id) == "Proposal Sent"  # pipeline_settings.on_booked
    with tenant_session(lead.scope) as session:
        history = session.scalars(select(OpportunityStageHistory).where(
            OpportunityStageHistory.opportunity_id == deal_id)).all()
        assert len(history) == 2  # opened, then moved once
        assert session.scalar(select(func.count()).select_from(Opportunity).where(
            Opportunity.contact_id == lead.contact_id)) == 1
        logs = session.scalars(select(AIConversationLog).where(
            AIConversationLog.conversation_id == lead.conversation_id).order_by(AIConversationLog.created_at)).all()
    called = [c["name"] for log in logs for c in log.tools_called]
    assert called[-2:] == ["book_appointment", "move_opportunity"]
    assert logs[-1].tools_called == [] and logs[-1].decision == "answer"


def test_booking_without_a_deal_opens_none_and_qualifying_moves_the_deal_there_is(turn, lead) -> None:  # type: ignore[no-untyped-def]
    from models.pipelines import Opportunity

    offer = turn("can I make a reservation for Friday at 7pm")
    first = re.search(r"offer (\w{3} \w{3} \d{1,2} at [\d:]+ [AP]M)", offer.reply)
    booked = turn(f"{first.group(1)} please") if first else offer
    assert booked.reply.startswith("You're booked for")
    with tenant_session(lead.scope) as session:
        assert session.scalar(select(func.count()).select_from(Opportunity).where(
            Opportunity.contact_id == lead.contact_id)) == 0  # a table booking is not a deal

    deal_id = _open_deal(lead, "New Lead")  # say a form opened one meanwhile
    turn("we're planning a party for 40 people, can you help?")
    turn("December 12")
    done = turn("no dietary needs")
    assert done.reply.startswith("Thank you, that's everything")
    assert _stage(lead, deal_id) == "Qualified"
    with tenant_session(lead.scope) as session:
        assert session.scalar(select(func.count()).select_from(Opportunity).where(
            Opportunity.contact_id == lead.contact_id)) == 1  # moved, never a second deal
