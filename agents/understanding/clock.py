"""Clock times in a folded message: "at 3", "3:30pm", "15h", "noon", "half past 4", "a las 5 y media de la tarde",
"after 5", "antes de las 10", "between 2 and 4", "de 10 a 12". They are read raw and put on the 24-hour dial once
the window of the day is known ("tomorrow morning at 7" is 07:00, "tonight at 8" 20:00)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from agents.understanding.reading import DAY, HOURWORD, NUMBERS, TOMORROW, Reader

_CLOCK_RANGE = re.compile(
    r"\b(?P<pre>between|from|entre(?:\s+las?)?|de(?:\s+las?)?|desde(?:\s+las?)?)?\s*"
    r"(?<![\d:])(?P<h1>\d{1,2})(?::(?P<m1>\d{2}))?\s?(?P<mer1>[ap]\.?m\b\.?|[ap]\b)?\s*"
    r"(?P<con>and|to|-|–|till|until|y(?:\s+las?)?|a(?:\s+las?)?|hasta(?:\s+las?)?)\s*"
    r"(?P<h2>\d{1,2})(?::(?P<m2>\d{2}))?(?![\d:/])\s?(?P<mer2>[ap]\.?m\b\.?|[ap]\b)?")
_CLOCK = re.compile(
    rf"(?<![\d:/.,])\b(?:(?P<noon>(?:12\s+)?(?:noon|midday|midnight)|(?:el\s+|al\s+|a\s+)?(?:mediodia|medianoche))|"
    rf"(?P<h>\d{{1,2}}|{HOURWORD})(?:(?P<sep>[:.h])?(?P<m>\d{{2}}))?(?![\d/])(?!\s*(?:st|nd|rd|th)\b)"
    r"(?:\s?(?P<mer>[ap]\.?m\b\.?)|(?P<mer1>[ap])\b|(?P<hh>h|hs|hrs)\b)?)")
_MINUTES_BEFORE = re.compile(r"(?:(?P<q>quarter|half|\d{1,2})(?:\s+minutes?)?\s+(?P<dir>past|after|to|til)|"
                             r"(?P<half>half))\s+$")
_MINUTES_AFTER = re.compile(r"^(?:\s+y\s+(?P<plus>media|cuarto|\d{1,2})|\s+menos\s+(?P<minus>cuarto|\d{1,2})|"
                            r"\s*(?:o'?clock|en\s+punto))+")
_MERIDIAN_AFTER = re.compile(r"^\s+(?:(?:de|por|en)\s+la\s+(?P<es>manana|tarde|noche|madrugada)|"
                             r"in\s+the\s+(?P<en>morning|afternoon|evening)|at\s+night(?P<night>)|del\s+mediodia(?P<md>))")
_TRIGGER = re.compile(r"(?:\b(?P<word>at|to|around|about|approx\.?|by|from|after|before|until|till|til|since|"
                      r"no\s+later\s+than|sobre\s+las?|hacia\s+las?|a\s+eso\s+de\s+las?|a\s+las?|las?|desde\s+las?|"
                      r"a\s+partir\s+de\s+las?|a\s+partir\s+del|antes\s+de\s+las?|antes\s+del|despues\s+de\s+las?|"
                      r"despues\s+del|hasta\s+las?|hasta\s+el|any\s*time\s+after|any\s*time\s+before)|(?P<at>@))\s*$")
_NEXT_TO_DAY = re.compile(rf"\b(?:{DAY}|{TOMORROW}|today|tonight|hoy|\d(?:st|nd|rd|th))\.?,?\s*$")
_ACCEPTS = re.compile(r"^\s*(?:ish\b|works|work\b|would\s+work|is\s+(?:fine|good|ok|okay|perfect|great|best|better)|"
                      r"suits|ok\b|okay\b|sounds\s+good|please|pls|me\s+va\s+bien|me\s+viene\s+bien|va\s+bien|"
                      r"vale|esta\s+bien|me\s+sirve|(?:tomorrow|today|tonight|hoy)\b)")


@dataclass
class Clock:
    """A clock time as written: its hour, minute, am/pm if given, and whether it is a time, a start or an end."""

    pos: int
    hour: int
    minute: int
    meridian: str | None  # "am" / "pm" / None (bare)
    kind: str  # "at" / "after" / "before"



def read_clocks(r: Reader) -> list[Clock]:
    """Clock times and ranges of them, raw: am/pm is settled once the window of the day is known."""
    clocks: list[Clock] = []
    for m in list(_CLOCK_RANGE.finditer(r.s)):
        if not (m["pre"] or m["mer1"] or m["mer2"]) or m["con"] in ("and", "y") and not m["pre"]:
            continue
        h1, h2 = int(m["h1"]), int(m["h2"])
        if h1 > 23 or h2 > 23:
            continue
        mer1 = _mer(m["mer1"])
        mer2 = _mer(m["mer2"])
        if mer2 and not mer1 and h1 <= 12:
            mer1 = mer2 if (h1 % 12) <= (h2 % 12) else ("am" if mer2 == "pm" else "pm")
        clocks.append(Clock(m.start(), h1, int(m["m1"] or 0), mer1, "after"))
        clocks.append(Clock(m.start() + 1, h2, int(m["m2"] or 0), mer2, "before"))
        r.blank(m.span())
    for m in list(_CLOCK.finditer(r.s)):
        clock = _clock(m, r)
        if clock:
            clocks.append(clock)
    return clocks


def _mer(text: str | None) -> str | None:
    return None if not text else ("am" if text.startswith("a") else "pm")


def _clock(m: re.Match[str], r: Reader) -> Clock | None:
    start, end = m.span()
    s = r.s
    if m["noon"]:
        midnight = "midnight" in m["noon"] or "medianoche" in m["noon"]
        hour, minute = (0, 0) if midnight else (12, 0)
        meridian: str | None = "am" if midnight else "pm"
        explicit = True
    else:
        hour = int(m["h"]) if m["h"].isdigit() else NUMBERS[m["h"]]
        minute = int(m["m"] or 0)
        meridian = _mer(m["mer"] or m["mer1"])
        explicit = bool(meridian or m["sep"] == ":" or m["hh"] or m["sep"] == "h")
        if m["m"] and not m["sep"] and not meridian:
            return None  # "930am" is a time, "1530" too ambiguous
        if hour > 23 or minute > 59 or (m["sep"] == "." and not meridian and hour > 12):
            return None
    words = not m["noon"] and not m["h"].isdigit()
    if not m["noon"] and re.match(r"\s+(?:minutes?\s+)?(?:past|to)\s+\d", s[end:]):
        return None  # the minutes of "10 past 4"
    before = _MINUTES_BEFORE.search(s[:start])
    if before and not m["noon"]:
        q = before["q"] or "half"
        amount = 15 if q == "quarter" else 30 if q == "half" else int(q)
        if before["dir"] in ("to", "til"):
            hour, minute = (hour - 1) % 24, 60 - amount
        else:
            minute = amount
        start = before.start()
        explicit = True
    later = _MINUTES_AFTER.match(s[end:])
    if later and not m["noon"]:
        plus, minus = later["plus"], later["minus"]
        if plus:
            minute = 30 if plus == "media" else 15 if plus == "cuarto" else int(plus)
        if minus:
            hour, minute = (hour - 1) % 24, 60 - (15 if minus == "cuarto" else int(minus))
        end += later.end()
        explicit = True
    suffix = _MERIDIAN_AFTER.match(s[end:])
    if suffix and not m["noon"]:
        part = suffix["es"] or suffix["en"] or ("noche" if suffix["night"] is not None else "tarde")
        meridian = "am" if part in ("manana", "madrugada", "morning") else "pm"
        if part in ("noche", "evening") and hour == 12:
            hour, meridian = 0, "am"
        end += suffix.end()
        explicit = True
    trigger = _TRIGGER.search(s[:start])
    if trigger:
        start = trigger.start()
    accepted = explicit or trigger or _NEXT_TO_DAY.search(s[:start]) or _ACCEPTS.match(s[end:])
    if not accepted or (words and not explicit and (not trigger or trigger["word"] in ("la", "las"))):
        return None  # "las dos opciones" is no time
    if words and (trigger and trigger["word"] == "to" or re.match(r"\s+(?:point|of|more|thing|time|day|or|another|"
                                                                 r"last)\b", s[end:])):
        return None  # "at one point", "talk to one of you"
    if m["h"] == "once" and not (trigger and "las" in trigger["word"]):
        return None  # English "at once"; Spanish eleven comes as "a las once"
    word = (trigger["word"] or "at") if trigger else "at"
    kind = ("after" if word.startswith(("from", "after", "since", "desde", "a partir", "despues", "any"))
            and "before" not in word else
            "before" if word.startswith(("by", "before", "until", "till", "til", "no later", "antes", "hasta"))
            or word.endswith("before") else "at")
    r.blank((start, end))
    return Clock(start, hour, minute, meridian, kind)


def _resolve(clock: Clock, hint: str | None, pm_below: int) -> time:
    """A clock on the 24-hour dial: its am/pm, else the window's, else business hours."""
    hour = clock.hour
    meridian = clock.meridian or (None if hour == 0 or hour > 12 else hint)
    if hour > 12 or (hour == 0 and clock.meridian is None):
        return time(hour % 24, clock.minute)
    if hour == 12 and clock.meridian is None:
        return time(12, clock.minute)
    if meridian == "am":
        return time(0 if hour == 12 else hour, clock.minute)
    if meridian == "pm" or (meridian is None and hour < pm_below):
        return time(12 if hour == 12 else hour + 12, clock.minute)
    return time(hour, clock.minute)


def times_of_day(clocks: list[Clock], window: tuple[time | None, time | None] | None,
                 pm_below: int) -> tuple[time | None, time | None, time | None]:
    """The exact time, window start and window end: clocks override the window they refine."""
    after, before = window or (None, None)
    hint = None
    if window:
        hint = "pm" if after and after >= time(12) else "am" if before and before <= time(12) else None
    at = None
    for clock in sorted(clocks, key=lambda c: c.pos):
        value = _resolve(clock, hint, pm_below)
        if clock.kind == "after":
            after = value
        elif clock.kind == "before":
            before = value
        else:
            at = value
    return at, after, before
