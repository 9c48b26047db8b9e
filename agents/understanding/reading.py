"""Reading a message once: folded to lower case without accents (one character per character, so spans index
the original), with the parts already read blanked out; and the words for days and numbers the readers share."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

DAYS = {"mon": 0, "monday": 0, "tue": 1, "tues": 1, "tuesday": 1, "wed": 2, "weds": 2, "wednesday": 2,
         "thu": 3, "thur": 3, "thurs": 3, "thursday": 3, "fri": 4, "friday": 4, "sat": 5, "saturday": 5,
         "sun": 6, "sunday": 6, "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4,
         "sabado": 5, "domingo": 6}
DAY = "|".join(sorted(DAYS, key=len, reverse=True))
NUMBERS = {"a": 1, "an": 1, "one": 1, "un": 1, "una": 1, "uno": 1, "two": 2, "dos": 2, "three": 3, "tres": 3,
            "four": 4, "cuatro": 4, "five": 5, "cinco": 5, "six": 6, "seis": 6, "seven": 7, "siete": 7,
            "eight": 8, "ocho": 8, "nine": 9, "nueve": 9, "ten": 10, "diez": 10, "eleven": 11, "once": 11,
            "twelve": 12, "doce": 12}
NUM = r"\d{1,3}|" + "|".join(sorted(NUMBERS, key=len, reverse=True))
HOURWORD = "|".join(sorted((w for w in NUMBERS if NUMBERS[w] > 1 or w in ("one", "una")), key=len,
                            reverse=True))
TOMORROW = r"tomorrow|tmrw|tmrrw|tmr|tmw|tomoz|2morrow|2moro|2mrw|tomorow|tommorow|tommorrow|manana"


def fold(text: str) -> str:
    """Lower case without accents, one character for each character of `text` (spans stay valid)."""
    return "".join(_fold_char(c) for c in text)


@lru_cache(maxsize=512)
def _fold_char(c: str) -> str:
    low = c.lower()
    if len(low) != 1:
        return c
    if low == "’":
        return "'"
    return unicodedata.normalize("NFD", low)[0] if low.isalpha() else low



class Reader:
    """The folded text with what has been read blanked out, and the spans that carried meaning."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.s = fold(text)
        self.spans: list[tuple[int, int]] = []

    def take(self, pattern: re.Pattern[str], keep: bool = True) -> list[re.Match[str]]:
        """Every match of `pattern`, blanked out so that no later rule reads it again."""
        found = list(pattern.finditer(self.s))
        for match in found:
            if match.group().strip():
                self.blank(match.span(), keep)
        return [m for m in found if m.group().strip()]

    def blank(self, span: tuple[int, int], keep: bool = True) -> None:
        """Blank a span out; `keep` it for the phrase unless it was noise (a phone number, a price)."""
        start, end = span
        self.s = self.s[:start] + " " * (end - start) + self.s[end:]
        if keep:
            self.spans.append(span)

    def phrase(self) -> str:
        """The words of the original text that carried meaning, in order."""
        merged: list[list[int]] = []
        for start, end in sorted(self.spans):
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return " ".join(self.text[a:b].strip() for a, b in merged)

