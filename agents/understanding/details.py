"""Contact details a lead gives in passing (name, email, phone) and an explicit head-count ("party of six").

Everything here is conservative: a detail is returned only when the text states it, because a wrong name or
a phantom party size written into the CRM is worse than asking again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from nameparser import HumanName


@dataclass(frozen=True)
class ContactDetails:
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None  # E.164

    def any(self) -> bool:
        """Whether the text carried at least one detail."""
        return any((self.first_name, self.last_name, self.email, self.phone))


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


EMAIL_CANDIDATE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)

# words that follow "I'm" / "soy" / "this is" without being a name, checked case-insensitively
NOT_A_NAME = _words("""
a an the i me my we you it its this that here there so very really just also still not no yes yeah ok okay
looking in at on from of for to with by about around near free busy available interested sure fine good great
well sorry new back calling writing texting messaging emailing trying wondering going coming running late early
ready glad happy sad worried stressed afraid scared allergic pregnant hungry home away out off over up down
hoping planning thinking asking reaching after before please thanks thank hi hello hey hola buenas buenos
monday tuesday wednesday thursday friday saturday sunday today tomorrow tonight morning afternoon evening
january february march april may june july august september october november december
urgent emergency interested calling customer client patient member owner guest new old local
and or but if when because with without who what where which how why
de del la el los las un una y o en con sin por para que muy bien mal aquí aqui nuevo nueva cliente
alérgico alérgica alergico alergica interesado interesada disponible embarazada libre tuya tuyo
lunes martes miércoles miercoles jueves viernes sábado sabado domingo hoy mañana manana
anyone someone somebody everyone nobody nothing us much curious confused unsure excited sick ill tired done
finished outside inside downstairs upstairs nearby close almost already currently actually only unable able
""")

WORD = r"[^\W\d_][^\W\d_'’.-]*(?:['’-][^\W\d_]+)*\.?"
CAPITAL = r"[A-ZÀ-ÖØ-Þ][^\W\d_]*(?:['’-][^\W\d_]+)*"
_any_words = rf"(?P<name>{WORD}(?:\s+{WORD}){{0,3}})"
_capital_words = rf"(?P<name>{CAPITAL}(?:\s+{CAPITAL}){{0,2}})"
_end = r"(?=\s*(?:$|[,.!?;:)\n-]|\s(?:from|here|with|at|and|y|de|del|aquí|aqui)\b))"

# (pattern, whether its name may be lower case, whether it is a Spanish phrasing); the phrasing is matched in any
# case, the name's capitals are checked word by word in _name_words
INTRODUCTIONS: tuple[tuple[re.Pattern[str], bool, bool], ...] = (
    (re.compile(rf"(?i:\b(?:my name is|my name's|my names|name is|name's))\s+{_any_words}"), True, False),
    (re.compile(rf"(?i:\b(?:me llamo|mi nombre es))\s+{_any_words}"), True, True),
    (re.compile(rf"(?i:\b(?:i'?m|i’m|i am))\s+{_capital_words}"), False, False),
    # "it's"/"this is" are too common to take any capitalised word after them: a greeting must come first, or
    # "here"/"from" after ("It's Broken" is not a name, "hi it's Jo" and "this is Jo from Acme" are)
    (re.compile(rf"(?i:\b(?:hi|hey|hello|hiya|morning)\W+(?:this is|it'?s|it’s))\s+{_capital_words}{_end}"),
     False, False),
    (re.compile(rf"(?i:\b(?:this is|it'?s|it’s))\s+{_capital_words}(?=\s+(?i:here|from)\b)"), False, False),
    (re.compile(rf"(?i:\bsoy)\s+{_capital_words}"), False, True),
    (re.compile(rf"^\s*(?i:(?:hi|hey|hello|hola|buenas)\W+)?{_capital_words}\s+(?i:here|aquí|aqui)\b"), False, False),
)
SIGN_OFFS = (
    re.compile(rf"(?:^|[\n.!?]|\s)\s*(?i:thanks|thank you|thx|ty|cheers|regards|best|best regards|kind regards|"
               rf"saludos|un saludo|gracias|muchas gracias|atentamente|cordialmente|abrazos)\s*[,!.]*\s*[-–—~]?\s*"
               rf"{_capital_words}\s*[.!]*\s*$"),
    re.compile(rf"(?:^|\n|\s)[-–—~]\s*{_capital_words}\s*[.!]*\s*$"),
)


@lru_cache(maxsize=4096)
def contact_details(text: str, *, region: str = "US") -> ContactDetails:
    """The name, email and phone (E.164) the lead states in `text`; `region` reads numbers without a country code."""
    first, last = _name(text, region)
    return ContactDetails(first_name=first, last_name=last, email=_email(text), phone=_phone(text, region))


def _email(text: str) -> str | None:
    for candidate in EMAIL_CANDIDATE.findall(text):
        try:
            return validate_email(candidate.strip(".'"), check_deliverability=False).normalized
        except EmailNotValidError:
            continue
    return None


def _phone(text: str, region: str) -> str | None:
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        if phonenumbers.is_valid_number(match.number):
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


def _name(text: str, region: str) -> tuple[str | None, str | None]:
    cleaned = EMAIL_CANDIDATE.sub(" ", text)
    possible = phonenumbers.Leniency.POSSIBLE
    for number in reversed(list(phonenumbers.PhoneNumberMatcher(cleaned, region, leniency=possible))):
        cleaned = cleaned[:number.start] + " " + cleaned[number.end:]
    # "Cheers, Mark - 0412 555 019", "Thanks, Priya (priya@x.com)": what is left after the details is the sign-off
    cleaned = re.sub(r"[\s\-–—~()\[\]:,;|/+]+$", "", cleaned)
    for pattern, lower_ok, spanish in INTRODUCTIONS:
        for match in pattern.finditer(cleaned):
            name = _name_words(match.group("name"), lower_ok)
            if name:
                return _split(name, spanish)
    for pattern in SIGN_OFFS:
        found = pattern.search(cleaned)
        if found and (name := _name_words(found.group("name"), False)):
            return _split(name, False)
    return None, None


def _name_words(phrase: str, lower_ok: bool) -> str | None:
    """The leading run of name-like words in `phrase` (stopping at the first common word)."""
    words: list[str] = []
    for word in phrase.split():
        bare = word.strip(".").lower()
        if bare in NOT_A_NAME or len(bare) < 2 or (not lower_ok and not word[0].isupper()):
            break
        if not words and len(bare) > 5 and bare.endswith("ing"):  # "I'm Having trouble", "I'm Calling about"
            break
        words.append(word.rstrip("."))
    return " ".join(words[:3]) or None


def _split(name: str, spanish: bool) -> tuple[str | None, str | None]:
    parsed = HumanName(name)
    parsed.capitalize(force=name.islower() or name.isupper())
    # Spanish names carry two surnames: "Ana García López" is Ana + García López, not a middle name
    last = " ".join(p for p in (parsed.middle, parsed.last) if p) if spanish else parsed.last
    return parsed.first or None, last or None


NUMBER_WORDS = {
    word: value
    for value, words in enumerate([
        (), ("one", "uno"), ("two", "dos"), ("three", "tres"), ("four", "cuatro"), ("five", "cinco"),
        ("six", "seis"), ("seven", "siete"), ("eight", "ocho"), ("nine", "nueve"), ("ten", "diez"),
        ("eleven", "once"), ("twelve", "doce"), ("thirteen", "trece"), ("fourteen", "catorce"),
        ("fifteen", "quince"), ("sixteen", "dieciséis", "dieciseis"), ("seventeen", "diecisiete"),
        ("eighteen", "dieciocho"), ("nineteen", "diecinueve"), ("twenty", "veinte"),
    ])
    for word in words
}
N = r"(\d{1,3}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
PEOPLE = (r"(?:people|ppl|persons?|guests?|adults?|kids?|children|child|pax|attendees|folks|seats?|spots?|tickets?|"
          r"units?|of us|personas?|adultos?|niños?|ninos?|niñas?|invitados?|asistentes|plazas|de nosotros)")
MEMBERS = (r"(?:adults?|kids?|children|child|babies|baby|toddlers?|teens?|seniors?|adultos?|niños?|ninos?|niñas?|"
           r"bebés?|bebes?|mayores)")
# what may follow a bare "for 6" / "para 4": the end, punctuation, or a word that is not a unit of time or money
AFTER_BARE = (r"(?=\s*(?:$|[,!?;)]|\.(?!\d)|\s(?:at|on|tonight|tomorrow|today|this|next|please|pls|plz|thanks|thx|"
              r"and|in|el|la|este|esta|hoy|mañana|a|por|porfa|gracias|y|en)\b))")
QUANTITY = (
    re.compile(rf"\b(?:party|group|grupo) (?:of|de) {N}\b", re.I),
    re.compile(rf"\b{N} {PEOPLE}\b", re.I),
    re.compile(rf"\b(?:we(?:'re| are|re|’re)|we(?:'ll| will) be|there(?:'ll| will) be|there are|somos|seremos|"
               rf"vamos a ser|seríamos|seriamos) {N}{AFTER_BARE}", re.I),
    re.compile(rf"\b(?:somos|seremos|we(?:'re| are)) {N}(?= (?:de familia|en (?:la )?familia|en total|in total|"
               rf"in the family|of us))", re.I),
    re.compile(rf"\b(?:for|para) {N}{AFTER_BARE}", re.I),
)
NOISE = (EMAIL_CANDIDATE, re.compile(r"https?://\S+|www\.\S+"), re.compile(r"\+?\d[\d ().-]{6,}\d"),
         re.compile(r"[$€£]\s*\d[\d,.]*|\d[\d,.]*\s*(?:[$€£]|dollars|bucks|euros|usd|eur)", re.I),
         re.compile(r"\d{1,2}[:.]\d{2}|\d{1,2}\s*(?:am|pm|a\.m\.|p\.m\.|h\b|hs\b)|\d{1,2}[/-]\d{1,2}", re.I))


@lru_cache(maxsize=4096)
def quantity(text: str) -> int | None:
    """How many people (or units) the lead states explicitly: "party of 6", "2 adults and 2 kids", "somos 5"."""
    cleaned = text
    for noise in NOISE:
        cleaned = noise.sub(" # ", cleaned)
    members = re.findall(rf"\b{N} {MEMBERS}\b", cleaned, re.I)
    if len(members) > 1:  # "2 adults and 2 kids": the party is the sum
        return sum(_number(n) for n in members) or None
    for pattern in QUANTITY:
        match = pattern.search(cleaned)
        if match and 0 < (value := _number(match.group(1))) <= 500:
            return value
    return None


def _number(token: str) -> int:
    return int(token) if token.isdigit() else NUMBER_WORDS[token.lower()]
