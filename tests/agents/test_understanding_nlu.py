"""The lead agent's pure parsers on messages as leads write them: English and Spanish, lower case, typos, emoji."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agents.understanding.choice import affirms, choose, denies
from agents.understanding.details import ContactDetails, contact_details, quantity
from agents.understanding.language import detect
from agents.understanding.signals import (
    asks_if_bot,
    is_complaint,
    is_urgent,
    opts_in,
    opts_out,
    sentiment,
    wants_human,
)

# ---------------------------------------------------------------- details


@pytest.mark.parametrize("text, first, last", [
    ("my name is jo smith", "Jo", "Smith"),
    ("Hi, I'm Jo, do you have anything friday?", "Jo", None),
    ("hey im Sam Lee and I need a quote", "Sam", "Lee"),
    ("I am Maria Lopez and i need help", "Maria", "Lopez"),
    ("hi this is Jo from Acme Corp", "Jo", None),
    ("Hi, it's Priya here, running 5 min late", "Priya", None),
    ("Jo here - is 4 still ok?", "Jo", None),
    ("me llamo ana garcía lópez y quería una cita", "Ana", "García López"),
    ("Hola, soy Ana. Tienen hueco el lunes?", "Ana", None),
    ("mi nombre es Luis Pérez", "Luis", "Pérez"),
    ("see you friday!\nThanks, Jo", "Jo", None),
    ("ok that works for us - Dave", "Dave", None),
    ("Perfecto, nos vemos.\nSaludos, Carmen", "Carmen", None),
    ("MY NAME IS TOM O'BRIEN", "Tom", "O'Brien"),
])
def test_a_self_introduction_gives_the_name(text: str, first: str, last: str | None) -> None:
    details = contact_details(text)
    assert (details.first_name, details.last_name) == (first, last)


@pytest.mark.parametrize("text", [
    "I'm looking for a quote", "I'm in Chicago this week", "I'm free friday after 3", "I'm not sure yet",
    "im Having trouble booking", "It's Broken again", "Anyone here?", "soy alérgica a la penicilina",
    "soy de Madrid", "This is Urgent", "I'm Available monday", "thanks so much", "thanks!", "- Friday works",
    "I'm Interested in a consultation", "write to jo.smith@example.com",
])
def test_no_name_without_an_introduction(text: str) -> None:
    details = contact_details(text)
    assert (details.first_name, details.last_name) == (None, None)


@pytest.mark.parametrize("text, email, phone", [
    ("reach me at Jo.Smith@Gmail.COM or 415-555-2671", "Jo.Smith@gmail.com", "+14155552671"),
    ("my number is (312) 555 0199", None, "+13125550199"),
    ("mi móvil +34 612 345 678, gracias", None, "+34612345678"),
    ("email: ana_garcia+citas@correo.es.", "ana_garcia+citas@correo.es", None),
    ("call me 555-0000 or email me at not-an-email@", None, None),
    ("party of 6 on 12/4 at 7", None, None),
])
def test_email_and_phone(text: str, email: str | None, phone: str | None) -> None:
    details = contact_details(text)
    assert (details.email, details.phone) == (email, phone)


def test_details_any() -> None:
    assert not contact_details("do you open on sundays?").any()
    assert contact_details("it's 415 555 2671").any()
    assert ContactDetails(first_name=None, last_name="Smith", email=None, phone=None).any()


def test_a_phone_without_a_country_code_is_read_in_the_region() -> None:
    assert contact_details("llámame al 612 345 678", region="ES").phone == "+34612345678"
    assert contact_details("llámame al 612 345 678").phone is None


@pytest.mark.parametrize("text, expected", [
    ("for 6", 6), ("can we get something for six people friday", 6), ("party of 6", 6), ("6 people at 8pm", 6),
    ("6 of us", 6), ("there are 4 of us", 4), ("we're 5", 5), ("we are 3, is that ok?", 3),
    ("a group of 12 from work", 12), ("2 adults and 2 kids", 4), ("3 adults + 1 child", 4),
    ("para 4", 4), ("somos 5", 5), ("4 personas el sabado", 4), ("mesa para dos", 2), ("seremos 8", 8),
    ("dinner for 6 at 7", 6), ("table for one please", 1), ("for 2 on saturday", 2), ("somos cinco y un bebé", 5),
    ("2 adultos y 3 niños", 5), ("need 3 tickets", 3), ("vamos a ser doce", 12), ("for twenty", 20),
])
def test_quantity_from_explicit_patterns(text: str, expected: int) -> None:
    assert quantity(text) == expected


@pytest.mark.parametrize("text", [
    "the 12th works", "Dec 4 please", "at 6", "6pm", "for 6pm", "for 7:30", "book me for 7.30 tmrw",
    "jo3@x.com", "call 415 555 2671", "my number is 612345678", "is it $50 per hour?", "for $50",
    "it's 30 euros", "I live at 12 Oak St", "for 2 hours", "for 3 nights", "we're 5 minutes away",
    "para las 8", "para el 12", "para 2 horas", "quiero hablar con una persona", "the 4th of july",
    "for the 2nd", "12/4 at 6", "open for 20 years", "we need it for 2 weeks",
])
def test_no_quantity_from_dates_times_money_or_durations(text: str) -> None:
    assert quantity(text) is None


# ---------------------------------------------------------------- signals


@pytest.mark.parametrize("text", [
    "STOP", "stop.", "Stop!!", "unsubscribe", "UNSUBSCRIBE me", "stop texting me", "pls stop sending me messages",
    "please don't message me again", "do not contact me", "remove me from your list",
    "take me off your mailing list", "no more texts pls", "leave me alone", "I don't want any more messages",
    "wrong number, stop", "opt out", "Cancel",
    "no me escriban más", "dejad de mandarme mensajes", "dejen de enviarme mensajes", "baja", "BAJA",
    "quiero darme de baja", "darme de baja porfa", "no quiero recibir más mensajes", "sáquenme de su lista",
    "déjenme en paz",
])
def test_opts_out(text: str) -> None:
    assert opts_out(text)
    assert not opts_in(text)


@pytest.mark.parametrize("text", [
    "stop by tomorrow?", "can I stop my subscription?", "don't cancel my appointment", "no, the other time",
    "can you stop by at 5", "don't call me, text me instead", "estoy de baja por maternidad",
    "the noise won't stop", "para el viernes", "no más de 20 minutos por favor", "i want to cancel my booking",
])
def test_not_an_opt_out(text: str) -> None:
    assert not opts_out(text)


@pytest.mark.parametrize("text, expected", [
    ("START", True), ("start", True), ("resubscribe", True), ("alta", True), ("quiero volver a recibir mensajes", True),
    ("you can text me again", True), ("start the job monday?", False), ("ok", False), ("stop", False),
])
def test_opts_in(text: str, expected: bool) -> None:
    assert opts_in(text) is expected


@pytest.mark.parametrize("text, language, sign", [
    ("thank you so much, great service!", "en", 1), ("this is awful", "en", -1),
    ("gracias, todo genial", "es", 1), ("servicio pésimo", "es", -1), ("muy buen servicio, gracias", "es", 1),
    ("estoy decepcionada", "es", -1), ("no es bueno", "es", -1), ("nunca más vuelvo", "es", -1),
])
def test_sentiment(text: str, language: str, sign: int) -> None:
    score = sentiment(text, language)
    assert -1 <= score <= 1
    assert score * sign > 0.2


@pytest.mark.parametrize("text, language", [
    ("worst service ever, you never showed up", "en"), ("I want to complain", "en"), ("I want a refund", "en"),
    ("this is terrible service", "en"), ("I am very angry with you", "en"),
    ("ur technician was rude and left a mess, unacceptable", "en"), ("you guys are a total scam", "en"),
    ("quiero poner una queja", "es"), ("servicio pésimo, nunca más", "es"),
    ("es una vergüenza, estoy indignada", "es"), ("no vinieron y nadie contestó, fatal", "es"),
    ("quiero un reembolso", "es"), ("dónde está la hoja de reclamaciones", "es"),
    ("estoy muy enfadado con ustedes, horrible", "es"),
])
def test_complaints(text: str, language: str) -> None:
    assert is_complaint(text, language)


@pytest.mark.parametrize("text, language", [
    ("my tap is broken and I'm stressed", "en"), ("I'm so worried about my tooth, it hurts", "en"),
    ("my dog died last week, very sad", "en"), ("the service was not bad at all", "en"),
    ("can you help? I'm scared it gets worse", "en"),
    ("estoy muy preocupada, me duele la muela", "es"), ("gracias, todo genial", "es"),
    ("tengo miedo, se me ha roto el grifo", "es"), ("qué pena que no pueda ir el lunes", "es"),
])
def test_not_complaints(text: str, language: str) -> None:
    assert not is_complaint(text, language)


@pytest.mark.parametrize("text", [
    "are you a bot?", "r u human", "is this a real person?", "am I talking to AI?", "are u real lol",
    "is this automated", "human or bot?", "¿eres una persona o un bot?", "¿hablo con una máquina?",
    "eres un robot?", "estoy hablando con un bot?",
])
def test_asks_if_bot(text: str) -> None:
    assert asks_if_bot(text)
    assert not wants_human(text)


@pytest.mark.parametrize("text", [
    "can I talk to a person", "I want a real person", "get me a manager", "let me speak to someone",
    "is there a real person I can talk to?", "human please", "pásame con alguien", "quiero hablar con una persona",
    "con recepción por favor", "necesito hablar con el encargado",
])
def test_wants_human(text: str) -> None:
    assert wants_human(text)
    assert not asks_if_bot(text)


@pytest.mark.parametrize("text", [
    "are you open sunday?", "is this the right number for bookings?", "can I talk to you about prices",
    "¿es usted abierto los domingos?", "I want a quote", "person of interest lol",
])
def test_neither_bot_question_nor_handoff(text: str) -> None:
    assert not asks_if_bot(text)
    assert not wants_human(text)


@pytest.mark.parametrize("text, language", [
    ("EMERGENCY my basement is flooding", "en"), ("need someone asap", "en"), ("urgent!!", "en"),
    ("can you come right now", "en"), ("its bleeding and wont stop", "en"), ("my kid can't breathe well", "en"),
    ("severe pain since last night", "en"), ("my face is swollen", "en"), ("I smell gas in the kitchen", "en"),
    ("es una urgencia", "es"), ("urgente por favor", "es"), ("me duele muchísimo", "es"),
    ("tengo la cara hinchada", "es"), ("me sangra la encía", "es"), ("hay una inundación en el baño", "es"),
    ("lo necesito cuanto antes", "es"), ("necesito ayuda asap", "es"),
])
def test_urgent(text: str, language: str) -> None:
    assert is_urgent(text, language)


@pytest.mark.parametrize("text, language", [
    ("not urgent, whenever works", "en"), ("I'm at work right now, text me later", "en"),
    ("no rush, next week is fine", "en"), ("do you have anything friday?", "en"), ("no es urgente", "es"),
    ("cuando puedan, sin prisa", "es"), ("me duele un poco", "es"), ("ahora mismo estoy ocupada", "es"),
])
def test_not_urgent(text: str, language: str) -> None:
    assert not is_urgent(text, language)


def test_a_business_adds_its_own_urgent_terms() -> None:
    assert not is_urgent("we have no hot water", "en")
    assert is_urgent("we have no hot water", "en", extra=("no hot water",))
    assert is_urgent("Se me cayó la corona", "es", extra=("se me cayó la corona",))


# ---------------------------------------------------------------- choice


@pytest.mark.parametrize("text", [
    "yes", "Yes!", "yep", "yeah", "sure", "ok", "okay!!", "k", "sounds good", "perfect, thanks", "great",
    "book it", "that works", "do it", "go ahead", "confirm", "👍", "sí", "si porfa", "vale", "dale",
    "perfecto", "de acuerdo", "me va bien", "reserva", "confirmo", "genial", "yes please", "no problem, book it",
    "Sounds good 👍", "sí, perfecto",
])
def test_affirms(text: str) -> None:
    assert affirms(text)
    assert not denies(text)


@pytest.mark.parametrize("text", [
    "yes but can we do 5 instead", "ok but what about saturday", "sí pero mejor a las 5", "yes, actually no",
    "ok what time?", "no", "maybe", "I'm not sure", "what's the address", "vale, aunque prefiero el lunes",
])
def test_not_a_plain_yes(text: str) -> None:
    assert not affirms(text)


@pytest.mark.parametrize("text", [
    "no", "nope", "nah", "not that", "neither", "none of those", "different time please", "no thanks",
    "mejor no", "ninguna", "no me va bien", "otro día?", "none of those work for me", "no, the other time",
    "that doesn't work", "can't make it",
])
def test_denies(text: str) -> None:
    assert denies(text)
    assert not affirms(text)


TZ = ZoneInfo("America/Chicago")
# Thursday 10:30, Friday 16:00, Saturday 11:00
OFFERED = [datetime(2026, 3, 12, 10, 30, tzinfo=TZ), datetime(2026, 3, 13, 16, 0, tzinfo=TZ),
           datetime(2026, 3, 14, 11, 0, tzinfo=TZ)]


@pytest.mark.parametrize("text, index", [
    ("the second one", 1), ("2nd", 1), ("the last one", 2), ("the first", 0), ("la segunda", 1),
    ("la última", 2), ("la primera porfa", 0), ("option 3", 2), ("4 works", 1), ("10:30 please", 0),
    ("the 4pm", 1), ("a las 11", 2), ("la de las 4", 1), ("friday's fine", 1), ("sat pls", 2),
    ("i can do 11am", 2), ("the 13th", 1), ("el día 14", 2), ("saturday morning", 2),
    ("thursday", 0), ("not thursday, the friday one", 1), ("no el jueves, el viernes", 1),
    ("no, the second one", 1), ("a las 4 de la tarde", 1), ("16h", 1), ("10.30 is good", 0),
    ("the 11 oclock one", 2), ("Friday at 4 👍", 1), ("el viernes", 1),
])
def test_choose_the_offered_slot(text: str, index: int) -> None:
    assert choose(text, OFFERED) == index


@pytest.mark.parametrize("text", [
    "yes", "sí", "book it", "the 3pm", "5pm", "4 or 11", "Dec 12 works", "a las 4 de la mañana", "2",
    "the 14th at 4", "the fifth one", "sunday?", "what else do you have", "no", "monday or friday",
])
def test_choose_is_none_when_ambiguous_or_not_offered(text: str) -> None:
    assert choose(text, OFFERED) is None


def test_a_yes_picks_the_only_offered_slot() -> None:
    only = OFFERED[1:2]
    assert choose("yes", only) == 0
    assert choose("sí, perfecto", only) == 0
    assert choose("book it", only) == 0
    assert choose("yes but 5 instead", only) is None
    assert choose("nope", only) is None
    assert choose("yes", []) is None


def test_two_slots_on_one_day_need_a_time() -> None:
    friday = [datetime(2026, 3, 13, 9, 0, tzinfo=TZ), datetime(2026, 3, 13, 14, 30, tzinfo=TZ)]
    assert choose("friday's fine", friday) is None
    assert choose("the afternoon one", friday) == 1
    assert choose("the 2:30", friday) == 1
    assert choose("2 works", friday) == 1  # 2 means 2:30 when only 2:30 is on offer that hour
    assert choose("9 is good", friday) == 0
    assert choose("the second friday one", friday) == 1


# ---------------------------------------------------------------- language


@pytest.mark.parametrize("text, previous, expected", [
    ("hola, necesito un fontanero el viernes", None, "es"), ("hi, do you have anything friday", "es", "en"),
    ("gracias!", None, "es"), ("ok thanks", "es", "en"), ("ok", "es", "es"), ("sí", None, "en"), ("sí", "es", "es"),
    ("10am", "es", "es"), ("👍", "es", "es"), ("Jo Smith", "es", "es"), ("Ana García", "en", "en"),
    ("jo@x.com", "es", "es"), ("me duele la muela", None, "es"), ("tienen algo el sabado?", None, "es"),
    ("¿a qué hora abren?", None, "es"), ("do u have smth sat", "es", "en"), ("the second one", "es", "en"),
    ("a las 5 porfa", None, "es"), ("sounds good", "es", "en"), ("mi casa se está inundando", None, "es"),
    ("el viernes a las 5", "en", "es"), ("no puedo el lunes", "en", "es"), ("what about sat", "es", "en"),
    ("merci beaucoup", None, "fr"), ("obrigado pela ajuda", None, "pt"), ("yes", "es", "es"), ("no", "es", "es"),
    ("buenos dias", "en", "es"), ("good morning", "es", "en"), ("lol ok", "es", "es"),
])
def test_detect(text: str, previous: str | None, expected: str) -> None:
    assert detect(text, previous=previous) == expected


def test_detect_only_answers_supported_languages() -> None:
    assert detect("merci beaucoup", previous="en", supported=("en", "es")) in ("en", "es")
