"""The day, time or window a lead means in a free-form message, in English and Spanish.

`parse_when(text, now)` reads "friday after lunch", "tmrw after 5", "el jueves por la tarde", "the 12th",
"same time thursday", "an hour later" or "3pm Chicago time" into a `When`. Calendar dates with month names
or digits ("Dec 12", "12 de diciembre", "12/12") go to dateparser; the rest is a set of small rules, because
dateparser reads "friday 4" as April, "for 6 on saturday" as June, misses "arvo", "tmrw", "por la tarde" and
"after 5", and takes "mañana" in "por la mañana" for tomorrow.

All results are wall-clock dates and times in the zone of `now`, or in the zone the lead states (then
`When.timezone` names it and converting is the caller's job). The choices a receptionist would make:

- A bare hour is business hours: 1..`pm_below`-1 is PM, `pm_below`..11 AM, 12 noon (default `pm_below=8`);
  a window or "de la tarde"/"in the morning" decides first.
- "friday"/"el viernes" is the next Friday, today included unless the time named has already passed today;
  "next friday"/"el próximo viernes" is the next Friday after today (the Friday of next week when said on
  Friday, Saturday or Sunday, else the coming one).
- Before 03:00, "tomorrow"/"mañana" is the calendar today (the lead has not slept yet) and "tonight" is the
  evening of the calendar today.
- "next week" is Monday-Sunday of next week, "early next week" Monday-Wednesday, "late next week"
  Thursday-Friday, "this week" today-Sunday, "later this week" tomorrow-Friday, "end of the week"
  Thursday-Friday (from today), "this weekend"/"el finde" the coming Saturday-Sunday, "next weekend" the
  weekend of next week; "in two weeks" and "in 3 days" are single days.
- A day of the month already past this month is next month's; "12/12" is day-first when `day_first` is True
  or, by default, when the message reads Spanish, else month-first.
- Windows: morning = before 12:00, early morning/"a primera hora" = before 10:00, afternoon/arvo/"por la
  tarde" = 12:00-17:00, late afternoon 15:00-18:00, lunchtime 12:00-14:00, after lunch = after 13:00,
  "después de comer" = after 15:00 (lunch in Spain ends around then), evening/tonight/"por la noche" = after
  17:00.
- When a message names several days or times the last one wins ("not monday, wednesday at 4").
- Numbers in emails, phone numbers, prices, quantities ("for 6", "2 kids"), addresses and durations are
  never read as days or times."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

import dateparser

from agents.understanding.clock import read_clocks, times_of_day
from agents.understanding.reading import DAY, DAYS, HOURWORD, NUM, NUMBERS, TOMORROW, Reader, fold
from agents.understanding.zones import zone_named


@dataclass(frozen=True)
class When:
    """What a message says about when: a day or range of days, an exact time or a window, a shift."""

    start_day: date | None
    end_day: date | None
    at: time | None
    after: time | None
    before: time | None
    same_time: bool
    shift_minutes: int | None
    timezone: str | None
    phrase: str

    @property
    def exact(self) -> bool:
        """A day and an exact time: enough to book without asking."""
        return self.start_day is not None and self.at is not None

    def moment(self, zone: tzinfo) -> datetime | None:
        """The start day at the exact time (or the window's start) as an aware datetime in `zone`."""
        clock = self.at or self.after
        if self.start_day is None or clock is None:
            return None
        return datetime.combine(self.start_day, clock, tzinfo=zone)


def parse_when(text: str, now: datetime, *, languages: tuple[str, ...] = ("en", "es"),
               day_first: bool | None = None, pm_below: int = 8) -> When | None:
    """The date, time or window `text` names, relative to the aware `now`, or None when it names none."""
    folded = fold(text)
    if not _HINT.search(folded):
        return None  # most messages name no time: skip the rules and dateparser
    local = now.replace(second=0, microsecond=0)
    return _parse(text, local.replace(tzinfo=None), now.tzinfo, languages, day_first, pm_below)



_MONTHS = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|"
           r"sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|enero|febrero|marzo|abril|mayo|junio|"
           r"julio|agosto|sept?iembre|octubre|noviembre|diciembre|ene|dic")

