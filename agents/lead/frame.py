"""Dialogue state: what this turn's message says (`read_turn`) and the task frame it updates (`update_frame`),
kept in the graph's state across turns and shown in the conversation's log.

The frame of a task: booking (service, day or window, exact time, attendees, what was offered, what awaits a
yes), cancel / reschedule (which appointment, once there are several), qualification (answered keys), the
lead's contact details, and the lead's language. A later value replaces an earlier one (a correction), and a
reply binds to what was offered ("the second one", "4 works", "yes")."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agents.understanding import answers, choice, details, language, signals, when
from agents.understanding.intents import QUESTION_MARK, Vocabulary, classify, fold, segments

OTHER_PERSON = re.compile(r"\b(belongs? to|their|his|her|another (contact|customer|client|patient)|"
                          r"other (contact|customer|client|patient)|pretend|de otro|de otra|"
                          r"su (n[uú]mero|correo|email|tel[eé]fono))\b", re.I)
ACTIONS = ("book", "reschedule", "cancel", "my_appointments", "pay", "enquiry")
CUSTOM_ACTIONS = {"qualify": "enquiry", "book": "book", "handoff": "handoff", "answer": "question"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _now(ctx: dict[str, Any]) -> datetime:
    zone = ZoneInfo(ctx.get("timezone") or "UTC")
    now = ctx.get("now")
    return (datetime.fromisoformat(now) if now else datetime.now(zone)).astimezone(zone)


def read_turn(text: str, frame: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Everything the parsers find in the lead's message(s) of this turn, as JSON."""
    configured = ctx.get("languages") or ["en"]
    previous = frame.get("language") or configured[0]
    lang = language.detect(text, previous=previous)
    now = _now(ctx)
    found = when.parse_when(text, now)
    vocabulary = Vocabulary.of(ctx.get("intents") or [], ctx.get("services") or [])
    requests = []
    parts = segments(text)
    for part in parts:
        timed = when.parse_when(part, now) is not None if found is not None else False
        intent = classify(part, vocabulary, timed)
        if intent.name == "question" and len(parts) > 1 and not QUESTION_MARK.search(part):
            intent = dataclasses.replace(intent, name="statement")  # "want to secure my spot": context, not a query
        requests.append({"text": part, "intent": intent.name, "confidence": intent.confidence,
                         "custom": intent.custom, "service": intent.service, "cued": intent.cued,
                         "asks": bool(QUESTION_MARK.search(part))})
    offered = [datetime.fromisoformat(s["start"]) for s in frame.get("offered") or []]
    contact = details.contact_details(text, region=ctx.get("country") or "US")
    if (contact.email or contact.phone) and OTHER_PERSON.search(text):
        contact = dataclasses.replace(contact, email=None, phone=None)  # someone else's details are not the lead's
    extra_urgent = tuple(ctx.get("urgent_terms") or ())
    team = tuple(ctx.get("team") or ())
    found_json = dataclasses.asdict(found) | {"exact": found.exact} if found is not None else None
    quantity = details.quantity(text)
    seen = {"when": _jsonable(found_json), "quantity": quantity}
    # the business's questions this message answers before they are asked ("soy paciente, quería una revisión")
    answered = sorted(q["field"] for q in ctx.get("qualification") or []
                      if q.get("ask", "on_enquiry") == "on_enquiry"
                      and q.get("type") in ("select", "multi_select", "money", "boolean")
                      and qualification_answer(text, q, seen, asked=False) is not None)
    return _jsonable({
        "language": lang,
        "answers_questions": answered,
        "requests": requests,
        "when": found_json,
        "quantity": quantity,
        "details": {k: v for k, v in dataclasses.asdict(contact).items() if v},
        "signals": {"opt_out": signals.opts_out(text), "opt_in": signals.opts_in(text),
                    "complaint": signals.is_complaint(text, lang), "human": signals.wants_human(text, team),
                    "bot": signals.asks_if_bot(text), "urgent": signals.is_urgent(text, lang, extra=extra_urgent)},
        "choice": choice.choose(text, offered, language=lang) if offered else None,
        "affirms": choice.affirms(text, lang),
        "denies": choice.denies(text, lang),
    })


