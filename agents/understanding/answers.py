"""Answers to a business's qualification questions, found in what a lead writes, before or after the question
is asked: "budget around 1.2M, already preapproved" answers "What budget?" (money) and "Are you pre-approved?"
(yes/no); "thinking of selling my condo" answers "buy, sell or rent?" (a select option).

Nothing here knows a business: a question is its text, its type and its options, all from configuration.
- `amount`: a sum of money only when written as one (a currency sign or word, or a magnitude: "1.2M", "900k",
  "900 mil", "1,2 millones"); "3 bed" or "for 6" is no budget.
- `option_in`: the option the lead's words name, by the option's own words and their inflections ("selling"
  names "sell"), across English and Spanish by a small lexicon of common words ("comprar" names "buy"); an
  option negated ("not buying, just selling") is not named.
- `yes_no`: the answer to a yes/no question whose subject the lead mentions ("already preapproved" -> yes,
  "todavía no tenemos preaprobación" -> no); the subject is matched by word stems, so the Spanish cognate of an
  English question's word counts.
- `sentence_on`: the sentence of a message that is about a free-text question (most of the question's own
  content words are in it: "No medical conditions or medications." answers "Any medical conditions or
  medications we should know about?")."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher

from agents.understanding.reading import fold
from knowledge.query import STOP_WORDS

_MONEY = re.compile(
    r"(?P<cur>[$€£]|usd|eur|gbp)?\s?(?P<n>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?)\s*"
    r"(?P<mag>k\b|m\b|mm\b|mil\b|grand\b|thousand\b|million(?:s)?\b|mill[oó]n(?:es)?\b|millones\b)?"
    r"(?P<cur2>\s*(?:€|\$|euros?\b|d[oó]lares\b|dollars?\b|bucks\b|pounds?\b|libras?\b))?", re.I)
_MAGNITUDE = {"k": 1_000, "mil": 1_000, "grand": 1_000, "thousand": 1_000, "m": 1_000_000, "mm": 1_000_000}

# common words of English and Spanish that name the same thing (language, not a business): a Spanish lead
# answers an option configured in English
LEXICON: dict[str, tuple[str, ...]] = {
    "buy": ("comprar", "compra", "compramos", "comprando", "adquirir"),
    "sell": ("vender", "venta", "vendo", "vendemos", "vendiendo"),
    "rent": ("alquilar", "alquiler", "alquilo", "arrendar", "rentar", "renta", "renting", "lease", "leasing"),
    "owner": ("propietario", "propietaria", "dueno", "duena", "own it", "we own", "i own", "homeowner"),
    "tenant": ("inquilino", "inquilina", "renting", "renter", "rent it", "i rent", "we rent"),
    "house": ("casa", "home", "chalet"),
    "yes": ("si", "yeah", "yep", "yup", "of course", "claro", "por supuesto"),
    "no": ("nope", "nah", "not really", "todavia no", "aun no", "not yet"),
    "other": ("otro", "otra", "something else", "otra cosa"),
    "first": ("primera", "primer", "primero"),
    # word families whose forms do not share a prefix (a noun and its verb): "me duele" says "dolor"
    "dolor": ("duele", "duelen", "doler", "dolores", "dolorido"),
    "pain": ("hurts", "hurting", "aching", "ache", "aches", "sore", "painful"),
    "limpieza": ("limpiar", "limpiarme", "limpien"),
    "revision": ("revisar", "revisarme", "revisen", "chequeo", "check up", "checkup"),
}
_NEGATION = re.compile(r"\b(not|no|never|nunca|non?|sin|don'?t|doesn'?t|isn'?t|aren'?t|haven'?t|hasn'?t|"
                       r"wasn'?t|won'?t|todavia\s+no|aun\s+no|ni)\b\W*"
                       r"(?:(?!just\b|but\b|only\b|rather\b|solo\b|sino\b|pero\b|mas\s+bien\b)\w+\W+){0,2}$")
# a question's own filler words, beside the stop words of search ("range" in "what budget range", "hoping")
_STOP = STOP_WORDS | frozenset(re.findall(r"\w+", """looking hoping work working range having interested planning
vuestra vuestro nuestra nuestro"""))
YES_VALUES = frozenset({"yes", "si", "true", "y"})
NO_VALUES = frozenset({"no", "false", "n"})


def amount(text: str) -> Decimal | None:
    """The one sum of money the text writes as money, or None (none, or several different ones)."""
    found: set[Decimal] = set()
    for m in _MONEY.finditer(fold(text)):
        if not (m["cur"] or m["cur2"] or m["mag"]):
            continue
        digits = m["n"]
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", digits):
            digits = digits.replace(",", "")
        else:
            digits = digits.replace(",", ".")
        try:
            value = Decimal(digits)
        except InvalidOperation:
            continue
        magnitude = (m["mag"] or "").lower()
        factor = _MAGNITUDE.get(magnitude) or (1_000_000 if magnitude.startswith(("million", "mill")) else 1)
        found.add(value * factor)
    if len(found) != 1:
        return None
    value = found.pop()
    return Decimal(int(value)) if value == value.to_integral_value() else value


# the inflections an option's word may carry in the lead's text: "sell" -> "selling", "shop" -> "shopping", "buyer"
_INFLECTION = r"(?:[a-z]?(?:ing|ed|ers|er|es|s))?"


def _words(text: str, hyphen: str = "") -> list[str]:
    """Folded words; a hyphen joins ("pre-approved" is "preapproved") or, for options, separates."""
    return re.findall(r"[a-z0-9']+", fold(text).replace("-", hyphen).replace("_", " "))


def _negated(said: str, start: int) -> bool:
    return bool(_NEGATION.search(said[:start]))


def _names(said: str, phrase: str) -> list[int]:
    """Where the words of `phrase` (or their inflections) occur in `said`, as start positions."""
    words = _words(phrase)
    if not words:
        return []
    pattern = r"(?<![a-z0-9])" + r"\W+".join(re.escape(w) + _INFLECTION for w in words) + r"(?![a-z0-9])"
    return [m.start() for m in re.finditer(pattern, said)]


def option_in(text: str, options: list[str]) -> list[str]:
    """The options the text names and does not negate, in the options' order."""
    said = " ".join(_words(text, " "))
    named = []
    for option in options:
        key = " ".join(_words(option, " "))
        phrases = [key, *LEXICON.get(key, ())]
        positions = [p for phrase in phrases for p in _names(said, phrase)]
        if positions and any(not _negated(said, p) for p in positions):
            named.append(option)
    return named


