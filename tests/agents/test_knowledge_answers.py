"""Answers from the knowledge base for businesses built in the test: every question of a message is looked up
(joined by "and"/"y", a burst of texts, a question beside a task), text-speak is read, a rare name picks its
entry, and a money question about something no entry covers is not answered from a neighbouring entry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.local_model import _grounded, _pick
from agents.understanding.intents import segments
from tests.agents.test_understanding_graph import Chat, _chat
from tests.conftest import Demo

DENTIST: dict[str, Any] = {
    "name": "Clínica Prueba Norte", "vertical": "dental clinic", "timezone": "Europe/Madrid", "currency": "EUR",
    "language": "es",
    "hours": {"mon": "09:00-20:00", "tue": "09:00-20:00", "wed": "09:00-20:00", "thu": "09:00-20:00"},
    "calendars": [{"name": "Sillón", "slot_minutes": 30, "min_notice_minutes": 60, "window_days": 60}],
    "services": [{"name": "Blanqueamiento", "duration_minutes": 60, "price": "250.00"}],
    "knowledge": [
        {"question": "¿Cuánto cuesta el blanqueamiento?", "answer": "El blanqueamiento cuesta 250 €."},
        {"question": "¿Se puede financiar?", "answer": "Sí, financiamos tratamientos de más de 500 € en 10 meses."},
        {"question": "¿Trabajáis con seguros?", "answer": "Trabajamos con Sanitas. Con Mapfre u otras, como "
                                                           "paciente privado con factura para el reembolso."},
        {"question": "¿Qué hago si tengo una urgencia?", "answer": "Llama al 910 000 222."},
        {"question": "¿Habláis inglés?", "answer": "Sí, la Dra. Gómez atiende en inglés."}],
    "agent": {"name": "Marta", "persona": "la recepcionista virtual de una clínica dental"},
}
BISTRO: dict[str, Any] = {
    "name": "Test Bistro", "vertical": "restaurant", "timezone": "America/Chicago", "currency": "USD",
    "hours": {"tue": "11:00-22:00", "wed": "11:00-22:00", "thu": "11:00-22:00", "fri": "11:00-23:00"},
    "calendars": [{"name": "Tables", "slot_minutes": 30, "min_notice_minutes": 60, "window_days": 30}],
    "services": [{"name": "Table", "duration_minutes": 90, "price": "0.00"}],
    "knowledge": [
        {"question": "When is happy hour?", "answer": "Happy hour is Tuesday to Friday 4-6 PM with $5 spritzes."},
        {"question": "What are your opening hours?", "answer": "Tuesday to Friday from 11 AM."},
        {"question": "Do you have gluten free options?", "answer": "Yes, gluten-free dishes are marked on the menu."},
        {"question": "Is there parking?", "answer": "Free street parking after 6 PM and a lot on Elm St."},
        {"question": "Tell me about the loft space", "answer": "The loft seats 24 and costs $300 to hire."}],
    "agent": {"name": "Rosa", "persona": "a friendly host at a neighbourhood bistro"},
}


@pytest.fixture
def dentist(demo: Demo) -> Iterator[Chat]:
    yield from _chat(DENTIST, "2026-11-25T10:00:00+01:00")


@pytest.fixture
def bistro(demo: Demo) -> Iterator[Chat]:
    yield from _chat(BISTRO, "2026-11-25T11:00:00-06:00", channel="webchat")


@pytest.mark.parametrize(("text", "parts"), [
    ("how much is the call out fee and do u charge more on weekends",
     ["how much is the call out fee", "do u charge more on weekends"]),
    ("cuánto cuesta?? y se puede financiar", ["cuánto cuesta??", "se puede financiar?"]),
    ("hi!\ndo u have gluten free options\nalso is there parking", ["hi!", "do u have gluten free options",
                                                                   "is there parking"]),
    ("cancel tmrw's appt, will i lose my deposit?", ["cancel tmrw's appt", "will i lose my deposit?"]),
    ("Hi, what's the HOA on the condo and does the building allow pets?",
     ["Hi, what's the HOA on the condo and does the building allow pets?"]),
    ("can someone come and look at it", ["can someone come and look at it"]),
])
def test_a_message_splits_into_its_questions(text: str, parts: list[str]) -> None:
    assert segments(text) == parts


def test_the_passage_that_shares_the_questions_words_is_picked() -> None:
    hits = [{"text": "¿Habláis inglés?\nSí."}, {"text": "¿Seguros?\nCon Mapfre, como paciente privado."}]
    assert _pick("tengo mapfre, me lo cubre?", hits) == hits[1]
    assert _pick("¿habláis inglés?", hits) == hits[0]
    dog = [{"text": "Can I bring my dog?\nDogs are welcome on the patio."}]
    assert _pick("could you do a whole roast pig for a backyard party?", dog) is None  # about something else


def test_a_money_question_about_what_the_passage_does_not_cover_is_not_grounded() -> None:
    listing = "Tell me about the loft space\nThe loft seats 24 and costs $300 to hire."
    assert _grounded("how much is the loft to hire?", listing)
    assert not _grounded("what were the property taxes on the loft last year?", listing)


@pytest.mark.integration
@pytest.mark.usefixtures("private_app_database")
def test_both_questions_joined_by_y_are_answered(dentist: Chat) -> None:
    reply = dentist.says("cuánto cuesta un blanqueamiento?? y se puede financiar").reply
    assert "250" in reply and "10 meses" in reply


@pytest.mark.integration
@pytest.mark.usefixtures("private_app_database")
def test_an_insurer_named_in_one_entry_gets_that_entry(dentist: Chat) -> None:
    reply = dentist.says("tengo mapfre, me lo cubre?").reply
    assert "reembolso" in reply and "inglés" not in reply


@pytest.mark.integration
@pytest.mark.usefixtures("private_app_database")
def test_a_burst_gets_every_question_answered_and_text_speak_is_read(bistro: Chat) -> None:
    reply = bistro.says("hi!\ndo u guys have gluten free options\nalso is there parking").reply
    assert "gluten-free" in reply and "street parking" in reply
    assert "4-6 PM" in bistro.says("whats ur happy hr?? 🍹").reply
    assert not bistro.handoffs()


@pytest.mark.integration
@pytest.mark.usefixtures("private_app_database")
def test_taxes_are_not_answered_with_the_listing_price(bistro: Chat) -> None:
    result = bistro.says("what were the property taxes on the loft last year?")
    assert "$300" not in result.reply
    assert bistro.handoffs() == ["lack_of_information"]


@pytest.mark.integration
@pytest.mark.usefixtures("private_app_database")
def test_a_cost_asked_after_a_question_is_judged_with_that_question(bistro: Chat) -> None:
    """"What would that cost?" asks the price of what came before: the loft's hire fee is no answer for a pig."""
    result = bistro.says("could you do a whole roast pig for a backyard party? what would that cost?")
    assert "$300" not in result.reply
    assert bistro.handoffs() == ["lack_of_information"]
