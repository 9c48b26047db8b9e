"""Qualification answers found in free text, before or after the question is asked (agents/understanding/answers.py),
and the other parsers' cases added with them: a weekday followed by its date, cues that decide between actions,
sign-offs before contact details, a team member asked for by name, a shouted emergency."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from agents.local_model import _meant
from agents.understanding import answers, details, signals, when
from agents.understanding.intents import classify


@pytest.mark.parametrize(("text", "expected"), [
    ("looking to buy in mar vista, budget around 1.2M, already preapproved", Decimal(1_200_000)),
    ("tenemos unos 900 mil de presupuesto", Decimal(900_000)),
    ("$1.2 million", Decimal(1_200_000)),
    ("1,2 millones de euros", Decimal(1_200_000)),
    ("somewhere around 450k", Decimal(450_000)),
    ("$1,200,000 max", Decimal(1_200_000)),
    ("£180 is fine", Decimal(180)),
    ("3 bed house for 6 people", None),  # counts are no money
    ("budget 900,000", None),  # a bare number is not written as money
    ("between $800k and $1M", None),  # two sums: no single answer
])
def test_a_sum_is_money_only_when_written_as_money(text: str, expected: Decimal | None) -> None:
    assert answers.amount(text) == expected


@pytest.mark.parametrize(("text", "options", "expected"), [
    ("I'm thinking of selling my condo", ["buy", "sell", "rent"], ["sell"]),
    ("not buying, just selling", ["buy", "sell", "rent"], ["sell"]),
    ("Hola, buscamos casa para comprar", ["buy", "sell", "rent"], ["buy"]),
    ("we are renting the place", ["owner", "tenant", "property_manager"], ["tenant"]),
    ("we're the property managers", ["owner", "tenant", "property_manager"], ["property_manager"]),
    ("info on anti-wrinkle injections please", ["anti_wrinkle", "filler", "skin", "laser"], ["anti_wrinkle"]),
    ("it's a rehearsal dinner", ["birthday", "corporate", "rehearsal_dinner", "other"], ["rehearsal_dinner"]),
    ("no filler, rather laser", ["anti_wrinkle", "filler", "skin", "laser"], ["laser"]),
    ("quería hacerme una revisión", ["revision", "limpieza", "dolor"], ["revision"]),
    ("me duele una muela desde hace días", ["revision", "limpieza", "dolor"], ["dolor"]),  # a word family
    ("how long does it last?", ["anti_wrinkle", "filler", "skin", "laser"], []),  # "laser" is not "last"
    ("hello there", ["buy", "sell", "rent"], []),
])
def test_options_are_named_by_their_words_inflections_and_translations(text: str, options: list[str],
                                                                        expected: list[str]) -> None:
    assert answers.option_in(text, options) == expected


@pytest.mark.parametrize(("text", "question", "expected"), [
    ("already preapproved with chase", "Are you pre-approved for a mortgage?", True),
    ("todavía no tenemos preaprobación", "Are you pre-approved for a mortgage?", False),
    ("we're not pre-approved yet", "Are you pre-approved for a mortgage?", False),
    ("Hola, soy paciente vuestro desde hace años", "¿Ya eres paciente de la clínica?", True),
    ("it's my first time", "Is this your first time having this treatment?", True),
    ("hi, what are your hours?", "Are you pre-approved for a mortgage?", None),
])
def test_a_yes_no_question_is_answered_when_its_subject_is_mentioned(text: str, question: str,
                                                                     expected: bool | None) -> None:
    assert answers.yes_no(text, question) is expected


def test_a_free_text_question_takes_the_sentence_about_it() -> None:
    text = ("Hello, I'd like some information on anti-wrinkle injections. I've had them twice before. "
            "No medical conditions or medications. Kind regards, Helen")
    assert answers.sentence_on(text, "Any medical conditions or medications we should know about?") == \
        "No medical conditions or medications."
    assert answers.sentence_on(text, "When are you hoping to move?") is None


def test_yes_no_options_are_recognised_in_either_language() -> None:
    assert answers.is_yes_no(["yes", "no"]) and answers.is_yes_no(["si", "no"])
    assert not answers.is_yes_no(["buy", "sell"])
    assert answers.yes_no_option(["si", "no"], True) == "si"


@pytest.mark.parametrize(("text", "day", "at"), [
    ("perdón, mejor el martes 1 a la misma hora", date(2026, 12, 1), None),
    ("el martes 1 a las 5", date(2026, 12, 1), "17:00"),
    ("tuesday the 1st", date(2026, 12, 1), None),
    ("friday 4", date(2026, 11, 27), "16:00"),  # English "friday 4" is 4 PM on Friday
])
def test_a_weekday_followed_by_its_date_is_that_date(text: str, day: date, at: str | None) -> None:
    found = when.parse_when(text, datetime(2026, 11, 25, 10, tzinfo=ZoneInfo("Europe/Madrid")))
    assert found is not None and found.start_day == day
    assert (found.at.strftime("%H:%M") if found.at else None) == at


@pytest.mark.parametrize(("text", "timed", "intent"), [
    ("looking to buy in mar vista, budget around 1.2M", False, "enquiry"),  # "buy" a house is no purchase
    ("can I buy a gift card", False, "pay"),
    ("quiero comprar un bono de 5 sesiones", False, "pay"),
    ("no puedo ir el jueves ¿me la podéis pasar al viernes a las 10?", True, "reschedule"),
    ("can u move fridays job to monday, same time", True, "reschedule"),
    ("can u do monday 8am for a hot water quote", True, "book"),
    ("¿puedo ir el martes 8 de diciembre a las 10?", True, "book"),
    ("Hello, I'd like some information on anti-wrinkle injections.", False, "enquiry"),
    ("me interesa la ortodoncia invisible, cuánto cuesta más o menos?", False, "enquiry"),
    ("cancel my appointment, I can't make it", False, "cancel"),
    ("can we walk in without booking?", False, "question"),
])
def test_cues_decide_between_actions(text: str, timed: bool, intent: str) -> None:
    assert classify(text, timed=timed).name == intent


@pytest.mark.parametrize(("text", "meant"), [
    ("cancela la del lunes pero la del jueves la mantengo", "cancela la del lunes"),
    ("cancel mondays job but keep friday", "cancel mondays job"),
    ("cancel the monday one, friday is still on", "cancel the monday one"),
    ("cancel my appointment", "cancel my appointment"),
])
def test_the_clause_that_keeps_an_appointment_does_not_say_which_is_meant(text: str, meant: str) -> None:
    assert _meant(text) == meant


def test_a_sign_off_before_contact_details_is_the_name() -> None:
    found = details.contact_details("We're at 14 Campbell Pde. Cheers, Mark - 0412 555 019", region="AU")
    assert (found.first_name, found.phone) == ("Mark", "+61412555019")
    found = details.contact_details("Thanks, Priya (priya.n@acmecorp.example)", region="US")
    assert (found.first_name, found.email) == ("Priya", "priya.n@acmecorp.example")


def test_a_team_member_is_asked_for_by_name_in_any_case() -> None:
    assert signals.wants_human("can I speak to dave directly? he did our job last time", ("Dave", "Priya"))
    assert not signals.wants_human("can I speak to dave directly?", ())
    assert not signals.wants_human("dave fixed it last time, thanks", ("Dave",))


def test_a_shouted_call_for_help_is_urgent() -> None:
    assert signals.is_urgent("WATER IS POURING THROUGH MY CEILING HELP", "en")
    assert signals.is_urgent("my son is having an allergic reaction, his lips are swelling", "en")
    assert not signals.is_urgent("HELLO, WHAT TIME DO YOU OPEN TOMORROW", "en")
