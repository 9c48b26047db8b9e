"""The lead agent understands real leads, for businesses built in the test (a Spanish dental clinic, a Sydney
plumber): each understanding item through the real graph, tools and database, in English and Spanish."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from agents.lead.replies import say_time
from agents.lead.runner import TurnResult, lead_graph, run_turn
from evals.harness import clock
from evals.harness.fixtures import World, apply
from evals.harness.scenario import Scenario
from models.ai import AIConversationLog
from models.calendars import Appointment
from models.conversations import Conversation, Handoff, Message
from models.crm import Contact
from models.db import tenant_session
from tests.conftest import Demo

# every test builds a business (a new sub-account): on a private copy, so modules that count the demo's
# sub-accounts read it as seeded
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_app_database")]

CLINIC: dict[str, Any] = {
    "name": "Clínica Dental Prueba", "vertical": "dental clinic", "timezone": "Europe/Madrid", "currency": "EUR",
    "language": "es",
    "hours": {"mon": "09:00-20:00", "tue": "09:00-20:00", "wed": "09:00-20:00", "thu": "09:00-20:00",
              "fri": "09:00-15:00"},
    "calendars": [{"name": "Sillón 1", "slot_minutes": 30, "min_notice_minutes": 60, "window_days": 60,
                   "team": ["Dra. Ruiz"]}],
    "services": [{"name": "Limpieza dental", "duration_minutes": 30, "price": "60.00"},
                 {"name": "Revisión", "duration_minutes": 30, "price": "0.00"}],
    "knowledge": [{"question": "¿Tenéis aparcamiento?", "answer": "Sí, hay un parking público en la calle de al "
                                                                   "lado, con 1 hora gratis para pacientes."},
                  {"question": "Urgencias dentales",
                   "answer": "Para urgencias fuera de horario llama al 600 000 111."}],
    "closed_dates": ["2026-12-08"],
    "agent": {"name": "Lucía", "persona": "la recepcionista virtual de una clínica dental",
              "handoff_message": "Te paso con recepción.",
              "qualification_questions": [
                  {"key": "motivo", "question": "¿Cuál es el motivo de tu consulta?", "type": "select",
                   "options": ["revision", "limpieza", "dolor"]},
                  {"key": "seguro", "question": "¿Tienes seguro dental? ¿Cuál?", "type": "text"},
                  {"key": "es_paciente", "question": "¿Ya eres paciente de la clínica?", "type": "select",
                   "options": ["si", "no"]}],
              "pipeline": ["Nuevo", "Cualificado", "Cita"], "on_qualified": "Cualificado", "on_booked": "Cita"},
}
PLUMBER: dict[str, Any] = {
    "name": "Test Plumbing Co", "vertical": "home services", "timezone": "Australia/Sydney", "currency": "AUD",
    "hours": {"mon": "07:00-17:00", "tue": "07:00-17:00", "wed": "07:00-17:00", "thu": "07:00-17:00",
              "fri": "07:00-17:00", "sat": "08:00-12:00"},
    "calendars": [{"name": "Call-outs", "slot_minutes": 60, "min_notice_minutes": 120, "window_days": 30,
                   "team": ["Dave", "Priya"]}],
    "services": [{"name": "Standard call-out", "duration_minutes": 60, "price": "149.00"}],
    "knowledge": [{"question": "Do you charge a call-out fee?", "answer": "Our call-out fee is $149 including the "
                                                                          "first hour."}],
    "agent": {"name": "Max", "persona": "a friendly dispatcher for a plumbing company",
              "qualification_questions": [
                  {"key": "property_type", "question": "Is the property a house, unit or commercial?",
                   "type": "select", "options": ["house", "unit", "commercial"]},
                  {"key": "owner_status", "question": "Are you the owner or renting?", "type": "select",
                   "options": ["owner", "tenant"]}],
              "pipeline": ["New Lead", "Quoted", "Booked"], "on_qualified": "Quoted"},
}


@dataclass
class Chat:
    world: World
    now: datetime

    def says(self, text: str) -> TurnResult:
        with tenant_session(self.world.scope) as session:
            conversation = session.get(Conversation, self.world.conversation_id)
            assert conversation is not None
            message = Message(sub_account_id=self.world.sub_account_id, conversation_id=conversation.id,
                              channel_id=conversation.channel_id, contact_id=self.world.contact_id,
                              direction="inbound", sender_type="contact", body=text, status="received")
            session.add(message)
            session.flush()
            message_id = message.id
        self.now += timedelta(minutes=1)
        with clock.frozen(self.now):
            return run_turn(agency_id=self.world.agency_id, sub_account_id=self.world.sub_account_id,
                            conversation_id=self.world.conversation_id, message_id=message_id, now=self.now)

    def contact(self) -> Contact:
        with tenant_session(self.world.scope) as session:
            contact = session.get(Contact, self.world.contact_id)
            assert contact is not None
            session.expunge(contact)
            return contact

    def appointments(self) -> list[Appointment]:
        with tenant_session(self.world.scope) as session:
            rows = list(session.scalars(select(Appointment).where(
                Appointment.contact_id == self.world.contact_id, Appointment.status == "scheduled")
                .order_by(Appointment.start_time)))
            session.expunge_all()
            return rows

    def handoffs(self) -> list[str]:
        with tenant_session(self.world.scope) as session:
            return list(session.scalars(select(Handoff.reason).where(
                Handoff.conversation_id == self.world.conversation_id)))

    def frame(self) -> dict[str, Any]:
        state = lead_graph().get_state({"configurable": {"thread_id": str(self.world.conversation_id)}})
        return dict(state.values.get("frame") or {})

    def local(self, value: datetime) -> datetime:
        return value.astimezone(ZoneInfo(self.world.timezone))


def _chat(business: dict[str, Any], at: str, channel: str = "sms", lead: dict[str, Any] | None = None,
          appointments: list[dict[str, Any]] | None = None) -> Iterator[Chat]:
    scenario = Scenario.model_validate({
        "id": f"test-{uuid.uuid4().hex[:8]}", "capability": "book", "channel": channel,
        "initial_state": {"clock": at, "business": business, "lead": lead or {},
                          "appointments": appointments or []},
        "user": {"goal": "(driven by the test)", "turns": ["unused"]}, "expected": {}})
    now = datetime.fromisoformat(at)
    with clock.frozen(now):
        world = apply(scenario)
    yield Chat(world, now)


@pytest.fixture
def clinic(demo: Demo) -> Iterator[Chat]:
    yield from _chat(CLINIC, "2026-11-25T10:00:00+01:00")


@pytest.fixture
def plumber(demo: Demo) -> Iterator[Chat]:
    yield from _chat(PLUMBER, "2026-11-25T09:00:00+11:00")


def test_a_spanish_booking_is_understood_and_answered_in_spanish(clinic: Chat) -> None:
    result = clinic.says("hola, quería pedir cita para una limpieza el viernes a las 10 de la mañana")
    booked = clinic.appointments()
    assert [clinic.local(a.start_time).strftime("%a %H:%M") for a in booked] == ["Fri 10:00"], result.reply
    assert "viernes" in result.reply and "10:00" in result.reply and "confirmada" in result.reply


def test_an_evening_window_offers_only_evening_times_nearest_first(plumber: Chat) -> None:
    result = plumber.says("need someone to look at a leaking tap, friday after lunch if possible")
    assert "Fri Nov 27 at 1 PM" in result.reply and "at 7 AM" not in result.reply, result.reply
    picked = plumber.says("1pm works")
    assert [plumber.local(a.start_time).strftime("%a %H:%M") for a in plumber.appointments()] == ["Fri 13:00"], \
        picked.reply


def test_a_party_size_beside_a_weekday_is_a_count_not_a_date(clinic: Chat) -> None:
    clinic.says("somos 3 de familia, ¿podemos ir el jueves por la tarde a una revisión?")
    frame = clinic.frame()
    assert frame["attendees"] == 3
    assert frame["when"]["start_day"] == "2026-11-26" and frame["when"]["after"]


def test_contact_details_in_a_sentence_are_saved_and_replace_a_webchat_placeholder(demo: Demo) -> None:
    chat = next(_chat(PLUMBER, "2026-11-25T09:00:00+11:00", channel="webchat",
                      lead={"first_name": "Visitor", "email": None, "phone": None}))
    chat.says("hi it's Jo Bloggs, my email is jo.bloggs3@example.com and mobile 0412 345 678, can someone come "
              "tomorrow?")
    contact = chat.contact()
    assert (contact.first_name, contact.last_name) == ("Jo", "Bloggs")
    assert contact.email == "jo.bloggs3@example.com" and contact.phone == "+61412345678"
    assert chat.frame().get("attendees") is None  # the 3 in the address is not a count


def test_a_correction_replaces_the_day_and_the_second_offer_is_booked(plumber: Chat) -> None:
    plumber.says("can I get someone out thursday morning?")
    offer = plumber.says("sorry, I meant tuesday morning")
    assert "Tue Dec 1" in offer.reply and "Thu Nov 26" not in offer.reply, offer.reply
    times = re.findall(r"(\w{3} \w{3} \d{1,2} at [\d:]+ [AP]M)", offer.reply)
    assert len(times) >= 2, offer.reply
    plumber.says("the second one")
    booked = plumber.appointments()
    assert [say_time(a.start_time, plumber.world.timezone, "en") for a in booked] == [times[1]]
    assert plumber.frame().get("task") is None  # done: the frame is cleared


def test_a_complaint_gets_an_apology_and_a_sentiment_handoff(clinic: Chat) -> None:
    result = clinic.says("es una vergüenza, me hicisteis un empaste la semana pasada y se me ha caído, fatal")
    assert clinic.handoffs() == ["negative_sentiment"]
    assert "Lamento" in result.reply


def test_are_you_a_bot_is_answered_honestly_without_a_handoff(clinic: Chat, plumber: Chat) -> None:
    spanish = clinic.says("oye, ¿eres una persona o un bot?")
    english = plumber.says("wait am I talking to a real person or a bot?")
    assert "asistente virtual" in spanish.reply and "virtual assistant" in english.reply
    assert clinic.handoffs() == [] and plumber.handoffs() == []


def test_a_natural_language_opt_out_is_honoured_and_nothing_follows(plumber: Chat) -> None:
    result = plumber.says("please stop texting me, not interested")
    assert result.decision == "opted_out"
    assert plumber.contact().dnd_channels.get("sms")
    later = plumber.says("what are your hours?")
    assert later.reply == "" or later.decision in ("skipped", "opted_out")


def test_a_spanish_opt_out_is_confirmed_in_spanish(clinic: Chat) -> None:
    result = clinic.says("dejad de mandarme mensajes, gracias")
    assert result.decision == "opted_out" and "baja" in result.reply


def test_with_two_appointments_cancel_asks_which_and_cancels_the_one_named(demo: Demo) -> None:
    chat = next(_chat(CLINIC, "2026-11-25T10:00:00+01:00", appointments=[
        {"start": "2026-11-26 17:00"}, {"start": "2026-11-30 10:00"}]))
    ask = chat.says("quiero anular mi cita")
    assert len(chat.appointments()) == 2 and "?" in ask.reply, ask.reply
    chat.says("la del lunes")
    left = chat.appointments()
    assert [chat.local(a.start_time).strftime("%a %H:%M") for a in left] == ["Thu 17:00"]


def test_a_question_and_a_booking_in_one_message_are_both_answered(clinic: Chat) -> None:
    result = clinic.says("¿tenéis aparcamiento? y si puede ser, cita para una revisión el lunes a las 17:00")
    assert "parking" in result.reply.lower()
    assert [clinic.local(a.start_time).strftime("%a %H:%M") for a in clinic.appointments()] == ["Mon 17:00"]


def test_an_emergency_gets_the_urgent_advice_and_a_handoff(clinic: Chat) -> None:
    result = clinic.says("me duele muchísimo una muela y tengo la cara hinchada, qué hago??")
    assert "600 000 111" in result.reply and clinic.handoffs() == ["urgent"]


def test_a_quote_request_is_qualified_from_what_the_lead_already_said(plumber: Chat) -> None:
    first = plumber.says("looking for a quote on re-piping, it's a house and we own it")
    contact = plumber.contact()
    assert contact.custom_fields.get("property_type") == "house"
    assert contact.custom_fields.get("owner_status") == "owner"
    assert "quote" in first.reply.lower() or "team" in first.reply.lower(), first.reply


def test_the_frame_is_in_the_conversations_log(plumber: Chat) -> None:
    plumber.says("can someone come out friday at 10?")
    with tenant_session(plumber.world.scope) as session:
        logs = list(session.scalars(select(AIConversationLog.context).where(
            AIConversationLog.conversation_id == plumber.world.conversation_id)))
    assert any((c.get("frame") or {}).get("task") == "book" for c in logs)
    assert any((c.get("understood") or {}).get("when") for c in logs)


def test_spanish_answers_written_unasked_are_saved_and_only_the_rest_is_asked(clinic: Chat) -> None:
    first = clinic.says("Hola, soy paciente vuestro desde hace años y quería hacerme una revisión. Un saludo, Jorge")
    contact = clinic.contact()
    assert (contact.custom_fields.get("motivo"), contact.custom_fields.get("es_paciente")) == ("revision", "si")
    assert contact.first_name == "Jorge"
    assert "seguro" in first.reply.lower(), first.reply  # the one question not answered yet
    clinic.says("Sanitas")
    assert clinic.contact().custom_fields.get("seguro") == "Sanitas"


def test_a_budget_and_a_yes_no_answer_in_free_text_are_typed_and_a_question_is_asked_once(demo: Demo) -> None:
    realtor = {**PLUMBER, "name": "Test Realty", "timezone": "America/Los_Angeles", "currency": "USD",
               "agent": {"name": "Ava", "qualification_questions": [
                   {"key": "intent", "question": "Are you looking to buy, sell or rent?", "type": "select",
                    "options": ["buy", "sell", "rent"]},
                   {"key": "budget", "question": "What budget range are you working with?", "type": "money"},
                   {"key": "pre_approved", "question": "Are you pre-approved for a mortgage?", "type": "select",
                    "options": ["yes", "no"]},
                   {"key": "timeline", "question": "When are you hoping to move?", "type": "text"}],
                   "pipeline": ["New Lead", "Qualified", "Booked"], "on_qualified": "Qualified"}}
    chat = next(_chat(realtor, "2026-11-25T10:00:00-08:00"))
    first = chat.says("looking to buy in mar vista, budget around 1.2M, already preapproved with chase")
    fields = chat.contact().custom_fields
    assert (fields.get("intent"), fields.get("budget"), fields.get("pre_approved")) == ("buy", "1200000.00", "yes")
    assert "move" in first.reply.lower() and chat.appointments() == [], first.reply  # no time was read from 1.2M
    second = chat.says("not sure honestly")  # any answer to a free-text question is taken, and nothing is re-asked
    assert chat.contact().custom_fields.get("timeline") == "not sure honestly"
    assert "?" not in second.reply, second.reply


def test_move_one_day_to_another_moves_it_to_the_second(demo: Demo) -> None:
    chat = next(_chat(PLUMBER, "2026-11-25T09:00:00+11:00", appointments=[{"start": "2026-11-27 10:00"}]))
    confirm = chat.says("can u move fridays job to monday, same time")
    assert "Mon Nov 30 at 10 AM" in confirm.reply, confirm.reply  # "same time" is read, and confirmed first
    result = chat.says("yes")
    assert [chat.local(a.start_time).strftime("%a %d %H:%M") for a in chat.appointments()] == ["Mon 30 10:00"], \
        result.reply


def test_a_team_member_asked_for_by_name_gets_a_person(plumber: Chat) -> None:
    plumber.says("can I speak to dave directly? he did our job last time")
    assert plumber.handoffs() == ["human_requested"]


def test_a_holiday_asked_for_is_said_closed_in_the_leads_language(clinic: Chat) -> None:
    result = clinic.says("¿puedo ir el martes 8 de diciembre a las 10?")
    assert "cerrad" in result.reply.lower() and clinic.appointments() == [], result.reply


def test_a_time_on_the_leads_stated_clock_is_booked_at_that_moment_and_said_on_it(plumber: Chat) -> None:
    result = plumber.says("I'm in Perth, can someone call friday at 10am my time?")
    booked = plumber.appointments()
    assert [plumber.local(a.start_time).strftime("%a %H:%M") for a in booked] == ["Fri 13:00"], result.reply
    assert "10 AM" in result.reply and "Perth" in result.reply, result.reply
