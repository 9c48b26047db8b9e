"""What a lead wants, for any business: generic intents in English and Spanish, plus the business's own
(configured custom intents with examples, services with synonyms).

Two signals decide: cue words (an action needs its words: "cancel", "anular", "reschedule", "cambiar la cita")
and MiniLM similarity to exemplars. A message that names a service of the business or a time counts as a cue
for booking. Cues win over similarity; similarity ranks among the cued intents and names the uncued ones.
A message can carry several requests ("do you have parking? and can I come friday at 3"): `segments` splits
it into its sentences and `classify` runs on each, so each gets its answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from knowledge.embedders import embedder_for
from knowledge.query import fold  # lower case without accents: "Miércoles" is "miercoles" to a texter

GENERIC: dict[str, list[str]] = {
    "greeting": ["hi", "hello there", "hey", "good morning", "hi, is anyone there?", "hola", "buenas",
                 "buenos días", "hola, ¿hay alguien?"],
    "thanks": ["thanks", "thank you so much", "great, thanks!", "perfect, thank you", "ok cool thanks", "cheers",
               "gracias", "muchas gracias", "perfecto, gracias"],
    "book": ["I'd like to book an appointment", "can I make a booking for Friday at 7pm", "book me in",
             "do you have availability tomorrow", "can someone come out on Thursday", "I need someone to come "
             "and look at it", "can I come in next week?", "do you have anything on Saturday morning",
             "quiero pedir cita", "¿tenéis hueco el jueves?", "me gustaría reservar", "¿puedo ir mañana?",
             "necesito que venga alguien el viernes"],
    "reschedule": ["can I move my appointment to Saturday", "I need to reschedule", "change my booking to a later "
                   "time", "push my appointment back an hour", "can we do another day instead",
                   "quiero cambiar mi cita", "¿podemos pasarla al viernes?", "necesito mover la reserva"],
    "cancel": ["cancel my appointment", "I need to cancel", "please cancel my booking", "we can't make it, cancel "
               "it", "call it off", "quiero anular la cita", "cancela mi reserva por favor", "no podré ir, anúlala"],
    "my_appointments": ["when is my appointment", "do I have a booking with you", "what time am I booked for",
                        "¿a qué hora es mi cita?", "¿tengo cita con vosotros?"],
    "pay": ["can you send me the invoice", "how do I pay my bill", "send me a payment link", "I want to pay the "
            "deposit", "how much do I owe", "can I buy a gift card", "quiero pagar", "¿cuánto debo?",
            "mándame el enlace de pago", "¿cómo pago la señal?"],
    "enquiry": ["I need a quote", "can you give me an estimate", "I'm interested in", "we're planning an event",
                "I'm thinking about selling my house", "looking to buy", "what would it cost to do this job",
                "necesito un presupuesto", "me interesa", "estamos pensando en", "quería información sobre"],
    # questions for the knowledge base: they compete with the actions above, so "what time do you open" is a
    # question, not a booking
    "question": ["what time do you open", "are you open on sundays", "do you have parking", "where are you located",
                 "how much does it cost", "what is your cancellation policy", "do you take card", "is it safe",
                 "how long does it take", "do you offer discounts", "¿a qué hora abrís?", "¿dónde estáis?",
                 "¿cuánto cuesta?", "¿aceptáis tarjeta?", "¿tenéis aparcamiento?", "¿cuánto tarda?"],
}
# the words of moving an appointment (stronger than a cancel's words in the same message: "can't make thursday,
# can you move me to friday?" moves it)
MOVE = (r"\b(reschedul|re-schedul|move (it|my|the|our|me|us)|move\b[^.?!]{0,25}\bto\b|moving|change (it|my|the|our)|"
        r"push|postpone|bring (it )?forward|cambiar|mover|pasar(la|lo)|pasar\w*\s+(al|a la|para)|aplazar|adelantar|"
        r"retrasar)")
# "buy" is a purchase only of something sold as such ("buy a gift card"; "looking to buy a house" is an enquiry)
PURCHASABLE = (r"(gift|e-?gift|voucher|membership|package|pack|plan|bundle|credit|session|subscription|pass|bono|"
               r"tarjeta|suscripci[oó]n|pase|paquete|sesi[oó]n)")
# an action needs its words: similarity alone must not turn a question into a booking or a cancellation
CUES: dict[str, re.Pattern[str]] = {
    "book": re.compile(r"\b(book|booking|reserv|appointment|appt|schedule|slot|availab|come (in|out|over|round|by)|"
                       r"pop in|visit|see (you|someone)|send someone|someone (to|come)|get (me )?in|fit (me|us) in|"
                       r"cita|reserv|hueco|disponib|agendar|pedir hora|venir|pasar(me)? (por|el|la|a)|"
                       r"necesito (un|una|que)|quiero (ir|venir)|"
                       r"(puedo|podemos|podr[ií]a|podr[ií]amos) (ir|venir|pasar)|can (i|we) come)", re.I),
    "reschedule": re.compile(rf"{MOVE}|\b(later|earlier|instead|different (time|day)|another (time|day)|otro d[ií]a|"
                             r"otra hora|m[aá]s tarde|m[aá]s temprano|en vez de)", re.I),
    "cancel": re.compile(r"\b(cancel|call (it )?off|can'?t make|cannot make|won'?t make|not (be )?(able to )?make it|"
                         r"anul|cancela|no (podr[eé]|puedo) (ir|venir)|no voy a poder)", re.I),
    "pay": re.compile(r"\b(pay|paying|payment|invoice|bill|deposit|owe|balance|gift ?card|voucher|"
                      r"sign (me|us) up|subscribe|membership|suscrib|apúntame|apuntame|"
                      r"pag(ar|o|ue)|factura|señal|deb(o|emos)|abonar|tarjeta regalo|bono)|"
                      rf"\b(buy|purchase|comprar|regalar)\s+(?:\w+\s+){{0,2}}?{PURCHASABLE}", re.I),
    "my_appointments": re.compile(r"\b((my|our) (appointment|booking|reservation|appt)s?\b.*\b(when|what time)|"
                                  r"(when|what time) is (my|our)|do (i|we) have (a|an) (booking|appointment)|"
                                  r"(mi|nuestra) (cita|reserva).*\b(cu[aá]ndo|qu[eé] hora)|"
                                  r"(cu[aá]ndo|a qu[eé] hora) es (mi|nuestra)|tengo (cita|reserva))", re.I),
    "enquiry": re.compile(r"\b(quote|estimate|pricing for|interested in|enquir|inquir|planning|thinking (about|of)|"
                          r"(information|info|details) (on|about)|learn more|find out (more|about)|"
                          r"looking (to|for)|consult|valuation|apprais|presupuesto|me interesa|interesad|"
                          r"informaci[oó]n sobre|estamos pensando|valoraci[oó]n|tasaci[oó]n)", re.I),
}
QUESTION_MARK = re.compile(r"\?|^\s*(what|where|when|how|do|does|is|are|can|could|which|who|why|qu[eé]|d[oó]nde|"
                           r"cu[aá]n|c[oó]mo|tien|ten[eé]is|hac[eé]is|aceptan|acept[aá]is)\b", re.I)
# a conditional question asks about the policy, not for the action: "any charge if I cancel?", "can we walk in
# without booking?", "¿se puede cambiar la cita sin coste?"
POLICY_QUESTION = re.compile(r"\b(if|without|in case|what happens|any charge|is there a fee|policy|allowed|"
                             r"si|sin|en caso|qu[eé] pasa|pol[ií]tica|se puede)\b", re.I)
# a time offered as a question is a booking request: "can u do monday 8am?", "would tuesday at 11 work?",
# "¿puede ser el lunes 30 a las 10?"
CAN_YOU = re.compile(r"^\W*(can|could|would|will)\s+(you|u|ya|we|i)\b|^\W*(me\s+)?(pod[eé]is|puede[ns]?|podr[ií]an?)\b|"
                     r"\b(work|works|suit|suits|possible|be ok|be okay|free|available)\W*$|"
                     r"\b(puede ser|podr[ií]a ser|(os|les|te) (viene|va) bien|est[aá]is libres?|hay hueco)\b", re.I)
INTENT_FLOOR = 0.40  # below this similarity to every exemplar, the message is a question for the knowledge base
# a new request starts after a sentence's end, at a line break (a burst of texts is joined by them), at "and
# also"/"plus", at "and"/"y" opening a question of its own ("how much is it and do you charge more on weekends",
# "¿cuánto cuesta? y ¿se puede financiar?"), and at a comma before a closing question ("cancel tmrw's appt, will i
# lose my deposit?")
QUESTION_START = (r"(?:(?:do|does|did|can|could|will|would|should)\s+(?:i|we|you|u|they|it|ya)|(?:is|are|was|were)\s+"
                  r"(?:there|it|you|u|this|that|they)|how|what|whats|what's|when|where|which|who|why|"
                  r"qu[eé]|cu[aá]nt[oa]s?|cu[aá]ndo|c[oó]mo|d[oó]nde|se puede|hay|ten[eé]is|tienen|pod[eé]is|"
                  r"pued[eo]|acept[aá]is|aceptan|hac[eé]is|atend[eé]is|ofrec[eé]is)\b")
SENTENCE = re.compile(r"(?<=[.!?\n])\s+|\s*\n+\s*|\s+(?:and also|also,|plus|y también|además)\s+|"
                      rf"\s+(?:and|y|e|&)\s+(?=¿?{QUESTION_START})|"
                      r",\s+(?=(?:(?:will|would|do|does|did|can|could)\s+(?:i|we|it)|(?:is|are)\s+(?:there|it))\b"
                      r"[^,.!?]*\?)", re.I)
# words that join a request to the one before: dropped, so "also is there parking" reads as the question it is
CONNECTOR = re.compile(r"^(?:(?:oh\s+)?and\s+also|(?:oh\s+)?and|also|plus|y\s+tambi[eé]n|y|e|adem[aá]s|tambi[eé]n)"
                       r"\b[\s,]*", re.I)


@dataclass(frozen=True)
class Intent:
    name: str  # a generic intent, or "custom"
    confidence: float
    custom: dict[str, Any] | None = None  # the configured intent, for "custom"
    service: str | None = None  # a service of the business the text names
    cued: bool = False  # the text has the intent's own words (or a configured example): it can start a task


@dataclass(frozen=True)
class Vocabulary:
    """The business's words: custom intents (name, examples, action) and services (name, synonyms)."""

    intents: tuple[dict[str, Any], ...] = ()
    services: tuple[dict[str, Any], ...] = ()
    key: str = field(default="", compare=True)

    @classmethod
    def of(cls, intents: Sequence[dict[str, Any]] = (), services: Sequence[dict[str, Any]] = ()) -> Vocabulary:
        key = repr(([(i.get("name"), tuple(i.get("examples") or ())) for i in intents],
                    [(s.get("name"), tuple(s.get("synonyms") or ())) for s in services]))
        return cls(tuple(intents), tuple(services), key)

    def __hash__(self) -> int:
        return hash(self.key)


