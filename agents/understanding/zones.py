"""The timezone a lead says they are in ("I'm in Chicago", "Pacific time", "EST", "hora de Madrid"), as an IANA
name. A small table of common cities, regions and abbreviations: it is geography, not business knowledge.

It reads text already folded by `when` (lower case, accents stripped, one character per input character), so the
spans it returns index the lead's original message."""

from __future__ import annotations

import re

# abbreviations name a zone on their own; DST variants map to the same zone (the zone knows when DST applies)
ABBREVIATIONS: dict[str, str] = {
    "est": "America/New_York", "edt": "America/New_York", "et": "America/New_York",
    "cst": "America/Chicago", "cdt": "America/Chicago", "ct": "America/Chicago",
    "mst": "America/Denver", "mdt": "America/Denver",
    "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles", "pt": "America/Los_Angeles",
    "aest": "Australia/Sydney", "aedt": "Australia/Sydney", "awst": "Australia/Perth",
    "acst": "Australia/Adelaide", "acdt": "Australia/Adelaide", "nzst": "Pacific/Auckland", "nzdt": "Pacific/Auckland",
    "gmt": "UTC", "utc": "UTC", "bst": "Europe/London", "cet": "Europe/Madrid", "cest": "Europe/Madrid",
}
# regions and cities need a cue ("X time", "I'm in X", "hora de X") so that "central" or "paris" in passing is no zone
PLACES: dict[str, str] = {
    "eastern": "America/New_York", "central": "America/Chicago", "mountain": "America/Denver",
    "pacific": "America/Los_Angeles", "new york": "America/New_York", "nyc": "America/New_York",
    "boston": "America/New_York", "miami": "America/New_York", "atlanta": "America/New_York",
    "toronto": "America/Toronto", "chicago": "America/Chicago", "dallas": "America/Chicago",
    "houston": "America/Chicago", "austin": "America/Chicago", "denver": "America/Denver",
    "phoenix": "America/Phoenix", "arizona": "America/Phoenix", "los angeles": "America/Los_Angeles",
    "san francisco": "America/Los_Angeles", "seattle": "America/Los_Angeles",
    "vancouver": "America/Vancouver", "mexico": "America/Mexico_City", "ciudad de mexico": "America/Mexico_City",
    "cdmx": "America/Mexico_City", "bogota": "America/Bogota", "lima": "America/Lima",
    "santiago": "America/Santiago", "buenos aires": "America/Argentina/Buenos_Aires",
    "argentina": "America/Argentina/Buenos_Aires", "caracas": "America/Caracas",
    "madrid": "Europe/Madrid", "barcelona": "Europe/Madrid", "valencia": "Europe/Madrid", "sevilla": "Europe/Madrid",
    "espana": "Europe/Madrid", "spain": "Europe/Madrid", "peninsular": "Europe/Madrid", "peninsula": "Europe/Madrid",
    "canarias": "Atlantic/Canary", "canary islands": "Atlantic/Canary", "las canarias": "Atlantic/Canary",
    "canaria": "Atlantic/Canary", "tenerife": "Atlantic/Canary", "las palmas": "Atlantic/Canary",
    "london": "Europe/London", "uk": "Europe/London", "dublin": "Europe/Dublin", "lisbon": "Europe/Lisbon",
    "lisboa": "Europe/Lisbon", "paris": "Europe/Paris", "berlin": "Europe/Berlin", "rome": "Europe/Rome",
    "sydney": "Australia/Sydney", "melbourne": "Australia/Melbourne", "brisbane": "Australia/Brisbane",
    "queensland": "Australia/Brisbane", "perth": "Australia/Perth", "adelaide": "Australia/Adelaide",
    "auckland": "Pacific/Auckland", "new zealand": "Pacific/Auckland", "nz": "Pacific/Auckland",
    "tokyo": "Asia/Tokyo", "singapore": "Asia/Singapore", "hong kong": "Asia/Hong_Kong", "dubai": "Asia/Dubai",
}
_PLACE = "|".join(sorted((re.escape(p) for p in PLACES), key=len, reverse=True))
_ZONE_CUES = [
    re.compile(rf"\b(?:i'?m|i am|we'?re|we are|im|based|living|located|estoy|estamos|vivo)\s+(?:in|en)\s+"
               rf"(?:the\s+)?(?P<place>{_PLACE})\b"),
    re.compile(rf"\b(?P<place>{_PLACE})\s+(?:time|timezone|time zone)\b"),
    re.compile(rf"\b(?:hora|horario)\s+(?:de\s+|del\s+|en\s+)?(?:la\s+)?(?P<place>{_PLACE})\b"),
    re.compile(r"\bhora\s+(?P<place>canaria|peninsular)\b"),
    re.compile(r"\b(?P<abbr>" + "|".join(ABBREVIATIONS) + r")\b"),
]


def zone_named(folded: str) -> tuple[str, tuple[int, int]] | None:
    """The IANA zone the folded text states and the span that stated it, or None."""
    for cue in _ZONE_CUES:
        found = cue.search(folded)
        if not found:
            continue
        if "abbr" in cue.groupindex:
            # "et"/"pt" are too short to read alone unless they sit next to a clock ("3pm ET")
            abbr = found["abbr"]
            if abbr in ("et", "pt", "ct") and not re.search(r"(\d|am|pm)\s*$", folded[: found.start()]):
                continue
            return ABBREVIATIONS[abbr], found.span()
        return PLACES[found["place"]], found.span()
    return None