def qualification_answer(text: str, question: dict[str, Any], turn: dict[str, Any], asked: bool) -> Any:
    """The lead's answer to a qualification question, typed for its custom field (None: not an answer).
    Before the question is asked, only what clearly answers it counts: a sum written as money, a count of
    people for "how many", a named date, the one option named, a yes/no about the question's subject, the
    sentence about a free-text question."""
    kind, options = question.get("type"), question.get("options") or []
    wording = " ".join([question.get("question") or "", *(question.get("translations") or {}).values()])
    if kind in ("number", "money"):
        count = turn.get("quantity")
        if count and HOW_MANY.search(wording):
            return int(count)  # "a party for 40 people" answers "how many guests?" before it is asked
        money = answers.amount(text) if kind == "money" else None
        if money is not None:
            return int(money) if money == money.to_integral_value() else float(money)
        if not asked:
            return None
        number = re.search(r"\d+(?:[.,]\d+)?", text.replace(",", ""))
        return int(float(number.group())) if number else None
    if kind == "date":
        found = turn.get("when") or {}
        day = found.get("start_day")
        return day if asked or (day and found.get("end_day") in (None, day) and found.get("phrase")) else None
    if kind in ("select", "multi_select"):
        if kind == "select" and answers.is_yes_no(options):
            said = answers.yes_no(text, wording)
            if said is None and asked:
                said = True if choice.affirms(text) else False if choice.denies(text) else None
            if said is not None:
                return answers.yes_no_option(options, said)
        chosen = answers.option_in(text, options)
        if kind == "select":
            return chosen[0] if len(chosen) == 1 or (asked and chosen) else None
        if chosen:
            return chosen
        return [] if asked and re.search(r"\b(no|none|nothing|nope|n/a|nada|ninguno|ninguna)\b", fold(text)) else None
    if kind == "boolean":
        said = answers.yes_no(text, wording)
        if said is None and asked:
            said = True if choice.affirms(text) else False if choice.denies(text) else None
        return said
    if asked:
        return text.strip() or None
    return answers.sentence_on(text, question.get("question") or "")


HOW_MANY = re.compile(r"\b(how many|cu[aá]nt[oa]s)\b", re.I)