_HINT = re.compile(rf"\d|\b(?:{DAY}|{_MONTHS}|{TOMORROW}|today|tonight|tonite|2nite|2day|hoy|week|wk|"
                   r"finde|semana|noon|midday|midnight|mediodia|medianoche|morning|afternoon|arvo|evening|night|"
                   r"lunch|tarde|noche|madrugada|pasado|dia|same time|misma hora|earlier|later|temprano|antes|"
                   r"despues|primera hora|hora|comer|after work|fortnight|"
                   + HOURWORD + ")")  # stems: "weekend", "evenings", "mornings" pass too

# numbers that are never times or days (masked before anything reads digits)
_NOISE = [re.compile(p) for p in (
    r"\S+@\S+\.\S+", r"\b(?:https?://|www\.)\S+",
    r"(?<![\d/:])(?!\d{4}-\d{2}-\d{2}\b)\+?\(?\d(?:[\s()-]*\d){7,}",  # phone numbers: 8+ digits
    r"[$€£]\s?\d[\d,.]*(?:k|m|mm)?\b", r"\b\d[\d,.]*\s?(?:€|eur|euros?|dollars?|usd|aud|bucks|pesos|k)(?![a-z])",
    r"\b\d[\d,.]*\s?(?:m|mm|mil|million|millions|millon|millones|grand|thousand)\b",  # "1.2M", "900 mil": money
    r"\b(?:for|para|party of|table for|mesa para|group of|grupo de|somos|seremos|x)\s+(?:\d+|" + HOURWORD
    + r")\b(?!\s*(?::\d|[ap]\.?m\b|[ap]\b|o'?clock|h\b|ish))",
    r"\b\d+\s*(?:people|persons?|pax|guests?|kids?|adults?|children|of us|personas?|adultos?|ninos?|"
    r"invitados?|comensales|rooms?|bedrooms?|bathrooms?|items?|units?|cars?|dogs?|cats?|pets?|seats?|"
    r"tickets?|sq ?m|m2|metros?|meters?|feet|ft|km|miles?|kg|years? old|anos|años|times|veces|x)\b",
    r"\b\d+[a-z]?\s+(?:[a-z]+\s+){1,3}(?:st|street|rd|road|ave|avenue|blvd|boulevard|lane|"
    r"drive|cres|crescent|hwy|highway|pde|parade|tce|terrace)\b",
    r"\b(?:calle|c/|avenida|avda\.?|plaza|pza\.?|paseo|carrer|camino)\s+(?:[a-z]+\s+){0,3}(?:n[ºo.]?\s*)?\d+",
    r"(?:#|\bno\.|\bnum\.?|\bunit|\bapt|\bsuite|\bflat|\broom|\border|\bref|\bpiso|\bpuerta)\s*\d+",
    r"\b\d+(?:st|nd|rd|th)?\s+(?:floor|planta|time|item|place)\b",
)]
_SHIFT_UNIT = r"(?P<u>hours?|hrs?|h|minutes?|mins?|horas?|minutos?)"
_SHIFTS = [
    re.compile(rf"\b(?P<n>half an?|{NUM}|media)\s*{_SHIFT_UNIT}\s+(?:(?:or so|more)\s+)?"
               r"(?P<dir>later|earlier|after|before|sooner|mas tarde|antes|despues|mas temprano|luego)\b"),
    re.compile(r"\b(?:push|move|bump|put|set|bring|pull)\s+(?:it|that|this|us|me|the \w+)?\s*"
               rf"(?P<dir>back|forward|later|earlier|ahead)\s+(?:by\s+)?(?P<n>half an?|{NUM})\s*{_SHIFT_UNIT}"),
    re.compile(rf"\b(?:atrasar|retrasar|adelantar)(?:la|lo)?\s+(?P<n>media|{NUM})\s*{_SHIFT_UNIT}"),
]
_IN_TIME = re.compile(rf"\b(?:in|dentro de|en)\s+(?:(?:about|around|like|unas?|como)\s+)?(?P<n>half an?|media|{NUM})"
                      rf"\s*{_SHIFT_UNIT}\b")
