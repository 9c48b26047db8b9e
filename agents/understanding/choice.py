"""A reply bound to what was offered: yes / no, and which of the offered slots the lead picked.

`choose` returns an index only when exactly one offered slot fits what the lead said; anything ambiguous is None,
so the agent asks again instead of booking the wrong time. When a reply both denies and picks ("no, the second
one"), `choose` is the one to trust."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

_affirmation = (r"yes+|yep|yup|yeah|yea|ya|yas|ye|sure|ok+|okay|okey|k|kk|sounds good|sounds great|perfect|great|"
                r"awesome|cool|fine|good|book it|book me|that works|works|works for me|do it|go ahead|confirm(?:ed)?|"
                r"correct|absolutely|definitely|of course|please do|let'?s do (?:it|that)|alright|all right|"
                r"sí+|si+|vale|dale|perfecto|perfecta|de acuerdo|me va bien|me viene bien|reserva|resérvalo|"
                r"reservalo|reservá|confirmo|confirmado|genial|claro|por supuesto|listo|hecho|bueno|va|ok dale")
AFFIRM = re.compile(rf"^(?:(?:oh|um+|uh+|ah+|well|hi|hey|great|ok)\W+)?(?:{_affirmation})(?!\w)", re.I)
AFFIRM_EMOJI = re.compile("^\\W*[\U0001F44D\U0001F44C\u2705\u2714\U0001F64C]")
# no problem is a yes; remove it before looking for a "no"
NO_PROBLEM = re.compile(r"\b(?:no|not a)\s+(?:problem|prob|worries|worry)\b|\bsin problema\b|\bno hay problema\b",
                        re.I)
CHANGE = re.compile(r"\b(?:but|though|instead|rather|actually|what about|how about|can we|could we|can i|could i|"
                    r"different|another|other|change|prefer|wait|hold on|not|no|nope|"
                    r"pero|en vez|en lugar|mejor|otr[oa]|cambiar|prefiero|espera|aunque)\b", re.I)
DENY = re.compile(r"^(?:no+|nope|nah|na|nop|not that|not really|neither|none|no thanks|no thank you|negative|"
                  r"mejor no|ninguna|ninguno|tampoco|para nada|no gracias)(?!\w)|"
                  r"\b(?:none of (?:those|these|them|the)|neither (?:of|works|one)|different (?:time|day)|"
                  r"another (?:time|day)|other (?:time|day)|(?:doesn'?t|does not|don'?t|won'?t|wont) work|"
                  r"can'?t (?:make|do) (?:it|that|those|any)|no me (?:va|viene) bien|no puedo|otro d[íi]a|"
                  r"otra hora|ninguna de|no me sirve)\b", re.I)


def _plain(text: str) -> str:
    return " ".join(NO_PROBLEM.sub(" ", text).split()).strip(" ,.;:!-")


@lru_cache(maxsize=4096)
def affirms(text: str, language: str | None = None) -> bool:
    """Whether the reply is a plain yes ("sounds good", "dale", "👍"); a yes with a change or a question is not."""
    plain = _plain(text)
    if "?" in text or CHANGE.search(plain):
        return False
    if not plain:  # the whole reply was "no problem"
        return bool(NO_PROBLEM.search(text))
    return bool(AFFIRM.match(plain) or AFFIRM_EMOJI.match(plain))


@lru_cache(maxsize=4096)
def denies(text: str, language: str | None = None) -> bool:
    """Whether the reply turns down what was offered ("nope", "none of those", "mejor no", "otro día")."""
    return bool(DENY.search(_plain(text)))


ORDINALS = {
    0: r"first|1st|primer[oa]?|1[ºªao]",
    1: r"second|2nd|segund[oa]|2[ºªao]",
    2: r"third|3rd|tercer[oa]?|3[ºªao]",
    3: r"fourth|4th|cuart[oa]|4[ºªao]",
    4: r"fifth|5th|quint[oa]|5[ºªao]",
    -1: r"last|latest|later one|[úu]ltim[oa]|final",
}
_slot_word = r"(?:one|option|slot|time|choice|pls|please|opci[óo]n|hora|\W*$)"
ORDINAL = [(index, re.compile(
    rf"(?:\b(?:the|la|el|lo)\s+(?:{pattern})\b(?!\s+(?:of|de)\b)(?!\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|"
    rf"ene|abr|ago|dic)\w*)|\b(?:{pattern})\b\s*{_slot_word}|^\W*(?:{pattern})\W*$)", re.I))
    for index, pattern in ORDINALS.items()]
OPTION_NUMBER = re.compile(r"\b(?:option|opci[óo]n|number|n[úu]mero|#)\s*(\d)\b|#(\d)\b", re.I)
# "not thursday", "no el jueves": dropped before reading the choice ("no, the second one" keeps its "the second")
NEGATED = re.compile(r"\b(?:not|except|but not|menos|excepto)\s+(?:the\s+|el\s+|la\s+|on\s+)?[\wáéíóúñ:]+|"
                     r"\bno\s+(?:el|la|los|las)\s+[\wáéíóúñ:]+", re.I)

WEEKDAYS = {
    0: r"mon|mondays?|lunes", 1: r"tue|tues|tuesdays?|martes", 2: r"wed|weds|wednesdays?|mi[ée]rcoles",
    3: r"thu|thur|thurs|thursdays?|jueves", 4: r"fri|fridays?|viernes", 5: r"sat|saturdays?|s[áa]bados?",
    6: r"sun|sundays?|domingos?",
}
WEEKDAY = [(day, re.compile(rf"\b(?:{pattern})(?:'s|’s)?\b", re.I)) for day, pattern in WEEKDAYS.items()]
PERIODS = {  # hours of the day each part covers
    "morning": (re.compile(r"\bmorning\b|\bam one\b|\b(?:la|de la|por la)\s+ma[ñn]ana\b", re.I), range(0, 12)),
    "afternoon": (re.compile(r"\bafternoon\b|\b(?:la|de la|por la)\s+tarde\b", re.I), range(12, 18)),
    "evening": (re.compile(r"\bevening\b|\bnight\b|\btonight\b|\b(?:la|de la|por la)\s+noche\b", re.I), range(17, 24)),
}
DAY_OF_MONTH = re.compile(r"\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\b(?!\s*(?:one|option|slot|choice))|"
                          r"\b(?:el|el d[íi]a)\s+(\d{1,2})\b(?!\s*:)", re.I)
TIMES = re.compile(
    r"(?<![\d/:.-])(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.?|p\.m\.?|a|p|h|hs)?(?![\d/:-]|\w)", re.I)
NOON = re.compile(r"\bnoon\b|\bmediod[íi]a\b|\b12 del mediod[íi]a\b", re.I)
AFTERNOON_WORDS = re.compile(r"\b(?:de|por) la (?:tarde|noche)\b|\bin the (?:afternoon|evening)\b|\btonight\b", re.I)
MORNING_WORDS = re.compile(r"\b(?:de|por) la ma[ñn]ana\b|\bin the morning\b", re.I)
MONTH_BEFORE = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|ene|abr|ago|dic)[a-z]*\.?\s*$"
                          r"|\bde\s*$", re.I)
NOT_A_TIME = re.compile(r"^\s*(?:of us|people|ppl|persons?|personas?|adults?|kids|guests|st|nd|rd|th|"
                        r"days?|weeks?|d[íi]as?|semanas?|min|minutes?|minutos?|hours?|horas?|%)\b", re.I)


def _ordinal(text: str, count: int) -> int | None:
    found = {index for index, pattern in ORDINAL if pattern.search(text)}
    for match in OPTION_NUMBER.finditer(text):
        found.add(int(match.group(1) or match.group(2)) - 1)
    if len(found) != 1:
        return None
    index = found.pop()
    return index if -count <= index < count else None


def _times(text: str, offered: list[datetime]) -> list[set[int]]:
    """For each time the lead names, the offered slots at that time (hours without am/pm on a 12-hour clock)."""
    matches: list[set[int]] = []
    if NOON.search(text):
        matches.append({i for i, slot in enumerate(offered) if (slot.hour, slot.minute) == (12, 0)})
    pm_context, am_context = bool(AFTERNOON_WORDS.search(text)), bool(MORNING_WORDS.search(text))
    for match in TIMES.finditer(text):
        if NOT_A_TIME.match(text[match.end():]):
            continue
        hour, minute = int(match.group(1)), match.group(2)
        suffix = (match.group(3) or "").lower().rstrip(".")
        if hour > 23 or (minute is not None and int(minute) > 59):
            continue
        if not suffix and minute is None and not _looks_like_a_time(text, match):
            continue
        meridiem = "pm" if suffix.startswith("p") or pm_context else "am" if suffix.startswith("a") or am_context \
            else None
        if suffix in ("h", "hs"):
            meridiem = None
        if meridiem == "pm" and hour < 12:
            hour += 12
        elif meridiem == "am" and hour == 12:
            hour = 0

        on_24h_clock = meridiem is not None or hour > 12 or hour == 0
        at_hour = {i for i, slot in enumerate(offered)
                   if (slot.hour == hour if on_24h_clock else slot.hour % 12 == hour % 12)}
        wanted = int(minute) if minute is not None else 0
        exact = {i for i in at_hour if offered[i].minute == wanted}
        # "4" means 4:00, but when only 4:30 is on offer in that hour it can only mean that one
        matches.append(exact if exact or minute is not None else at_hour)
    return matches


def _looks_like_a_time(text: str, match: re.Match[str]) -> bool:
    """A bare number is a time after "at"/"a las"/"the", or in a short reply ("4 works", "5 pls")."""
    before = text[:match.start()].lower()
    if MONTH_BEFORE.search(before):
        return False  # "Dec 12" is a date
    if re.search(r"(?:\bat|@|\ba las|\blas|\bla de las|\bthe|\baround|\bby|\bfor|\bthe one at)\s*$", before):
        return True
    return len(re.findall(r"\w+", text)) <= 5 and 1 <= int(match.group(1)) <= 12


@lru_cache(maxsize=4096)
def _choose(text: str, offered: tuple[datetime, ...], language: str | None) -> int | None:
    slots = list(offered)
    cleaned = NEGATED.sub(" ", _plain(text))
    candidates = set(range(len(slots)))
    narrowed = False
    days = {day for day, pattern in WEEKDAY if pattern.search(cleaned)}
    if any(all(slot.weekday() != day for slot in slots) for day in days):
        return None  # a day with nothing on offer ("monday or friday"): not a pick among these
    if days:
        candidates &= {i for i, slot in enumerate(slots) if slot.weekday() in days}
        narrowed = True
    for match in DAY_OF_MONTH.finditer(cleaned):
        day = int(match.group(1) or match.group(2))
        on_day = {i for i, slot in enumerate(slots) if slot.day == day}
        if on_day or not match.group(1):  # "the 2nd" with nothing on the 2nd is a position in the list
            candidates &= on_day
            narrowed = True
            cleaned = cleaned.replace(match.group(0), " ", 1)
    for _, (pattern, hours) in PERIODS.items():
        if pattern.search(cleaned):
            candidates &= {i for i, slot in enumerate(slots) if slot.hour in hours}
            narrowed = True
    times = _times(OPTION_NUMBER.sub(" ", DAY_OF_MONTH.sub(" ", cleaned)), slots)
    if times:
        named = set().union(*times)
        if any(not found for found in times):
            return None  # a time that is not on offer: the lead is asking for something else
        candidates &= named
        narrowed = True
    ordered = sorted(candidates)  # ordinals count in the order the slots were offered
    ordinal = _ordinal(cleaned, len(ordered))
    if ordinal is not None:
        return ordered[ordinal]
    if narrowed:
        return ordered[0] if len(ordered) == 1 else None
    if len(slots) == 1 and affirms(text, language):
        return 0
    return None


def choose(text: str, offered: list[datetime], *, language: str | None = None) -> int | None:
    """The index in `offered` (timezone-aware local datetimes) of the slot the lead picked: an ordinal ("the
    second one", "la última"), a time or day that fits exactly one slot ("4 works", "friday's fine"), or a plain
    yes when one slot was offered. None when nothing or more than one slot fits."""
    if not offered:
        return None
    return _choose(text, tuple(offered), language)