def _merge_when(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A correction replaces what it names and keeps the rest: "actually Tuesday" keeps the time asked for,
    "make it 4" keeps the day."""
    if not old:
        return new
    merged = dict(old)
    if new.get("start_day"):
        merged.update(start_day=new["start_day"], end_day=new.get("end_day"))
    if new.get("at") or new.get("after") or new.get("before"):
        merged.update(at=new.get("at"), after=new.get("after"), before=new.get("before"))
    for key in ("same_time", "shift_minutes", "timezone", "phrase"):
        if new.get(key):
            merged[key] = new[key]
    merged["exact"] = bool(merged.get("start_day") and merged.get("at"))
    return merged


def task_of(turn: dict[str, Any], current: str | None = None) -> str | None:
    """The action this turn asks for (the first request that asks for one). While a task is under way, only a
    request in the words of another action changes it: "la del lunes" answers "which appointment?", it does not
    start a booking."""
    requests = sorted(turn["requests"], key=lambda r: not r.get("cued"))  # the action in its own words first
    for request in requests:
        if current is not None and not request.get("cued"):
            continue
        name = request["intent"]
        if name == "custom":
            mapped = CUSTOM_ACTIONS.get((request.get("custom") or {}).get("action") or "", "question")
            if mapped in ACTIONS:
                return mapped
        elif name in ACTIONS:
            return name
    return None


def update_frame(frame: dict[str, Any], turn: dict[str, Any]) -> dict[str, Any]:
    """The frame after this turn's message (before the agent acts on it)."""
    updated = dict(frame)
    updated["language"] = turn["language"]
    task = task_of(turn, frame.get("task"))
    if task == "enquiry" and (turn.get("when") or {}).get("exact") and any(
            r["intent"] == "book" for r in turn["requests"]):
        task = "book"  # "I'd like a consultation. Would Tuesday at 11 work?": the time asked for is the booking
    if task is not None and task != frame.get("task"):
        updated.update(task=task, confirm=None)
        if task in ("book", "enquiry") and frame.get("task") not in ("book", "enquiry", "reschedule"):
            updated.update(when=None, offered=[])
    elif task is None and frame.get("task") is None and turn.get("when") and not _only_questions(turn):
        updated["task"] = "book"  # "friday at 6?" with nothing else: a time for a booking
    elif task is None and frame.get("task") is None and turn.get("answers_questions") and not turn.get("when"):
        updated.update(task="enquiry", confirm=None)  # it answers the business's qualification questions unasked
    enquiry = next(((r.get("custom") or {}).get("name") for r in turn["requests"] if r.get("custom")
                    and (r["custom"].get("action") == "qualify")), None)
    if enquiry and updated.get("task") == "enquiry":
        updated["enquiry"] = str(enquiry).replace("_", " ")
    service = next((r["service"] for r in turn["requests"] if r.get("service")), None)
    if service:
        updated["service"] = service
    if turn.get("when"):
        updated["when"] = _merge_when(frame.get("when") if task is None or task == frame.get("task") else None,
                                      turn["when"])
        if frame.get("confirm") and not turn.get("affirms"):
            updated["confirm"] = None  # another time named: the earlier one is no longer what they want
    if turn.get("quantity"):
        updated["attendees"] = turn["quantity"]
    if turn.get("denies") and frame.get("confirm"):
        updated["confirm"] = None
    return updated


def _only_questions(turn: dict[str, Any]) -> bool:
    return all(r["intent"] == "question" for r in turn["requests"])


def after_tools(frame: dict[str, Any], results: list[tuple[str, dict[str, Any], dict[str, Any]]],
                proposal: dict[str, Any] | None, asks: str | None = None) -> dict[str, Any]:
    """The frame after the agent's turn: what it offered and what awaits a yes (`proposal`, a slot the reply
    asks the lead to confirm), the qualification question it asked (`asks`, never asked twice), what it
    listed, what is done."""
    updated = dict(frame)
    if asks and asks not in (updated.get("asked_fields") or []):
        updated["asked_fields"] = [*(updated.get("asked_fields") or []), asks]
    for name, args, result in results:
        if not result.get("ok", True):
            continue
        if name == "check_availability":
            updated["offered"] = (result.get("slots") or [])[:3]
        elif name == "list_appointments":
            updated["appointments"] = [{"id": a["id"], "start": a["start"]} for a in result.get("appointments") or []]
        elif name in ("book_appointment", "reschedule_appointment", "cancel_appointment"):
            updated.update(task=None, when=None, offered=[], confirm=None, appointments=[], appointment_id=None)
        elif name == "update_contact":
            saved = dict(updated.get("details") or {})
            saved.update({k: v for k, v in args.items() if k in ("first_name", "last_name", "email", "phone") and v})
            updated["details"] = saved
        elif name in ("create_opportunity", "send_payment_link"):
            updated["task"] = None
    if proposal:
        updated["confirm"] = proposal
    return updated


def when_of(text: str, ctx: dict[str, Any]) -> dict[str, Any] | None:
    """The time a part of a message names, as the frame holds it."""
    found = when.parse_when(text, _now(ctx))
    return _jsonable(dataclasses.asdict(found) | {"exact": found.exact}) if found is not None else None


def when_bounds(found: dict[str, Any] | None, now: datetime) -> tuple[date, date]:
    """The days a request covers: the day or range named, or (no day named) the week from tomorrow: a lead who
    wants today says so."""
    if not found or not found.get("start_day"):
        return now.date() + timedelta(days=1), now.date() + timedelta(days=7)
    start = date.fromisoformat(found["start_day"])
    end = date.fromisoformat(found["end_day"]) if found.get("end_day") else start
    return start, max(start, end)
