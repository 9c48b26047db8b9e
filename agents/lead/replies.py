"""The lead agent's words in each language (replies.yaml), and times said the way a person of that language
says them (Babel's CLDR data): "Fri Nov 27 at 3 PM", "viernes 27 de noviembre a las 15:00"."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from babel.dates import format_date, format_datetime

DEFAULT_LANGUAGE = "en"
# the public emergency number by country (ISO 3166 alpha-2); 112 reaches emergency services from any mobile phone
# in most of the world, so it is the fallback
EMERGENCY_NUMBERS = {"US": "911", "CA": "911", "MX": "911", "AR": "911", "CO": "123", "CL": "131", "PE": "105",
                     "AU": "000", "NZ": "111", "GB": "999", "IE": "112", "IN": "112", "ZA": "10111"}


def emergency_number(country: str | None) -> str:
    return EMERGENCY_NUMBERS.get((country or "").upper(), "112")


@lru_cache(maxsize=1)
def _templates() -> dict[str, dict[str, str]]:
    data = yaml.safe_load((Path(__file__).with_name("replies.yaml")).read_text(encoding="utf-8"))
    return {key: dict(texts) for key, texts in data.items()}


def languages() -> set[str]:
    """The languages every template is written in."""
    return set.intersection(*(set(t) for t in _templates().values()))


def say(key: str, language: str | None, **values: Any) -> str:
    """A template in the lead's language (English when it has none), filled in."""
    texts = _templates()[key]
    text = texts.get(language or DEFAULT_LANGUAGE) or texts[DEFAULT_LANGUAGE]
    return text.format(**values)


def say_time(value: str | datetime, zone: str, language: str | None) -> str:
    """A slot's start in the lead's timezone and language."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    local = moment.astimezone(ZoneInfo(zone))
    if (language or DEFAULT_LANGUAGE) == "es":
        return format_datetime(local, "EEEE d 'de' MMMM 'a las' H:mm", locale="es")
    return local.strftime("%a %b %-d at %-I:%M %p").replace(":00 ", " ")


def say_day(value: date, language: str | None, weekday_only: bool = False) -> str:
    """A day ("Sunday", "Fri Dec 25"; "domingo", "viernes 25 de diciembre")."""
    locale = "es" if (language or DEFAULT_LANGUAGE) == "es" else "en"
    return format_date(value, "EEEE" if weekday_only else ("EEEE d 'de' MMMM" if locale == "es" else "EEE MMM d"),
                       locale=locale)


def join(items: list[str], language: str | None) -> str:
    """'a, b or c' / 'a, b o c'."""
    if len(items) <= 1:
        return "".join(items)
    word = " o " if (language or DEFAULT_LANGUAGE) == "es" else " or "
    return ", ".join(items[:-1]) + word + items[-1]