def segments(text: str) -> list[str]:
    """The message's requests, one per sentence or joined question (short fragments stay with their neighbour).
    A request opened by "and"/"also"/"y" loses that word, and one that follows a question keeps asking: "¿cuánto
    cuesta? y se puede financiar" is two questions, the second read as "se puede financiar?"."""
    parts = [p.strip() for p in SENTENCE.split(text) if p and p.strip()]
    merged: list[str] = []
    for part in parts:
        if merged and len(merged[-1].split()) <= 2 and not re.search(r"[.!?:;]$", merged[-1]):
            merged[-1] = f"{merged[-1]}, {part}"  # "Hi, what's the HOA": a greeting's comma ends no request
            continue
        if merged and len(part.split()) <= 2:
            merged[-1] = f"{merged[-1]} {part}"
            continue
        bare = CONNECTOR.sub("", part)
        if bare != part and len(bare.split()) >= 2:
            asked = merged and merged[-1].rstrip().endswith("?")
            part = bare + "?" if asked and not re.search(r"[.!?]$", bare) else bare
        merged.append(part)
    return merged or [text]


def service_named(text: str, services: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The business's service the text names (by its name or a synonym), the longest match winning."""
    said = f" {fold(text)} "
    best: tuple[int, dict[str, Any]] | None = None
    for service in services:
        for word in [service.get("name") or "", *(service.get("synonyms") or [])]:
            folded = fold(word).strip()
            if len(folded) >= 3 and re.search(rf"(?<![a-z]){re.escape(folded)}(?:s|es)?(?![a-z])", said) \
                    and (best is None or len(folded) > best[0]):
                best = (len(folded), service)
    return best[1] if best else None


@lru_cache(maxsize=8)
def _generic_matrix() -> tuple[list[str], np.ndarray]:
    labels = [intent for intent, texts in GENERIC.items() for _ in texts]
    vectors = embedder_for("all-MiniLM-L6-v2").embed([t for texts in GENERIC.values() for t in texts])
    return labels, np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=64)