_DURATION = re.compile(rf"\b(?:{NUM}|half an?|media)(?:\s*(?:-|to|or|a|o)\s*\d+)?\s*(?:hours?|hrs?|minutes?|mins?|"
                       r"horas?|minutos?|years?|months?|meses|anos|seconds?|segundos?)\b")
_SPAN_OF_DAYS = re.compile(r"\b\d+\s*(?:days?|weeks?|dias|semanas?)\b")
_IN_DAYS = re.compile(rf"\b(?:(?:in|dentro de|en)\s+(?P<n>{NUM})\s*(?P<u>days?|weeks?|dias|semanas?)|"
                      rf"(?P<n2>{NUM})\s*(?P<u2>days?|weeks?)\s+from\s+(?:now|today)|"
                      r"(?P<fortnight>in a fortnight|in a couple of weeks))\b")
_DATE_WORDS = re.compile(rf"\b(?:el\s+)?(?:(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+|de\s+)?(?:{_MONTHS})\b\.?)|"
                         rf"(?:(?:{_MONTHS})\b\.?\s+(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)?\b))"
                         r"(?:,?\s+(?:de(?:l)?\s+)?\d{4}\b)?")
_DATE_DIGITS = re.compile(r"(?<![\d/])(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?)(?![\d/])")
_WEEKS: list[tuple[re.Pattern[str], str]] = [(re.compile(p), kind) for p, kind in (
    (r"\b(?:early|beginning of|start of|first thing)\s+next\s+(?:week|wk)\b|\b(?:a\s+)?(?:principios|comienzos|"
     r"inicios)\s+de\s+(?:la\s+)?(?:semana\s+que\s+viene|proxima\s+semana|semana\s+proxima)", "early_next"),
    (r"\b(?:late|end of|later|the end of)\s+next\s+(?:week|wk)\b|\b(?:a\s+)?finales\s+de\s+(?:la\s+)?(?:semana\s+"
     r"que\s+viene|proxima\s+semana|semana\s+proxima)", "late_next"),
    (r"\bnext\s+weekend\b|\b(?:el\s+)?(?:finde|fin\s+de\s+semana)\s+que\s+viene\b|\b(?:el\s+)?proximo\s+(?:finde|"
     r"fin\s+de\s+semana)\b", "next_weekend"),
    (r"\bweek after next\b", "week_after_next"),
    (r"\b(?:next|the coming|coming)\s+(?:week|wk)\b|\b(?:la\s+)?semana\s+que\s+viene\b|\b(?:la\s+)?(?:proxima\s+"
     r"semana|semana\s+proxima)\b", "next_week"),
    (r"\b(?:this|the|el|este)?\s*(?:weekend|wkend|w/e|finde|fin\s+de\s+semana)\b", "weekend"),
    (r"\blater\s+(?:this|in\s+the)\s+week\b|\bmas\s+adelante\s+(?:esta|en\s+la)\s+semana\b", "later_week"),
    (r"\b(?:the\s+)?end\s+of\s+(?:the|this)?\s*week\b|\b(?:a\s+)?finales\s+de\s+(?:la\s+|esta\s+)?semana\b",
     "end_week"),
    (r"\b(?:any\s*(?:day|time)\s+)?(?:this|esta)\s+(?:week|wk|semana)\b|\b(?:en\s+)?lo\s+que\s+queda\s+de\s+"
     r"semana\b", "this_week"),
)]
# (pattern, after, before, today): windows of the day, most specific first
_WINDOWS: list[tuple[re.Pattern[str], time | None, time | None, bool]] = [
    (re.compile(p), a, b, t) for p, a, b, t in (
        (r"\blate\s+afternoon\b|\b(?:a\s+)?(?:ultima|media)\s+hora\s+de\s+la\s+tarde\b", time(15), time(18), False),
        (r"\bearly\s+afternoon\b|\b(?:a\s+)?primera\s+hora\s+de\s+la\s+tarde\b", time(12), time(15), False),
        (r"\bmid-?\s?afternoon\b", time(14), time(16), False),
        (r"\blate\s+morning\b|\b(?:a\s+)?media\s+manana\b", time(10), time(12), False),
        (r"\bearly\s+(?:in\s+the\s+)?mornings?\b|\bfirst\s+thing(?:\s+in\s+the\s+morning)?\b|"
         r"\b(?:a\s+)?primera\s+hora(?:\s+de\s+la\s+manana)?\b|\b(?:a\s+)?primerisima\s+hora\b", None, time(10), False),
        (r"\bearly\s+evening\b", time(17), time(19), False),
        (r"\blate\s+(?:evening|at\s+night)\b", time(19), None, False),
        (r"\bafter\s+lunch(?:time)?\b", time(13), None, False),
        (r"\b(?:despues|luego)\s+de\s+(?:comer|la\s+comida)\b|\b(?:despues|luego)\s+del\s+almuerzo\b|\btras\s+(?:comer|"
         r"la\s+comida)\b", time(15), None, False),
        (r"\bbefore\s+lunch(?:time)?\b", None, time(12), False),
        (r"\bantes\s+de\s+comer\b|\bantes\s+de\s+la\s+comida\b", None, time(14), False),
        (r"\bafter\s+work\b|\bdespues\s+del\s+trabajo\b|\bal\s+salir\s+del\s+trabajo\b", time(17), None, False),
        (r"\b(?:at\s+|over\s+|around\s+)?lunch\s*(?:time|break)?\b", time(12), time(14), False),
        (r"\b(?:a\s+la\s+)?hora\s+de\s+(?:comer|la\s+comida)\b", time(14), time(16), False),
        (r"\bthis\s+morning\b|\besta\s+manana\b", None, time(12), True),
        (r"\b(?:in\s+the\s+)?mornings?\b|\b(?:por|en|de)\s+la\s+manana\b|\b(?:por\s+)?las\s+mananas\b|"
         r"\bmananero\b|\ba\.?m\.?\s+(?=please|works|is|pls|if)", None, time(12), False),
        (r"\bthis\s+(?:afternoon|arvo)\b|\besta\s+tarde\b", time(12), time(17), True),
        (r"\b(?:in\s+the\s+)?(?:afternoons?|arvos?)\b|\b(?:por|en|de)\s+la\s+tarde\b|\b(?:por\s+)?las\s+tardes\b|"
         r"\ba\s+la\s+tarde\b", time(12), time(17), False),
        (r"\b(?:tonight|tonite|2nite|this\s+evening)\b|\besta\s+noche\b", time(17), None, True),
        (r"\b(?:in\s+the\s+)?(?:evenings?|nights?)\b|\b(?:por|en|de)\s+la\s+noche\b|\b(?:por\s+)?las\s+noches\b|"
         r"\bde\s+noche\b", time(17), None, False),
    )]
