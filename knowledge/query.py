"""What a lead typed, made searchable: texting shorthand spelled out ("whats ur happy hr" -> "what is your happy
hour"), emoji and repeated punctuation dropped, and the content words a question is about (English and Spanish
stop words removed, a light stem so "deposits" finds "deposit" and "refundable" finds "refunded").

The embedding model and Postgres' full-text parser both read dictionary words: "hr" and "ur" are noise to them, so
a question in text-speak scores far below the same question spelled out. Nothing here knows a business."""

from __future__ import annotations

import re
import unicodedata

# whole-token shorthand, lower case; a token is letters/digits/apostrophes between non-word characters
SHORTHAND: dict[str, str] = {
    # English texting
    "u": "you", "ur": "your", "urs": "yours", "r": "are", "y'all": "you all", "yall": "you all",
    "whats": "what is", "wats": "what is", "wat": "what", "wht": "what", "hows": "how is", "wheres": "where is",
    "whens": "when is", "thats": "that is", "theres": "there is", "its": "it is", "im": "i am", "ive": "i have",
    "cant": "can not", "dont": "do not", "doesnt": "does not", "didnt": "did not", "wont": "will not",
    "isnt": "is not", "arent": "are not", "wanna": "want to", "gonna": "going to", "gotta": "got to",
    "hr": "hour", "hrs": "hours", "mins": "minutes", "wk": "week", "wks": "weeks",
    "wknd": "weekend", "wknds": "weekends", "wkend": "weekend", "yr": "year", "yrs": "years",
    "tmrw": "tomorrow", "tmr": "tomorrow", "tmrrw": "tomorrow", "tmro": "tomorrow", "tomoz": "tomorrow",
    "2moro": "tomorrow", "2day": "today", "tdy": "today", "tonite": "tonight", "2nite": "tonight",
    "thru": "through", "tho": "though", "b4": "before", "bc": "because", "cuz": "because", "coz": "because",
    "abt": "about", "w/": "with", "w/o": "without", "pls": "please", "plz": "please", "thx": "thanks",
    "ty": "thank you", "appt": "appointment", "appts": "appointments", "approx": "approximately",
    "info": "information", "ppl": "people", "bday": "birthday", "rn": "right now", "asap": "as soon as possible",
    "avail": "available", "msg": "message", "pic": "picture", "pics": "pictures", "num": "number",
    # Spanish texting
    "q": "que", "xq": "porque", "pq": "porque", "porq": "porque", "tb": "también", "tmb": "también",
    "tbn": "también", "dnd": "dónde", "xfa": "por favor", "porfa": "por favor",
    "pf": "por favor", "mñn": "mañana", "hrs.": "horas", "ntp": "no te preocupes", "msj": "mensaje",
}
TOKEN = re.compile(r"(?<![\w/'])[\w/']+(?![\w/'])")
# pictographs, dingbats, variation selectors and joiners: a "🍹" or "😩" is tone, not a word to look up
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D]+")
REPEATED = re.compile(r"([?!.])\1+")

STOP_WORDS = frozenset(re.findall(r"[a-z]+", """
a an the and or but if of to in on at for with from by about as into than then so too very just also even still
is are was were be been being am do does did done have has had having will would shall should can could may might must
i me my mine we our ours us you your yours he him his she her hers it its they them their theirs this that these those
there here what which who whom whose when where why how not no yes any some all each every more most much many lot lots
get got want need like know tell please hi hello hey thanks thank guys guy anyone someone something anything really
actually ok okay lol haha roughly maybe kind sort one ever again sure well going let make
y o u e ni de del la las el los un una unos unas al a en con por para sin sobre que quien como cuando donde cual cuales
cuanto cuanta cuantos cuantas es son ser soy eres esta estan estoy estas este estos esto eso esa ese hay tengo tiene
tienen tienes teneis tenemos mi mis tu tus su sus me te se nos os lo le les ya si no muy mas pero porque hola gracias
favor oye puedo puede pueden podeis podemos quiero quieres queria saber algo alguien alguno alguna algunos algunas
vosotros ustedes usted nosotros yo ella ellos ellas tambien aqui alli ahi bueno vale buenas buenos hiya howdy
"""))


def fold(text: str) -> str:
    """Lower case without accents."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def normalise(text: str) -> str:
    """The text with texting shorthand spelled out and emoji and repeated punctuation removed; other words are
    kept as typed (case included), so names and codes still match exactly."""
    text = REPEATED.sub(r"\1", EMOJI.sub(" ", text))

    def spell(match: re.Match[str]) -> str:
        word = match.group()
        base, owner = (word[:-2], word[-2:]) if word.lower().endswith("'s") else (word, "")
        return SHORTHAND[base.lower()] + owner if base.lower() in SHORTHAND else word

    return " ".join(TOKEN.sub(spell, text).split())


def stem(word: str) -> str:
    """A light stem shared by English and Spanish plurals and common endings: enough for "deposits"/"deposit",
    "refundable"/"refunded", "niños"/"niño", "cancellations"/"cancel"."""
    word = fold(word)
    for suffix in ("ations", "ation", "aciones", "acion", "ables", "able", "ibles", "ible", "ments", "ment", "ings",
                   "ing", "edly", "ed", "os", "as", "es", "s", "o", "a", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """The words a question is about, lower case with their accents (Postgres' parser keeps them), in order,
    without stop words, digits or one- and two-letter tokens ("do u guys have gluten free options" ->
    ["gluten", "free", "options"])."""
    seen: list[str] = []
    for word in re.findall(r"[^\W_]+", normalise(text).lower()):
        if len(word) >= 3 and fold(word) not in STOP_WORDS and not word.isdigit() and word not in seen:
            seen.append(word)
    return seen


def mentions(word: str, text: str) -> bool:
    """Whether `text` has `word` or a word with its stem ("deposit" in "Deposits and cancellations")."""
    root = stem(word)

    def same(other: str) -> bool:  # one stem starts the other: "vegan" / "veganas", "refund" / "refunded"
        shorter, longer = sorted((root, stem(other)), key=len)
        return shorter == longer or (len(shorter) >= 5 and longer.startswith(shorter))

    return any(w == fold(word) or same(w) for w in re.findall(r"[a-z0-9ñ]+", fold(text)))