def _similar(a: str, b: str) -> bool:
    """Two words of one stem, or cognates ("preapproved" and "preaprobacion", "clinic" and "clinica")."""
    if a == b or (min(len(a), len(b)) >= 5 and (a.startswith(b) or b.startswith(a))):
        return True
    if min(len(a), len(b)) < 6:
        return False
    head = min(len(a), len(b), 9)
    return SequenceMatcher(None, a[:head], b[:head]).ratio() >= 0.75


def topic(question: str) -> list[str]:
    """The content words of a question (what it is about)."""
    return [w for w in _words(question) if len(w) >= 4 and w not in _STOP]


def _mentions(text: str, words: list[str]) -> list[int]:
    said = " ".join(_words(text))
    positions = []
    for m in re.finditer(r"[a-z0-9']+", said):
        if any(_similar(m.group(), w) for w in words):
            positions.append(m.start())
    return positions


def yes_no(text: str, question: str) -> bool | None:
    """True / False when the text speaks of the question's subject (yes unless negated), else None."""
    words = topic(question)
    positions = _mentions(text, words) if words else []
    if not positions:
        return None
    said = " ".join(_words(text))
    return not _negated(said, positions[0])


def is_yes_no(options: list[str]) -> bool:
    folded = {" ".join(_words(o)) for o in options}
    return len(folded) == 2 and bool(folded & YES_VALUES) and bool(folded & NO_VALUES)


def yes_no_option(options: list[str], value: bool) -> str:
    return next(o for o in options if " ".join(_words(o)) in (YES_VALUES if value else NO_VALUES))


def sentence_on(text: str, question: str) -> str | None:
    """The sentence of `text` about a free-text question: at least two of its content words, or its only one."""
    words = topic(question)
    if not words:
        return None
    for sentence in re.split(r"(?<=[.!?\n])\s+", text):
        hits = {w for w in words if any(_similar(t, w) for t in _words(sentence))}
        if len(hits) >= min(2, len(words)):
            return sentence.strip() or None
    return None


__all__ = ["LEXICON", "amount", "is_yes_no", "option_in", "sentence_on", "topic", "yes_no", "yes_no_option"]
