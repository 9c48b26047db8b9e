"""`parse_when` reads what a receptionist would from a lead's message, in English and Spanish, relative to a
fixed `now` in several zones (pure unit tests: no database)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agents.understanding.when import When, parse_when

SYDNEY, MADRID, CHICAGO, NEW_YORK = (ZoneInfo(z) for z in ("Australia/Sydney", "Europe/Madrid", "America/Chicago",
                                                         "America/New_York"))
NOW = {
    "syd": datetime(2026, 11, 25, 9, 0, tzinfo=SYDNEY),  # Wednesday
    "mad": datetime(2026, 11, 25, 10, 0, tzinfo=MADRID),  # Wednesday
    "chi": datetime(2026, 12, 2, 15, 0, tzinfo=CHICAGO),  # Wednesday afternoon
    "late": datetime(2026, 11, 25, 0, 40, tzinfo=SYDNEY),  # Wednesday, just after midnight
    "fri": datetime(2026, 11, 27, 11, 0, tzinfo=MADRID),  # Friday
    "sun": datetime(2026, 11, 29, 12, 0, tzinfo=CHICAGO),  # Sunday
    "mon": datetime(2026, 11, 23, 9, 0, tzinfo=MADRID),  # Monday
}
WED, THU, FRI, SAT, SUN = (date(2026, 11, d) for d in (25, 26, 27, 28, 29))
NEXT_MON, NEXT_TUE, NEXT_WED, NEXT_THU, NEXT_FRI, NEXT_SUN = (date(2026, 11, 30), date(2026, 12, 1),
                                                              date(2026, 12, 2), date(2026, 12, 3),
                                                              date(2026, 12, 4), date(2026, 12, 6))


def day(d: date, **fields: Any) -> dict[str, Any]:
    """One day, plus whatever else the case expects."""
    return {"start_day": d, "end_day": d, **fields}


def t(h: int, m: int = 0) -> time:
    return time(h, m)


CASES: list[tuple[str, str, dict[str, Any]]] = [
    # weekdays and relative days (now: Wednesday 2026-11-25 09:00 Sydney)
    ("friday works for me", "syd", day(FRI, at=None)),
    ("can we do thurs arvo?", "syd", day(THU, after=t(12), before=t(17))),
    ("need someone to look at a leaking tap, friday after lunch if possible", "syd", day(FRI, after=t(13))),
    ("wednesday is fine", "syd", day(WED)),  # today counts
    ("wednesday at 8am", "syd", day(NEXT_WED, at=t(8))),  # today at 8 has passed: next week's
    ("wednesday at 4", "syd", day(WED, at=t(16))),
    ("next friday", "syd", day(FRI)),  # said on a Wednesday: the coming Friday
    ("next wednesday", "syd", day(NEXT_WED)),
    ("next friday please", "fri", day(date(2026, 12, 4))),  # said on a Friday: next week's
    ("this friday at 10", "syd", day(FRI, at=t(10))),
    ("mon or tue?", "syd", day(NEXT_TUE)),  # the last day named wins
    ("not monday, wednesday at 4", "mon", day(WED, at=t(16))),
    ("tomorrow", "syd", day(THU)),
    ("tmrw after 5 works", "syd", day(THU, after=t(17), at=None)),
    ("tmr at 10", "syd", day(THU, at=t(10))),
    ("2morrow 3pm?", "syd", day(THU, at=t(15))),
    ("the day after tomorrow", "syd", day(FRI)),
    ("today if possible", "syd", day(WED)),
    ("tonight", "syd", day(WED, after=t(17))),
    ("tonight at 8", "syd", day(WED, at=t(20))),
    ("this afternoon", "syd", day(WED, after=t(12), before=t(17))),
    ("this weekend", "syd", {"start_day": SAT, "end_day": SUN}),
    ("this weekend", "sun", {"start_day": SUN, "end_day": SUN}),
    ("next weekend", "syd", {"start_day": date(2026, 12, 5), "end_day": NEXT_SUN}),
    ("next week", "syd", {"start_day": NEXT_MON, "end_day": NEXT_SUN}),
    ("early next week", "syd", {"start_day": NEXT_MON, "end_day": NEXT_WED}),
    ("late next week", "syd", {"start_day": NEXT_THU, "end_day": NEXT_FRI}),
    ("later this week", "syd", {"start_day": THU, "end_day": FRI}),
    ("end of the week", "syd", {"start_day": THU, "end_day": FRI}),
    ("any day this week", "syd", {"start_day": WED, "end_day": SUN}),
    ("friday next week", "syd", day(NEXT_FRI)),
    ("tuesday next week in the morning", "syd", day(NEXT_TUE, before=t(12))),
    ("in two weeks", "syd", day(date(2026, 12, 9))),
    ("in 3 days", "syd", day(SAT)),
    ("the week after next", "syd", {"start_day": date(2026, 12, 7), "end_day": date(2026, 12, 13)}),
    ("monday to wednesday", "syd", {"start_day": NEXT_MON, "end_day": NEXT_WED}),
    # days of the month and calendar dates
    ("my email is jo3@x.com, free the 12th", "syd", day(date(2026, 12, 12))),
    ("on the 3rd", "syd", day(date(2026, 12, 3))),
    ("the 25th at 2", "syd", day(WED, at=t(14))),  # today's date counts
    ("the 30th", "syd", day(date(2026, 11, 30))),
    ("how about the 31st", "syd", day(date(2026, 12, 31))),  # November has no 31st
    ("Dec 12", "syd", day(date(2026, 12, 12))),
    ("Dec 12 at 3:30pm", "syd", day(date(2026, 12, 12), at=t(15, 30))),
    ("January 3rd", "syd", day(date(2027, 1, 3))),
    ("nov 25", "syd", day(WED)),
    ("nov 20", "syd", day(date(2027, 11, 20))),  # already past this year
    ("12/12", "syd", day(date(2026, 12, 12))),
    ("1/12 at 10am", "syd", day(date(2027, 1, 12), at=t(10))),  # English: month first
    ("2026-12-01", "syd", day(date(2026, 12, 1))),
    # times
    ("at 3", "syd", {"at": t(15), "start_day": None}),
    ("3:30pm", "syd", {"at": t(15, 30)}),
    ("15:00 is good", "syd", {"at": t(15)}),
    ("noon tomorrow", "syd", day(THU, at=t(12))),
    ("friday 4", "syd", day(FRI, at=t(16))),
    ("4 works", "syd", {"at": t(16)}),
    ("10 am friday", "syd", day(FRI, at=t(10))),
    ("10a fri", "syd", day(FRI, at=t(10))),
    ("3p thursday", "syd", day(THU, at=t(15))),
    ("at 7", "syd", {"at": t(19)}),
    ("at 8", "syd", {"at": t(8)}),
    ("at 12", "syd", {"at": t(12)}),
    ("half past 4 tomorrow", "syd", day(THU, at=t(16, 30))),
    ("quarter to 5 tomorrow", "syd", day(THU, at=t(16, 45))),
    ("tomorrow morning at 7", "syd", day(THU, at=t(7), before=t(12))),
    ("midnight", "syd", {"at": t(0)}),
    ("930am tomorrow", "syd", day(THU, at=t(9, 30))),
    ("call me at 9.30 tomorrow", "syd", day(THU, at=t(9, 30))),
    ("see you at 4ish", "syd", {"at": t(16)}),
    ("move it to 3 instead", "syd", {"at": t(15)}),
    ("at one point friday", "syd", day(FRI, at=None)),
    ("Sunday 12/7 2pm", "syd", day(date(2026, 12, 7), at=t(14))),
    ("can you come to the 3rd floor at 2 tomorrow", "syd", day(THU, at=t(14))),
    ("we have 2 dogs, come sat morning", "syd", day(SAT, before=t(12))),
    # windows
    ("any time after 3 is fine", "syd", {"after": t(15), "before": None, "start_day": None}),
    ("after 5", "syd", {"after": t(17)}),
    ("from 3 on friday", "syd", day(FRI, after=t(15))),
    ("before 10", "syd", {"before": t(10), "after": None}),
    ("before noon", "syd", {"before": t(12)}),
    ("between 2 and 4", "syd", {"after": t(14), "before": t(16)}),
    ("between 10 and 2", "syd", {"after": t(10), "before": t(14)}),
    ("2-4pm thursday", "syd", day(THU, after=t(14), before=t(16))),
    ("late afternoon", "syd", {"after": t(15), "before": t(18)}),
    ("early morning", "syd", {"after": None, "before": t(10)}),
    ("lunchtime friday", "syd", day(FRI, after=t(12), before=t(14))),
    ("evenings are best", "syd", {"after": t(17), "start_day": None}),
    ("weekday mornings", "syd", {"before": t(12), "start_day": None}),
    ("morning", "syd", {"after": None, "before": t(12)}),
    ("call me on 0412 345 678 tomorrow morning", "syd", day(THU, before=t(12), at=None)),
    # numbers that are not times
    ("table for 6 on saturday at 8", "syd", day(SAT, at=t(8))),
    ("for 6 on saturday", "syd", day(SAT, at=None)),
    ("party of 6 friday", "syd", day(FRI, at=None)),
    ("6 people, friday", "syd", day(FRI, at=None)),
    ("2 kids and me, thursday at 5", "syd", day(THU, at=t(17))),
    ("it's 12 Smith St, tomorrow at 9", "syd", day(THU, at=t(9))),
    ("takes 30 minutes, free tuesday", "syd", day(NEXT_TUE, at=None)),
    ("is $149 for 2 hours friday?", "syd", day(FRI, at=None)),
    ("in 2 hours", "syd", day(WED, at=t(11))),
    # rescheduling
    ("same time thursday", "syd", day(THU, same_time=True, at=None)),
    ("can we do it at the same time next week?", "syd", {"same_time": True, "start_day": NEXT_MON}),
    ("an hour later", "syd", {"shift_minutes": 60, "start_day": None}),
    ("one hour earlier please", "syd", {"shift_minutes": -60}),
    ("30 min earlier", "syd", {"shift_minutes": -30}),
    ("push it back 2 hours", "syd", {"shift_minutes": 120}),
    ("half an hour later", "syd", {"shift_minutes": 30}),
    # timezones: times stay in the lead's zone, the caller converts
    ("3pm my time, I'm in Chicago", "syd", {"at": t(15), "timezone": "America/Chicago"}),
    ("tomorrow 10am Chicago time", "syd", day(THU, at=t(10), timezone="America/Chicago")),
    ("4pm EST friday", "syd", day(FRI, at=t(16), timezone="America/New_York")),
    ("10am Pacific time", "syd", {"at": t(10), "timezone": "America/Los_Angeles"}),
    ("central time, after 2", "syd", {"after": t(14), "timezone": "America/Chicago"}),
    ("friday at 3 my time", "syd", day(FRI, at=t(15), timezone=None)),
    # Spanish (now: Wednesday 2026-11-25 10:00 Madrid)
    ("hola, necesito un fontanero el viernes a las 9 de la mañana", "mad", day(FRI, at=t(9))),
    ("¿tenéis hueco el jueves por la tarde?", "mad", day(THU, after=t(12), before=t(17))),
    ("mejor la semana que viene, el martes a primera hora", "mad", day(NEXT_TUE, before=t(10))),
    ("mañana", "mad", day(THU)),
    ("mañana por la mañana", "mad", day(THU, before=t(12))),
    ("mañana por la tarde a las 5", "mad", day(THU, at=t(17))),
    ("esta mañana", "mad", day(WED, before=t(12))),
    ("pasado mañana", "mad", day(FRI)),
    ("hoy a las 6", "mad", day(WED, at=t(18))),
    ("esta noche", "mad", day(WED, after=t(17))),
    ("el miercoles", "mad", day(WED)),
    ("el sábado a las 11", "mad", day(SAT, at=t(11))),
    ("sabado", "mad", day(SAT)),
    ("el próximo lunes", "mad", day(NEXT_MON)),
    ("el finde", "mad", {"start_day": SAT, "end_day": SUN}),
    ("la próxima semana", "mad", {"start_day": NEXT_MON, "end_day": NEXT_SUN}),
    ("a finales de semana", "mad", {"start_day": THU, "end_day": FRI}),
    ("dentro de 2 días", "mad", day(FRI)),
    ("el 12", "mad", day(date(2026, 12, 12))),
    ("el día 3", "mad", day(date(2026, 12, 3))),
    ("12 de diciembre", "mad", day(date(2026, 12, 12))),
    ("el 3 de enero de 2027 a las 10", "mad", day(date(2027, 1, 3), at=t(10))),
    ("el 1/12", "mad", day(date(2026, 12, 1))),  # Spanish: day first
    ("a las 5 de la tarde", "mad", {"at": t(17)}),
    ("a las 9 de la noche", "mad", {"at": t(21)}),
    ("a las 4 y media", "mad", {"at": t(16, 30)}),
    ("a las 5 menos cuarto", "mad", {"at": t(16, 45)}),
    ("a las cinco", "mad", {"at": t(17)}),
    ("a la una", "mad", {"at": t(13)}),
    ("al mediodía", "mad", {"at": t(12)}),
    ("a partir de las 5", "mad", {"after": t(17)}),
    ("antes de las 10", "mad", {"before": t(10)}),
    ("entre las 4 y las 6", "mad", {"after": t(16), "before": t(18)}),
    ("de 10 a 12", "mad", {"after": t(10), "before": t(12)}),
    ("el viernes después de comer", "mad", day(FRI, after=t(15))),
    ("por la noche", "mad", {"after": t(17)}),
    ("antes del mediodía", "mad", {"before": t(12)}),
    ("el martes que viene", "mad", day(NEXT_TUE)),
    ("hasta las 2 el lunes", "mad", day(NEXT_MON, before=t(14))),
    ("hoy no puedo, mañana sí", "mad", day(THU)),
    ("a las once", "mad", {"at": t(11)}),
    ("a la misma hora el jueves", "mad", day(THU, same_time=True)),
    ("una hora más tarde", "mad", {"shift_minutes": 60}),
    ("media hora antes", "mad", {"shift_minutes": -30}),
    ("a las 10 hora de Madrid", "syd", {"at": t(10), "timezone": "Europe/Madrid"}),
    ("el lunes a las 9, hora de Canarias", "mad", day(NEXT_MON, at=t(9), timezone="Atlantic/Canary")),
    ("mesa para 6 el sábado", "mad", day(SAT, at=None)),
    ("somos 4, el viernes a las 9 de la noche", "mad", day(FRI, at=t(21))),
    ("cuesta 149€, ¿el jueves?", "mad", day(THU, at=None)),
    # Chicago, a Wednesday afternoon (2026-12-02 15:00)
    ("wednesday at 10", "chi", day(date(2026, 12, 9), at=t(10))),  # passed today
    ("wednesday at 5", "chi", day(date(2026, 12, 2), at=t(17))),
    ("the 2nd", "chi", day(date(2026, 12, 2))),
    ("the 1st", "chi", day(date(2027, 1, 1))),
    ("this weekend", "chi", {"start_day": date(2026, 12, 5), "end_day": date(2026, 12, 6)}),
    # just after midnight: the lead has not slept, "tomorrow" is the calendar today
    ("tomorrow at 10", "late", day(WED, at=t(10))),
    ("tonight", "late", day(WED, after=t(17))),
    ("mañana a las 10", "late", day(WED, at=t(10))),
    ("pasado mañana", "late", day(THU)),
    ("today at 2", "late", day(WED, at=t(14))),
]


@pytest.mark.parametrize(("text", "now", "expected"), CASES, ids=[f"{n}:{c[0]}" for n, c in enumerate(CASES)])
def test_reads_what_a_receptionist_would(text: str, now: str, expected: dict[str, Any]) -> None:
    when = parse_when(text, NOW[now])
    assert when is not None, text
    assert {k: getattr(when, k) for k in expected} == expected


@pytest.mark.parametrize("text", [
    "hello, do you do emergency call outs?", "thanks!", "my number is 0412 345 678", "email me at jo3@x.com",
    "it's $149?", "we are 6 people", "how much for 2 kids", "12 Smith St", "it takes about 30 minutes",
    "ok", "sí, perfecto", "cuesta 149€", "somos 6 personas", "I sat down", "c'mon", "las dos opciones",
    "I'll do it at once", "I'm in Chicago",  # a zone alone names no day or time
])
def test_no_day_or_time_is_none(text: str) -> None:
    assert parse_when(text, NOW["syd"]) is None


def test_phrase_carries_the_words() -> None:
    when = parse_when("hi! can someone come friday after lunch? thanks", NOW["syd"])
    assert when is not None and when.phrase == "friday after lunch"


def test_exact_needs_a_day_and_a_time() -> None:
    assert parse_when("friday at 3", NOW["syd"]).exact  # type: ignore[union-attr]
    assert not parse_when("friday afternoon", NOW["syd"]).exact  # type: ignore[union-attr]
    assert not parse_when("at 3", NOW["syd"]).exact  # type: ignore[union-attr]


def test_day_first_for_day_first_countries() -> None:
    when = parse_when("1/12 at 10am", NOW["syd"], day_first=True)
    assert when is not None and when.start_day == date(2026, 12, 1)


def test_bare_hours_follow_the_business_day() -> None:
    when = parse_when("saturday at 8", NOW["syd"], pm_below=12)  # an evening business: 8 means 20:00
    assert when is not None and when.at == t(20)


@pytest.mark.parametrize(("zone", "now", "text", "expected"), [
    # spring forward and fall back in New York, autumn and spring in Sydney
    ("America/New_York", datetime(2026, 3, 7, 10, 0), "tomorrow at 10", datetime(2026, 3, 8, 10, 0)),
    ("America/New_York", datetime(2026, 10, 31, 18, 0), "tomorrow at 9am", datetime(2026, 11, 1, 9, 0)),
    ("Australia/Sydney", datetime(2026, 4, 4, 12, 0), "tomorrow at 3pm", datetime(2026, 4, 5, 15, 0)),
    ("Australia/Sydney", datetime(2026, 10, 2, 9, 0), "sunday at 10", datetime(2026, 10, 4, 10, 0)),
])
def test_a_day_across_dst_keeps_its_wall_clock_time(zone: str, now: datetime, text: str, expected: datetime) -> None:
    tz = ZoneInfo(zone)
    when = parse_when(text, now.replace(tzinfo=tz))
    assert when is not None
    moment = when.moment(tz)
    assert moment is not None and moment.replace(tzinfo=None) == expected
    assert moment.utcoffset() != now.replace(tzinfo=tz).utcoffset()  # the change lies in between


def test_in_hours_across_dst_is_elapsed_time() -> None:
    # 01:30 EST + 2 hours of real time is 04:30 EDT (02:00-03:00 does not exist on 2026-03-08)
    when = parse_when("in 2 hours", datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK))
    assert when is not None and (when.start_day, when.at) == (date(2026, 3, 8), t(4, 30))


def test_the_same_text_at_another_minute_is_read_again() -> None:
    first = parse_when("in 30 minutes", NOW["syd"])
    later = parse_when("in 30 minutes", NOW["syd"] + timedelta(minutes=5))
    assert first is not None and later is not None and later.at == t(9, 35) and first.at == t(9, 30)


def test_is_a_frozen_value() -> None:
    when = parse_when("friday", NOW["syd"])
    assert isinstance(when, When)
    with pytest.raises(AttributeError):
        when.at = t(3)  # type: ignore[misc]
