"""The lead's language, sticky across short replies: "ok", "sí", "10am", "👍", a name or an email keep the language
the conversation was in; a message switches it only when lingua is confident.

Lingua runs in high-accuracy mode: low-accuracy mode (trigrams only) is documented as weak under ~120 characters
and measured so here ("the second one" -> Italian, "perfect" -> Spanish), while messages from leads are
mostly shorter than that. The detector is built once, lazily (about five seconds to load its models), and a
call then costs a fraction of a millisecond."""

from __future__ import annotations

import re
from functools import cache, lru_cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

SUPPORTED = ("en", "es", "fr", "pt", "de", "it")
# lingua's confidence (its values over the supported languages sum to 1) a message needs to change the language;
# below it the conversation keeps its language. 0.6 lets "gracias!" (0.70) and "ok thanks" (0.77) through and
# keeps "perfecto" (0.58), "la segunda" (0.56 Portuguese) and a name like "Jo Smith" (0.66 after the name rule)
SWITCH_CONFIDENCE = 0.6
MIN_LETTERS = 4  # "ok", "si", "no", "k": too short to say anything
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# common words that settle English against Spanish where lingua cannot be sure: a message of up to three words
# goes with the side that has more of them; a longer one needs VOTE_MARGIN more when lingua is unsure
KNOWN_WORDS = {
    "es": _words("""hola gracias buenas buenos muchas porfa vale quiero necesito tienen tiene puedo podemos
        mañana qué que cuándo cuando dónde donde cuánto cuanto ustedes usted también está esta estoy días tardes
        noches claro perfecto genial bueno cita hora precio el los las del por para con una es y mi mis pero
        hay algo nada sí muy casa ayuda"""),
    "en": _words("""hi hello hey thanks thank thx please pls what wat when where how the you your ur u r do does
        want need have got can could would tomorrow tmrw morning price great perfect awesome is it for on at my
        and any anything anyone there this that with are i im i'm we our help"""),
}
VOTE_MARGIN = 2
SPANISH_MARKS = re.compile(r"[¿¡ñÑ]")
NOT_WORDS = re.compile(r"\S+@\S+|https?://\S+|www\.\S+|[\d:.,/+#$€£%-]+(?:am|pm|h|hs)?\b", re.I)


@cache
def _detector(supported: tuple[str, ...]) -> LanguageDetector:
    languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in supported]
    return LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()


@lru_cache(maxsize=4096)
def detect(text: str, *, previous: str | None = None, supported: tuple[str, ...] = SUPPORTED) -> str:
    """The language (ISO 639-1) of `text`; a short or ambiguous message keeps `previous` (default "en")."""
    previous = previous or "en"
    words = re.findall(r"[^\W\d_]+", NOT_WORDS.sub(" ", text))
    letters = sum(len(w) for w in words)
    if letters < MIN_LETTERS or _is_a_name(words):
        return previous
    if SPANISH_MARKS.search(text) and "es" in supported:
        return "es"
    vote = _vote(words, supported)
    if len(words) <= 3 and vote[1] >= 1:
        return vote[0]
    values = {
        v.language.iso_code_639_1.name.lower(): v.value
        for v in _detector(tuple(supported)).compute_language_confidence_values(" ".join(words))
    }
    top = max(values, key=lambda lang: values[lang])
    if top == previous:
        return previous
    if top in ("pt", "it") and "es" in values and _second(values) == "es" and not _other_romance_marks(text) \
            and values[top] < 0.8:
        # lingua mistakes short Spanish for Portuguese or Italian ("la segunda" -> pt 0.56, es 0.38):
        # with none of their own letters and Spanish next, the two are read as one vote for Spanish
        top, values = "es", {**values, "es": values["es"] + values[top]}
        if top == previous:
            return previous
    if values[top] >= SWITCH_CONFIDENCE:
        return top
    return vote[0] if vote[1] >= VOTE_MARGIN else previous


def _vote(words: list[str], supported: tuple[str, ...]) -> tuple[str, int]:
    """The side (en/es) with more of its common words, and by how many."""
    lowered = [w.lower() for w in words]
    counts = sorted(((sum(w in vocabulary for w in lowered), lang) for lang, vocabulary in KNOWN_WORDS.items()
                     if lang in supported), reverse=True)
    if not counts:
        return "", 0
    if len(counts) == 1:
        return counts[0][1], counts[0][0]
    return counts[0][1], counts[0][0] - counts[1][0]


def _is_a_name(words: list[str]) -> bool:
    """One to three capitalised words that are not common words: a signature or a name given on request."""
    common = KNOWN_WORDS["en"] | KNOWN_WORDS["es"]
    return 0 < len(words) <= 3 and all(w[0].isupper() and w.lower() not in common for w in words) \
        and not all(w.isupper() for w in words)


def _second(values: dict[str, float]) -> str:
    return sorted(values, key=lambda lang: -values[lang])[1] if len(values) > 1 else ""


def _other_romance_marks(text: str) -> bool:
    """Letters Portuguese, French or Italian have and Spanish does not (ã õ ç â ê ô à è ù ì)."""
    return bool(re.search(r"[ãõçâêôàèùìîïëû]", text, re.I))