_RELATIVE = [(re.compile(p), n) for p, n in (
    (r"\b(?:the\s+)?day\s+after\s+(?:tomorrow|tmrw|tmr)\b|\bpasado\s+manana\b", 2),
    (rf"\b(?:{TOMORROW})\b", 1),
    (r"\b(?:today|2day|tday|hoy)\b", 0),
)]
# (not after a move: "move friday to saturday" names the old day and the new one, not a range)
_WEEKDAY_RANGE = re.compile(rf"(?<!move )(?<!moving )(?<!change )(?<!push )(?<!shift )(?<!switch )(?<!pasar )"
                            rf"(?<!cambiar )(?<!mover )(?<!pasa )(?<!cambia )(?<!mueve )"
                            rf"\b(?:from\s+|between\s+|del?\s+|entre\s+(?:el\s+)?)?(?P<d1>{DAY})\.?\s*(?:to|-|–|"
                            rf"through|thru|till|until|and|al|a|hasta\s+el|y\s+el)\s*(?P<d2>{DAY})\b")
_WEEKDAY = re.compile(rf"(?<!')\b(?P<mod>next|this\s+coming|this|coming|on|el\s+proximo|el\s+siguiente|proximo|"
                      rf"este|el|los)?\s*(?P<day>{DAY})(?P<plural>s)?\b\.?(?P<post>\s+(?:que\s+viene|proximo|"
                      r"next\s+week|of\s+next\s+week|de\s+la\s+(?:semana\s+que\s+viene|proxima\s+semana)))?")