def _custom_matrix(vocabulary: Vocabulary) -> tuple[list[int], np.ndarray | None]:
    owners = [i for i, intent in enumerate(vocabulary.intents) for _ in intent.get("examples") or ()]
    texts = [t for intent in vocabulary.intents for t in intent.get("examples") or ()]
    if not texts:
        return [], None
    return owners, np.asarray(embedder_for("all-MiniLM-L6-v2").embed(texts), dtype=np.float32)


def _vector(text: str) -> np.ndarray:
    return np.asarray(embedder_for("all-MiniLM-L6-v2").embed([text])[0], dtype=np.float32)


def embed_segments(texts: Sequence[str]) -> None:
    """Embed a message's segments in one pass before `classify` reads them one by one (`_vector` then finds each
    in the embedder's memory of recent queries): one forward pass per message instead of one per sentence."""
    embedder = embedder_for("all-MiniLM-L6-v2")
    if len(texts) > 1 and hasattr(embedder, "embed_queries"):
        embedder.embed_queries(texts)


@lru_cache(maxsize=4096)
def classify(text: str, vocabulary: Vocabulary = Vocabulary(), timed: bool = False) -> Intent:
    """The intent of one request and a confidence in [0, 1]. `timed`: the text names a day or time (from
    `when`), which makes a booking likely when nothing else is asked."""
    service = service_named(text, vocabulary.services)
    service_name = service.get("name") if service else None
    query = _vector(text)
    owners, custom = _custom_matrix(vocabulary)
    if custom is not None:
        scores = custom @ query
        nearest = int(np.argmax(scores))
        if float(scores[nearest]) >= 0.62:  # close to the business's own example: its intent wins
            return Intent("custom", round(min(1.0, float(scores[nearest])), 3), vocabulary.intents[owners[nearest]],
                          service_name, cued=True)
    labels, matrix = _generic_matrix()
    best: dict[str, float] = {}
    for label, score in zip(labels, matrix @ query, strict=True):
        best[label] = max(best.get(label, -1.0), float(score))
    cued = [name for name, cue in CUES.items() if cue.search(text)]
    if "reschedule" in cued and "book" in cued and not re.search(
            r"\b(appointment|booking|reservation|appt|it|cita|reserva\w*|turno|la|lo)\b", text, re.I):
        cued.remove("reschedule")  # "can I book something later in the week" is a booking
    if "cancel" in cued and "reschedule" in cued and re.search(MOVE, text, re.I):
        cued.remove("cancel")  # "no puedo ir el jueves, ¿me la pasáis al viernes?" moves it
    if "enquiry" in cued and ("book" in cued or timed):
        cued.remove("enquiry")  # "can you do monday 8am for a quote": a visit at a time is a booking
    if cued:
        order = {"cancel": 0, "reschedule": 1, "my_appointments": 2, "pay": 3, "enquiry": 4, "book": 5}
        if "my_appointments" in cued and QUESTION_MARK.search(text) and not {"cancel", "reschedule"} & set(cued):
            return Intent("my_appointments", 0.85, None, service_name, cued=True)
        name = min(cued, key=lambda n: (order[n], -best.get(n, 0.0)))
        asks_more = best.get("question", 0) > best.get(name, 0) and name != "enquiry"
        if name in ("book", "cancel", "pay", "enquiry", "reschedule") and QUESTION_MARK.search(text) and not timed \
                and (asks_more or POLICY_QUESTION.search(text)):
            # (an enquiry with a question is both: "interested in X, how much is it?" is answered and qualified)
            name = "question"  # "can we walk in without booking?", "any charge if I cancel?" ask, they do not act
        return Intent(name, round(min(1.0, 0.6 + max(0.0, best.get(name, 0.4))), 3), None, service_name,
                      cued=name in CUES)
    if timed and (not QUESTION_MARK.search(text) or CAN_YOU.search(text) or service):
        return Intent("book", 0.8, None, service_name)  # "friday at 6 works", "monday at 10 for laser?": a booking
    ranked = sorted(((n, s) for n, s in best.items() if n not in CUES), key=lambda kv: -kv[1])
    (name, top), (_, second) = ranked[0], ranked[1]
    if top < INTENT_FLOOR:
        return Intent("book" if timed or (service and not QUESTION_MARK.search(text)) else "question",
                      round(min(1.0, max(0.0, 1 - top)), 3), None, service_name)
    confidence = min(1.0, max(0.0, (top - 0.3) / 0.5)) * (0.7 + 0.3 * min(1.0, (top - second) / 0.1))
    words = len(text.split())
    if name in ("greeting", "thanks") and (words > 6 or (QUESTION_MARK.search(text) and words > 4)):
        name = "question"  # "hi, do you do emergency call outs on weekends?" is a question with a hello
    return Intent(name, round(confidence, 3), None, service_name)
