"""What a message signals beyond its request: stop/start messaging, how the lead feels, whether it is a complaint,
"are you a bot?", "let me talk to a person", and urgency. English and Spanish; generic words only (a business adds
its own urgent terms through configuration)."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

LEXICON_ES = Path(__file__).with_name("lexicon_es.txt")


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


_messages = r"(?:texts?|messages?|msgs?|sms|emails?|e-mails?|calls?|spam|marketing|promos?|notifications?)"
_contact = (r"(?:text\w*|messag\w*|msg|sms|contact\w*|email\w*|e-mail\w*|call\w*|spam\w*|writ\w*|send\w*|"
            r"bug\w*|bother\w*)")
# carrier keywords (the same set services/crm.py's OPT_OUT records) said as the whole message
OPT_OUT_KEYWORD = re.compile(r"^\W*(?:stop|stopall|stop all|unsubscribe|cancel|end|quit|opt[ -]?out|"
                             r"baja|alto)\W*$", re.I)
OPT_OUT = _any(
    r"\bya no me (?:mand|envi|enví|escrib|contact)\w*\b", r"\bno me (?:mand|envi|enví|escrib)\w+ m[aá]s\b",
    r"\bunsubscribe\b", r"\bopt(?:ing)?[ -]?out\b",
    rf"\b(?:stop|quit|cease)\s+{_contact}(?:\s+(?:me|us)\b)?",
    r"(?:^|[.!,;]\s*)(?:please |pls |plz )?stop(?: it)?(?: please| pls| now)?\W*$",
    rf"\b(?:don'?t|do not|dont|never)\s+(?:ever\s+)?{_contact}\s+(?:me|us|this number)\b"
    r"(?=\s*(?:again|anymore|any more|ever|please|pls)\b|\W*$)",
    r"\b(?:remove|take|delete|erase)\s+(?:me|us|my\s+(?:number|name|email|details|info|data))\s+"
    r"(?:from|off|out of)\s+(?:your|the|this|ur|all)?\s*(?:\w+\s+)?(?:list|lists|database|contacts|system)\b",
    rf"\bno more\s+{_messages}", r"\bleave me alone\b",
    rf"\b(?:i\s+)?(?:don'?t|do not|dont)\s+want\s+(?:to\s+(?:get|receive)\s+)?(?:any\s*more|more|any|your|these)?"
    rf"\s*{_messages}",
    # Spanish
    r"\bno\s+(?:me|nos)\s+(?:escrib|mand|envi|contact|llam|molest)\w*\s+(?:\w+\s+)?(?:más|mas)\b",
    r"\b(?:deja|dejad|dejen|deje|dejar|para|paren|parad|pare)\s+de\s+"
    r"(?:mand|envi|escrib|contact|llam|molest|spame)\w*",
    r"\b(?:dar(?:me|nos)?|den(?:me|nos)|d[ée](?:me|nos)|me doy|darse|quiero la)\s+(?:de\s+)?baja\b",
    r"\bno\s+quiero\s+(?:recibir|que\s+me\s+(?:manden|envíen|envien|escriban))\s+(?:\w+\s+)?"
    r"(?:mensajes|sms|correos|emails|nada|más|mas)",
    r"\bno\s+(?:más|mas)\s+(?:mensajes|sms|correos|llamadas)\b",
    r"\b(?:s[áa]qu|s[áa]c|qu[íi]t|borr)\w*\s+de\s+(?:la|su|vuestra|tu|esta)?\s*lista\b",
    r"\bd[ée]j(?:ame|adme|enme|eme)\s+en\s+paz\b",
)
OPT_IN = _any(
    r"^\W*(?:start|unstop|resubscribe|subscribe|yes start|alta)\W*$", r"\bre-?subscribe\b", r"\bopt(?:ing)?[ -]?in\b",
    r"\b(?:start|resume)\s+(?:texting|messaging|sending)\s+(?:me|us)\b(?:\s+again)?",
    r"\b(?:you can|u can|please)\s+(?:text|message|contact)\s+me\s+again\b",
    r"\bi\s+want\s+to\s+(?:get|receive)\s+(?:your\s+)?(?:texts|messages)\s+again\b",
    r"\b(?:dar(?:me|nos)?|den(?:me|nos)|d[ée](?:me|nos))\s+de\s+alta\b",
    r"\bquiero\s+volver\s+a\s+recibir\b", r"\bvolver\s+a\s+(?:suscribirme|darme de alta)\b",
)


@lru_cache(maxsize=4096)
def opts_out(text: str) -> bool:
    """Whether the lead asks us to stop messaging them ("STOP", "take me off your list", "no me escriban más")."""
    return bool(OPT_OUT_KEYWORD.match(text) or OPT_OUT.search(text))


@lru_cache(maxsize=4096)
def opts_in(text: str) -> bool:
    """Whether the lead asks to receive messages again ("START", "resubscribe", "quiero volver a recibir mensajes")."""
    return bool(OPT_IN.search(text)) and not opts_out(text)


# Spanish words that steer VADER's English rules: negators, boosters and "but"
ES_FUNCTION_WORDS = {"nunca": "never", "jamás": "never", "jamas": "never", "tampoco": "neither", "ni": "nor",
                     "muy": "very", "muchísimo": "extremely", "muchisimo": "extremely", "súper": "super",
                     "super": "super", "bastante": "quite", "realmente": "really", "totalmente": "totally",
                     "tan": "so", "demasiado": "extremely", "un poco": "slightly", "algo": "somewhat",
                     "pero": "but", "sin embargo": "but"}


@cache
def _analyzer(language: str) -> SentimentIntensityAnalyzer:
    """One analyzer per language: English as shipped; Spanish with lexicon_es.txt layered over it."""
    analyzer = SentimentIntensityAnalyzer()
    if language == "es":
        for line in LEXICON_ES.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                word, score = line.split("\t")[:2]
                analyzer.lexicon[word] = float(score)
    return analyzer


@cache
def _es_phrases() -> re.Pattern[str]:
    phrases = [w for w in _analyzer("es").lexicon if "_" in w] + [w for w in ES_FUNCTION_WORDS if " " in w]
    spaced = sorted((p.replace("_", " ") for p in phrases), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, spaced)) + r")\b", re.I)


def _spanish_for_vader(text: str) -> str:
    text = _es_phrases().sub(lambda m: m.group(1).lower().replace(" ", "_"), text)
    text = re.sub(r"[¿¡]", " ", text)
    words = [ES_FUNCTION_WORDS.get(w.lower().replace("_", " "), w) for w in text.split()]
    return " ".join(words)


@lru_cache(maxsize=4096)
def sentiment(text: str, language: str) -> float:
    """How the lead feels, in [-1, 1] (VADER's compound score; Spanish through lexicon_es.txt)."""
    language = "es" if language == "es" else "en"
    scored = _spanish_for_vader(text) if language == "es" else text
    return float(_analyzer(language).polarity_scores(scored)["compound"])


# A complaint is negative *and* aimed at the business: a lead who is sad or worried about their own problem
# ("it broke and I'm so stressed") scores as negative as an angry one, so sentiment alone cannot decide.
COMPLAINT_THRESHOLD = -0.4
COMPLAINT_PHRASES = _any(
    r"\b(?:i\s+)?(?:want|wanna|would like|need|'d like)\s+to\s+(?:make\s+a\s+|file\s+a\s+|lodge\s+a\s+)?complain",
    r"\b(?:make|file|lodge|submit|raise)\s+a\s+(?:formal\s+)?complaint\b", r"\bformal complaint\b",
    r"\brefund\b", r"\bmoney back\b", r"\bchargeback\b",
    # dissatisfaction with what was done: the work failed, or the lead paid for nothing
    r"\b(?:not|never) (?:happy|satisfied|impressed) (?:at all|with)\b", r"\bnot happy at all\b",
    r"\b(?:paid|pagu[ée])\b.{0,40}\b(?:for nothing|para nada|and (?:it|nothing))\b",
    r"\b(?:hasn'?t|has not|didn'?t|did not|isn'?t|is not)\s+work(?:ed|ing)?\b.{0,60}\b(?:paid|annoyed|angry|upset)\b",
    r"\b(?:really|very|so|super)\s+(?:annoyed|upset|unhappy)\b", r"\bleft (?:a|such a) mess\b",
    r"\b(?:i am|i'?m|we are|we'?re)\s+(?:so\s+|really\s+|absolutely\s+)?"
    r"(?:furious|livid|outraged|appalled|disgusted)\b",
    r"\b(?:is|came|come) back after\b.{0,30}\b(?:days?|weeks?)\b.{0,60}\b(?:not happy|paid|annoyed)\b",
    r"\b(?:poner|presentar|hacer)\s+una\s+(?:queja|reclamación|reclamacion)\b", r"\bquiero\s+(?:quejarme|reclamar)\b",
    r"\b(?:hoja de )?reclamaci[oó]n(?:es)?\b", r"\breembolso\b", r"\bdevolu?ci[oó]n de(?:l| mi) dinero\b",
    r"\bdevu[ée]lvanme\b",
)
AIMED_AT_BUSINESS = _any(
    # verdicts on an experience
    r"\b(?:worst|unacceptable|ridiculous|disgraceful|disgrace|scam|rip-?off|ripped off|unprofessional|incompetent|"
    r"rude|useless|never again|joke of a|shame on you|how dare)\b",
    # anger and disappointment point at someone; sadness and worry need not
    r"\b(?:angry|furious|livid|outraged|fed up|pissed|disappointed|disgusted|appalled)\b",
    r"\b(?:service|experience|customer service|servicio|atenci[oó]n|experiencia)\b",
    r"\b(?:your|the|ur)\s+(?:service|staff|team|company|business|people|employees?|customer service|support|"
    r"work|receptionist|manager|place)\b",
    r"\b(?:you|u|y'?all|you guys|they)\s+(?:never|didn'?t|did not|failed|forgot|ruined|lied|ignored|overcharged|"
    r"charged|messed|screwed|cancell?ed|stood|no-?showed|were late|are (?:terrible|awful|useless|a joke))\b",
    r"\bnever (?:showed|turned) up\b", r"\bno[- ]show\b",
    r"\b(?:pésim[oa]s?|pesim[oa]s?|peor(?:es)?|vergüenza|verguenza|estafa\w*|timo|nunca más|nunca mas|inaceptable|"
    r"indignante|lamentable|impresentable|incompetentes?|maleducad[oa]s?|groser[oa]s?|ridícul[oa]|ridicul[oa])\b",
    r"\b(?:enfadad|enojad|indignad|furios|hart|decepcionad|cabread|molest)[oa]s?\b",
    r"\b(?:su|vuestro|vuestra|el|la)\s+(?:servicio|atención|atencion|personal|empresa|equipo|"
    r"trabajo)\b", r"\b(?:ustedes|vosotros)\b",
    r"\bnunca\s+(?:vinieron|vino|llegaron|llegó|llego|aparecieron|apareció|contestaron|llamaron)\b",
    r"\bno\s+(?:vinieron|aparecieron|se presentaron|contestaron|cumplieron)\b",
)


@lru_cache(maxsize=4096)
def is_complaint(text: str, language: str) -> bool:
    """Whether the lead complains about the business: a complaint phrase, or sentiment <= COMPLAINT_THRESHOLD
    with words aimed at the business or its service (not a lead who is merely sad or worried)."""
    if COMPLAINT_PHRASES.search(text):
        return True
    return sentiment(text, language) <= COMPLAINT_THRESHOLD and bool(AIMED_AT_BUSINESS.search(text))


_machine = (r"(?:bot|robot|chat\s?bot|ai|a\.i\.?|machine|computer|program|automated|auto-?reply|"
            r"real|human|person|real person|actual person|live person|someone real)")
ASKS_IF_BOT = _any(
    rf"\b(?:are|r)\s+(?:you|u|ya)\s+(?:a\s+|an\s+)?{_machine}\b",
    rf"\bis\s+(?:this|that|it)\s+(?:a\s+|an\s+)?(?:real\s+|actual\s+)?{_machine}\b",
    rf"\b(?:am i|i'?m|r i|are we)\s+(?:talking|speaking|chatting|texting|messaging)\s+(?:to|with)\s+"
    rf"(?:a\s+|an\s+)?(?:real\s+|actual\s+)?{_machine}\b",
    r"\b(?:human|person|real)\s+or\s+(?:a\s+|an\s+)?(?:bot|robot|ai|machine|computer)\b",
    r"\b(?:bot|robot|ai|machine)\s+or\s+(?:a\s+)?(?:human|person|real)\b",
    r"\bis\s+(?:anyone|somebody|someone)\s+(?:real|actually)\b",
    # Spanish
    r"\b(?:eres|sos|es usted|es esto|esto es|son ustedes)\s+(?:un|una)?\s*(?:bot|robot|máquina|maquina|ia|i\.a\.|"
    r"persona|humano|humana|real|contestador|programa|automático|automatico)\b",
    r"\b(?:hablo|estoy hablando|hablando|estoy chateando|escribo)\s+con\s+(?:un|una)?\s*(?:bot|robot|máquina|maquina|"
    r"ia|inteligencia artificial|persona real|humano|contestador)\b",
)
_person = (r"(?:(?:a|an|some|the|your|ur)\s+)?(?:real\s+|actual\s+|live\s+)?(?:person|human|someone|somebody|"
           r"manager|supervisor|owner|staff|representative|rep|agent|operator|receptionist|employee|team member|boss)")
_staff = (r"(?:(?:a|an|the|your|ur)\s+)?(?:(?:real|actual|live)\s+(?:person|human|someone|somebody)|person|human|"
          r"manager|supervisor|representative|rep|operator|receptionist|employee|team member|staff member|staff|"
          r"someone (?:from|on) (?:your|the) team|boss)")
WANTS_HUMAN = _any(
    rf"\b(?:talk|speak|chat)\s+(?:to|with)\s+{_person}\b",
    # "need someone to look at the tap" asks for the service, not for a person to talk to
    rf"\b(?:want|need|get|give|put|connect|transfer|pass)\s+(?:me\s+)?(?:to\s+|with\s+|through\s+to\s+)?{_staff}\b"
    r"(?!\s+(?:to|who|that|out|over|round)\b(?!\s+(?:talk|speak|chat|call)))",
    r"\bis there\s+(?:a|an)\s+(?:real\s+|actual\s+|live\s+)?(?:person|human|someone|representative|manager|"
    r"agent|operator)\b",
    r"^\W*(?:human|agent|representative|operator|person|manager)\s*(?:please|pls|plz)?\W*$",
    # Spanish
    r"\bp[áa]s(?:ame|eme|enme|adme|a|e)\s+con\b",
    r"\b(?:hablar|habla|comunicarme|comunicar)\s+con\s+(?:alguien|una persona|un humano|un agente|el encargado|"
    r"la encargada|un encargado|el gerente|la gerente|recepción|recepcion|el responsable|el dueño|la dueña|"
    r"una persona real|un empleado|el jefe)\b",
    r"^\W*con\s+(?:recepción|recepcion|alguien|una persona|el encargado|la encargada)\b",
    r"\b(?:quiero|necesito)\s+(?:una persona|un humano|alguien real|un agente|una persona real)\b",
)


# someone by name (case-sensitive: a capitalised name, or a title before one)
NAMED_PERSON = re.compile(r"\b(?:[Tt]alk|[Ss]peak|[Cc]hat|[Pp]ut me through|[Tt]ransfer me|[Hh]ablar)\s+"
                          r"(?:to|with|con)\s+"
                          r"(?:(?:[Dd]r\.?|[Dd]octor|[Dd]ra\.?|[Mm]r\.?|[Mm]s\.?|[Mm]rs\.?|el|la)\s+)?[A-ZÁÉÍÓÚÑ][a-záéíóúñ]+\b")


# what a lead may stop without leaving the conversation: marketing, not the business's replies
PROMOTIONS_ONLY = re.compile(r"\b(promos?|promotions?|promotional|marketing|newsletters?|offers|deals|ads|"
                             r"promociones|publicidad|ofertas|bolet[ií]n)\b", re.I)


def promotions_only(text: str) -> bool:
    """Whether an opt-out names marketing only ("stop sending me promos, but when do you open?"): the lead
    leaves the campaigns, not the conversation."""
    return bool(PROMOTIONS_ONLY.search(text))


@lru_cache(maxsize=4096)
def asks_if_bot(text: str) -> bool:
    """Whether the lead asks if they are talking to a machine ("are you a bot?", "¿hablo con una máquina?")."""
    return bool(ASKS_IF_BOT.search(text)) and not wants_human(text)


@lru_cache(maxsize=4096)
def wants_human(text: str, team: tuple[str, ...] = ()) -> bool:
    """Whether the lead asks to be put through to a person ("get me a manager", "pásame con alguien", "can I
    speak to Dave?", "put me through to Dr Khan"); a member of the business's `team` is recognised by name in
    any case ("can i talk to dave directly")."""
    if WANTS_HUMAN.search(text) or NAMED_PERSON.search(text):
        return True
    names = "|".join(re.escape(n) for n in team if len(n) >= 2)
    return bool(names) and bool(re.search(
        r"\b(?:talk|speak|chat|put me through|transfer me|hablar|p[aá]same|p[aá]sa?me|ponme)\s+(?:to|with|con)?\s*"
        rf"(?:(?:dr\.?|doctor|dra\.?|mr\.?|ms\.?|mrs\.?|el|la)\s+)?(?:{names})\b", text, re.I))


# Generic urgency only: any business can be in an emergency (a leak, sudden pain, a lost key); its own terms
# ("no hot water", "broken crown") come from its configuration as `extra`.
URGENT = {
    "en": _any(r"\bemergenc(?:y|ies)\b", r"\burgent(?:ly)?\b", r"\basap\b", r"\ba\.s\.a\.p\b", r"\bimmediately\b",
               r"\b(?:need|needs|want|come|get|help|send|fix|see)\b[^.?!]{0,40}\bright (?:now|away)\b",
               r"\bright now\s*!", r"\bflood(?:ing|ed|s)?\b", r"\bbleed(?:ing|s)?\b", r"\bblood everywhere\b",
               r"\bcan'?t breathe\b", r"\bcannot breathe\b", r"\bcan not breathe\b",
               r"\b(?:severe|excruciating|unbearable|terrible|extreme)\s+pain\b", r"\bin (?:so much|a lot of) pain\b",
               r"\bswollen\b", r"\bswelling\b", r"\bsmells?\s+(?:like\s+|of\s+)?gas\b", r"\bgas leak\b",
               r"\bon fire\b", r"\bunconscious\b", r"\bchest pain\b", r"\bhelp\s*!{2,}",
               r"\b(?:pouring|gushing|spraying|streaming|leaking)\b[^.?!]{0,30}\b(?:through|everywhere|into)\b",
               r"\ballergic reaction\b", r"\banaphyla\w+", r"\bcan'?t stop\b[^.?!]{0,20}\b(?:bleeding|leaking)\b"),
    "es": _any(r"\burgencias?\b", r"\burgentes?\b", r"\bemergencias?\b", r"\bcuanto antes\b", r"\bcuánto antes\b",
               r"\blo (?:antes|más pronto|mas pronto) posible\b", r"\bya mismo\b",
               r"\b(?:necesito|necesitamos|vengan|venga|ven)\b[^.?!]{0,40}\bahora mismo\b",
               r"\bme duele\s+(?:much[íi]simo|un mont[óo]n|demasiado|horrores|un huevo)\b",
               r"\bdolor\s+(?:muy\s+)?(?:fuerte|intenso|insoportable|severo|terrible)\b",
               r"\bhinchad[oa]s?\b", r"\bhinchaz[óo]n\b", r"\bsangr(?:a|an|ando|e)\b", r"\bsangrado\b",
               r"\binundaci[óo]n\b", r"\binundad[oa]s?\b", r"\bse (?:está |esta )?inundando\b",
               r"\bno puedo respirar\b", r"\b(?:huele|olor)\s+a\s+gas\b", r"\bfuga de gas\b", r"\bincendio\b"),
}
NOT_URGENT = _any(r"\b(?:not|isn'?t|is not|nothing|no)\s+(?:an?\s+|that\s+|too\s+|very\s+)?(?:urgent|emergency)\b",
                  r"\bno (?:rush|hurry)\b", r"\bno\s+(?:es|hay)\s+(?:nada\s+)?(?:urgente|prisa|emergencia)\b",
                  r"\bnada urgente\b", r"\bsin prisa\b")


@lru_cache(maxsize=4096)
def is_urgent(text: str, language: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether the lead reports an emergency or urgent need. Generic terms for `language` (English ones are always
    checked too: "asap" and "urgent" cross languages), plus the business's own `extra` phrases."""
    cleaned = NOT_URGENT.sub(" ", text)
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) >= 0.8 * len(letters) \
            and re.search(r"\b(HELP|AYUDA|SOCORRO)\b", text):
        return True  # "WATER IS POURING THROUGH MY CEILING HELP": shouted for help
    patterns = [URGENT["en"]] + ([URGENT[language]] if language in URGENT and language != "en" else [])
    if any(p.search(cleaned) for p in patterns):
        return True
    lowered = cleaned.lower()
    return any(re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", lowered) for phrase in extra if phrase)