_DAY_OF_MONTH = re.compile(r"\b(?:(?:on\s+)?the\s+(?P<d1>\d{1,2})(?:st|nd|rd|th)?|(?P<d2>\d{1,2})(?:st|nd|rd|th)|"
                           r"(?:el\s+)?dia\s+(?P<d3>\d{1,2})|el\s+(?P<d4>\d{1,2}))\b(?!\s*(?::|[ap]\.?m\b|h\b))")
# "el martes 1", "Tuesday 1": a weekday with the number of a date that falls on it is that date, not 1 PM
# (Spanish puts the date after the weekday; English needs "the" or an ordinal: "friday 4" is 4 PM)
_WEEKDAY_DATE = re.compile(rf"\b(?P<el>el\s+)?(?P<day>{DAY})\s+(?P<the>the\s+)?(?P<n>\d{{1,2}})(?P<th>st|nd|rd|th)?\b"
                           r"(?!\s*(?:[:.h]\d|[ap]\.?m\b|h\b|hrs?\b|horas?\b|o'?clock|ish\b))")
_SAME_TIME = re.compile(r"\b(?:(?:at\s+)?the\s+same\s+time|same\s+time|(?:a\s+)?la\s+misma\s+hora)\b")
_MY_TIME = re.compile(r"\b(?:my|your|our|local)\s+time\b|\bmi\s+hora\b|\bhora\s+local\b")
_SPANISH = re.compile(r"\b(?:el|la|las|los|de|del|por|que|hola|para|puedo|tienes|teneis|quiero|necesito|mejor|"
                      r"semana|lunes|martes|miercoles|jueves|viernes|sabado|domingo|manana|tarde|hoy)\b")



@lru_cache(maxsize=4096)
def _parse(text: str, now: datetime, zone: tzinfo | None, languages: tuple[str, ...],
           day_first: bool | None, pm_below: int) -> When | None:
    r = Reader(text)
    today = now.date()
    for noise in _NOISE:
        r.take(noise, keep=False)
    stated = zone_named(r.s)
    if stated:
        r.blank(stated[1])
    r.take(_MY_TIME)
    same_time = bool(r.take(_SAME_TIME))
    shift = _shift(r)
    days: list[tuple[int, date, date]] = []  # (position, first, last): explicit days and dates
    at_moment: time | None = None
    for m in r.take(_IN_TIME):
        minutes = _minutes(m["n"], m["u"])
        if zone is None:
            later = now + timedelta(minutes=minutes)
        else:  # elapsed time, so "in 2 hours" across a DST change lands where the clock will be
            later = (now.replace(tzinfo=zone).astimezone(UTC) + timedelta(minutes=minutes)).astimezone(zone)
        days.append((m.start(), later.date(), later.date()))
        at_moment = later.time().replace(second=0, microsecond=0)
    r.take(_DURATION, keep=False)
    for m in r.take(_IN_DAYS):
        if m["fortnight"]:
            step = 14
        else:
            unit = m["u"] or m["u2"]
            step = _amount(m["n"] or m["n2"]) * (7 if unit.startswith(("w", "s")) else 1)
        days.append((m.start(), today + timedelta(days=step), today + timedelta(days=step)))
    r.take(_SPAN_OF_DAYS, keep=False)
    days += _dates(r, now, languages, day_first)
    r.take(re.compile(r"\b\d{3,}\b(?!\s*[ap]\.?m)"), keep=False)  # order numbers, years, postcodes
    for m in list(_WEEKDAY_DATE.finditer(r.s)):
        day = _day_of_month(int(m["n"]), today)
        dated = m["el"] or m["the"] or m["th"] or _SPANISH.search(r.s)
        if dated and day is not None and day.weekday() == DAYS[m["day"]] and (day - today).days <= 62:
            days.append((m.start(), day, day))
            r.blank(m.span("n"))
    clocks = read_clocks(r)
    ranges = [(m.start(), _week_range(kind, today)) for p, kind in _WEEKS for m in r.take(p)]
    window: tuple[time | None, time | None] | None = None
    for pattern, after, before, is_today in _WINDOWS:
        for m in r.take(pattern):
            window = (after, before)
            if is_today:
                days.append((m.start(), today, today))
    late_night = now.hour < 3
    for pattern, step in _RELATIVE:
        for m in r.take(pattern):
            step_here = step - 1 if late_night and step > 0 else step
            days.append((m.start(), today + timedelta(days=step_here), today + timedelta(days=step_here)))
    weekdays = [(m.start(), DAYS[m["d1"]], DAYS[m["d2"]]) for m in r.take(_WEEKDAY_RANGE)]
    weekdays += [(m.start(), DAYS[m["day"]], -1 if _next(m) else -2)
                 for m in r.take(_WEEKDAY) if _is_weekday(m, r.s)]
    for m in r.take(_DAY_OF_MONTH):
        number = int(next(g for g in (m["d1"], m["d2"], m["d3"], m["d4"]) if g))
        day = _day_of_month(number, today)
        if day:
            days.append((m.start(), day, day))

    at, after, before = times_of_day(clocks, window, pm_below)
    if at is None:
        at = at_moment
    start_day, end_day = _days(days, weekdays, ranges, today, now.time(), at or after)
    if not (start_day or at or after or before or same_time or shift):
        return None
    return When(start_day=start_day, end_day=end_day, at=at, after=after, before=before, same_time=same_time,
                shift_minutes=shift, timezone=stated[0] if stated else None, phrase=r.phrase())


def _amount(word: str) -> int:
    """How many: digits or a number word; 0 marks "half an"/"media" (the caller makes it 30 minutes)."""
    word = re.sub(r"\s+", " ", word)
    if word.isdigit():
        return int(word)
    if word in ("half a", "half an", "media"):
        return 0
    return NUMBERS.get(word, 1)


def _minutes(n: str, unit: str) -> int:
    if _amount(n) == 0:  # "half an hour", "media hora"
        return 30
    return _amount(n) * (60 if unit.startswith("h") else 1)


def _shift(r: Reader) -> int | None:
    for pattern in _SHIFTS:
        for m in r.take(pattern):
            sign = 1
            if "dir" in pattern.groupindex:
                sign = -1 if m["dir"] in ("earlier", "before", "sooner", "antes", "mas temprano", "forward",
                                          "ahead") else 1
            elif m.group().startswith("adelantar"):
                sign = -1
            return sign * _minutes(m["n"], m["u"])
    return None


def _dates(r: Reader, now: datetime, languages: tuple[str, ...],
           day_first: bool | None) -> list[tuple[int, date, date]]:
    """Calendar dates with a month name or digits, read by dateparser; today counts, a past date is next year's."""
    found: list[tuple[int, date, date]] = []
    spanish = "es" in languages and (languages[0] == "es" or bool(_SPANISH.search(r.s)))
    order = "DMY" if (day_first if day_first is not None else spanish) else "MDY"
    base = (now - timedelta(days=1)).replace(hour=23, minute=59)
    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": base, "DATE_ORDER": order,
                "REQUIRE_PARTS": ["day", "month"]}
    for pattern in (_DATE_WORDS, _DATE_DIGITS):
        for m in r.take(pattern):
            words = re.sub(r"^el\s+|\s+de(?:l)?(?=\s+\d{4})", "", m.group().strip())
            parsed = dateparser.parse(words, languages=list(languages), settings=settings)  # type: ignore[arg-type]
            if parsed:
                found.append((m.start(), parsed.date(), parsed.date()))
    return found


def _week_range(kind: str, today: date) -> tuple[date, date]:
    monday = today - timedelta(days=today.weekday())
    next_monday = monday + timedelta(days=7)
    friday, sunday = monday + timedelta(days=4), monday + timedelta(days=6)
    saturday, tomorrow = max(today, monday + timedelta(days=5)), today + timedelta(days=1)
    ranges = {
        "early_next": (next_monday, next_monday + timedelta(days=2)),
        "late_next": (next_monday + timedelta(days=3), next_monday + timedelta(days=4)),
        "next_week": (next_monday, next_monday + timedelta(days=6)),
        "week_after_next": (next_monday + timedelta(days=7), next_monday + timedelta(days=13)),
        "next_weekend": (next_monday + timedelta(days=5), next_monday + timedelta(days=6)),
        "weekend": (saturday, sunday),
        "later_week": (min(tomorrow, sunday), friday if tomorrow <= friday else sunday),
        "end_week": (max(today, monday + timedelta(days=3)), friday if today <= friday else sunday),
        "this_week": (today, sunday),
    }
    return ranges[kind]


def _next(m: re.Match[str]) -> bool:
    return bool(m["mod"] and re.sub(r"\s+", " ", m["mod"]) in ("next", "el proximo", "el siguiente", "proximo")
                or m["post"] and ("que viene" in m["post"] or "proximo" in m["post"]))


def _is_weekday(m: re.Match[str], folded: str) -> bool:
    """"sat"/"sun"/"wed" are weekdays unless a sentence uses them as words ("I sat", "the sun")."""
    if m["day"] not in ("sat", "sun") or m["mod"]:
        return True
    return not re.search(r"\b(?:i|we|they|you|he|she|the|have|had|just|in\s+the)\s*$", folded[: m.start("day")])


def _day_of_month(number: int, today: date) -> date | None:
    """The next date with this day of the month, today included."""
    if not 1 <= number <= 31:
        return None
    year, month = today.year, today.month
    for _ in range(13):
        try:
            day = date(year, month, number)
        except ValueError:
            day = None
        if day and day >= today:
            return day
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _days(days: list[tuple[int, date, date]], weekdays: list[tuple[int, int, int]],
          ranges: list[tuple[int, tuple[date, date]]], today: date, clock: time,
          named: time | None) -> tuple[date | None, date | None]:
    """The day or days meant: an explicit date wins, then a weekday (inside a named week), then a week."""
    if days:
        _, first, last = max(days, key=lambda d: d[0])
        return first, last
    week = max(ranges, key=lambda x: x[0])[1] if ranges else None
    if weekdays:
        _, day, other = max(weekdays, key=lambda w: w[0])
        if week:
            inside = [week[0] + timedelta(days=i) for i in range((week[1] - week[0]).days + 1)]
            chosen = next((d for d in inside if d.weekday() == day), None)
            if chosen:
                return chosen, chosen
        ahead = (day - today.weekday()) % 7
        if other == -1 and ahead == 0:
            ahead = 7  # "next friday" said on a Friday
        elif other == -2 and ahead == 0 and named is not None and named <= clock:
            ahead = 7  # "wednesday at 10" said on Wednesday at 15:00
        first = today + timedelta(days=ahead)
        if other >= 0:
            return first, first + timedelta(days=(other - day) % 7)
        return first, first
    if week:
        return week
    return None, None
