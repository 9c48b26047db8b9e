"""The offline policy model: a real LangChain chat model that reads the conversation, decides with intents
(MiniLM similarity to exemplars, plus rules), fills tool arguments with real parsers (dateparser for times),
emits genuine `tool_calls`, and writes replies from templates over the tool results. Its confidence is the
calibrated intent score (or the retrieval similarity when it answers from the knowledge base).

It is deterministic, needs no network and carries the demo flows: FAQ, booking, rescheduling, cancelling,
payment links and handoff; when it cannot help it says so and hands off."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

CONTEXT_TAG = "CONTEXT "
EXEMPLARS: dict[str, list[str]] = {
    "greeting": ["hi", "hello there", "hey", "good morning", "hi, is anyone there?"],
    "thanks": ["thanks", "thank you so much", "great, thanks!", "perfect, thank you", "ok cool thanks"],
    "human": ["can I talk to a person", "I want to speak to a human", "get me a manager please",
              "is there a real person I can talk to", "connect me with your staff", "let me talk to someone"],
    "complaint": ["this is terrible service", "I am very angry with you", "worst experience ever",
                  "you ruined our evening", "I'm extremely disappointed and upset", "this is unacceptable"],
    "book": ["I'd like to book a table", "can I make a reservation for Friday at 7pm", "book an appointment",
             "do you have availability tomorrow evening", "I want to schedule a tasting next week",
             "table for 4 on Saturday", "can we come in Thursday at 6?", "reserve a spot for two tonight"],
    "reschedule": ["can I move my reservation to Saturday", "I need to reschedule my appointment",
                   "change my booking to a later time", "push my reservation back an hour"],
    "cancel": ["cancel my reservation", "I need to cancel my appointment", "please cancel my booking",
               "we can't make it, cancel it", "call off my reservation"],
    "my_appointments": ["when is my appointment", "do I have a booking with you", "what time is my reservation"],
    "pay": ["can you send me the invoice", "how do I pay my bill", "send me a payment link",
            "I want to pay my deposit", "where do I pay"],
    "qualify": ["we're planning a party for 40 people", "I'd like catering for my office lunch",
                "can you host our rehearsal dinner", "I'm organizing a company event", "I want to book a private "
                "event", "we need food for a wedding of 120 guests"],
    # questions for the knowledge base: they compete with the actions above, so "what time do you open"
    # is a question, not a booking
    "question": ["what time do you open", "are you open on sundays", "do you have parking", "where are you located",
                 "do you have vegan options", "how much does it cost", "what is your cancellation policy",
                 "do you allow dogs", "is there a dress code", "do you do catering", "what's on the menu"],
}
# an action needs its words: similarity alone must not turn a question into a booking or a cancellation
ACTION_WORDS = {
    "book": re.compile(r"\b(book|reserv|appointment|schedule|table for|slot|availab|come in|tonight|tomorrow)", re.I),
    "reschedule": re.compile(r"\b(reschedul|move|change|push|postpone|different time|another time|later)", re.I),
    "cancel": re.compile(r"\b(cancel|call off|can't make|cannot make|won't make)", re.I),
    "pay": re.compile(r"\b(pay|invoice|bill|deposit|link|card)", re.I),
    "my_appointments": re.compile(r"\b(my|our) (appointment|reservation|booking)|\bdo (i|we) have a", re.I),
    "qualify": re.compile(r"\b(party|event|cater|wedding|private|group|guests|people|corporate|rehearsal|"
                          r"birthday|office)", re.I),
}
HUMAN_WORDS = re.compile(r"\b(human|real person|manager|someone real|representative|agent|staff member)\b", re.I)
ANGRY_WORDS = re.compile(r"\b(terrible|awful|disgusting|furious|angry|worst|unacceptable|ridiculous|scam)\b", re.I)
INTENT_FLOOR = 0.42  # below this similarity to every exemplar, the message is a question for the knowledge base


@lru_cache(maxsize=1)
def _exemplar_matrix() -> tuple[list[str], np.ndarray]:
    from knowledge.embedders import embedder_for

    labels = [intent for intent, texts in EXEMPLARS.items() for _ in texts]
    vectors = embedder_for("all-MiniLM-L6-v2").embed([t for texts in EXEMPLARS.values() for t in texts])
    return labels, np.asarray(vectors, dtype=np.float32)


@dataclass(frozen=True)
class Intent:
    name: str
    confidence: float


@lru_cache(maxsize=4096)
def classify(text: str) -> Intent:
    """The lead's intent and a confidence in [0, 1] (similarity rescaled, penalised by a close runner-up)."""
    from knowledge.embedders import embedder_for

    if HUMAN_WORDS.search(text):
        return Intent("human", 0.95)
    if ANGRY_WORDS.search(text):
        return Intent("complaint", 0.9)
    labels, matrix = _exemplar_matrix()
    query = np.asarray(embedder_for("all-MiniLM-L6-v2").embed([text])[0], dtype=np.float32)
    scores = matrix @ query
    best: dict[str, float] = {}
    for label, score in zip(labels, scores, strict=True):
        best[label] = max(best.get(label, -1.0), float(score))
    ranked = [kv for kv in sorted(best.items(), key=lambda kv: -kv[1])
              if kv[0] not in ACTION_WORDS or ACTION_WORDS[kv[0]].search(text)]
    (name, top), (_, second) = ranked[0], ranked[1]
    if top < INTENT_FLOOR:
        return Intent("question", round(min(1.0, max(0.0, 1 - top)), 3))
    confidence = min(1.0, max(0.0, (top - 0.3) / 0.5)) * (0.7 + 0.3 * min(1.0, (top - second) / 0.1))
    return Intent(name, round(confidence, 3))


def _context(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    for message in messages:
        if isinstance(message, SystemMessage):
            for line in str(message.content).splitlines():
                if line.startswith(CONTEXT_TAG):
                    return json.loads(line[len(CONTEXT_TAG):])
    return {}


def _asked(messages: Sequence[BaseMessage]) -> str:
    """What we said last before the lead's latest message (to know which question they are answering)."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    before = [m for m in messages[:max(last_human, 0)] if isinstance(m, AIMessage) and m.content]
    return str(before[-1].content) if before else ""


def _turn(messages: Sequence[BaseMessage]) -> tuple[str, list[tuple[str, dict[str, Any], dict[str, Any]]]]:
    """The lead's latest message and this turn's tool calls with their results, in order."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    text = str(messages[last_human].content) if last_human >= 0 else ""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    done: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for message in messages[last_human + 1:]:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                calls[call["id"] or ""] = (call["name"], call["args"])
        elif isinstance(message, ToolMessage) and message.tool_call_id in calls:
            name, args = calls[message.tool_call_id]
            try:
                result = json.loads(str(message.content))
            except json.JSONDecodeError:
                result = {"ok": False, "error": {"message": str(message.content)}}
            done.append((name, args, result if isinstance(result, dict) else {"value": result}))
    return text, done


TIME_HINT = re.compile(r"\d|\b(today|tonight|tomorrow|week|weekend|noon|midnight|morning|afternoon|evening|"
                       r"mon|tue|wed|thu|fri|sat|sun|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", re.I)


def _when(text: str, ctx: dict[str, Any]) -> tuple[datetime | None, bool]:
    """The date/time the lead means, in their timezone, and whether they named a time of day."""
    if not TIME_HINT.search(text):
        return None, False  # dateparser costs milliseconds; most messages name no time at all
    now = ctx.get("now")
    minute = datetime.fromisoformat(now).replace(second=0, microsecond=0).isoformat() if now else None
    return _parse_when(text, ctx.get("timezone") or "UTC", minute)  # cached per message and minute


@lru_cache(maxsize=1024)
def _parse_when(text: str, zone: str, now_iso: str | None) -> tuple[datetime | None, bool]:
    import dateparser
    from dateparser.search import search_dates

    now = datetime.fromisoformat(now_iso) if now_iso else datetime.now(ZoneInfo(zone))
    settings = {"PREFER_DATES_FROM": "future", "TIMEZONE": zone, "RETURN_AS_TIMEZONE_AWARE": True,
                "RELATIVE_BASE": now.astimezone(ZoneInfo(zone)).replace(tzinfo=None)}
    cleaned = re.sub(r"\b(at|around|for)\s+(\d{1,2})\s*(am|pm)\b", r"at \2\3", text, flags=re.I)
    found = search_dates(cleaned, languages=["en"], settings=settings) or []
    if not found:
        return None, False
    phrase, when = found[-1]
    named_time = bool(re.search(r"\d\s*(am|pm)|\d:\d\d|noon|midnight", phrase, re.I))
    if not named_time and dateparser.parse(phrase, settings=settings) is None:
        return None, False
    return when.astimezone(ZoneInfo(zone)), named_time


def _availability_args(when: datetime, named_time: bool) -> dict[str, Any]:
    """The week from the day the lead means; a time they named is asked for itself, so the offer holds it when
    it is free and the times nearest it when it is not."""
    args: dict[str, Any] = {"from_date": when.date().isoformat(),
                            "to_date": (when.date() + timedelta(days=6)).isoformat()}
    if named_time:
        args["preferred"] = when.isoformat()
    return args


def _say_time(value: str | datetime, zone: str) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    local = moment.astimezone(ZoneInfo(zone))
    return local.strftime("%a %b %-d at %-I:%M %p").replace(":00 ", " ")


def _short(text: str, ctx: dict[str, Any]) -> str:
    limit = 320 if ctx.get("channel") == "sms" else 1200
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _answer_value(text: str, question: dict[str, Any], ctx: dict[str, Any]) -> Any:
    """The lead's answer to a qualification question, typed for its custom field (None: not an answer)."""
    kind, options = question.get("type"), question.get("options") or []
    if kind in ("number", "money"):
        number = re.search(r"\d+(?:[.,]\d+)?", text.replace(",", ""))
        return int(float(number.group())) if number else None
    if kind == "date":
        when, _ = _when(text, ctx)
        return when.date().isoformat() if when else None
    if kind in ("select", "multi_select"):
        said = text.lower()
        chosen = [o for o in options if o.replace("_", " ") in said or o.replace("_", "-") in said
                  or o.replace("_free", " free") in said]
        if kind == "select":
            return chosen[0] if chosen else None
        if chosen:
            return chosen
        return [] if re.search(r"\b(no|none|nothing|nope|n/a)\b", said) else None
    return text.strip() or None


PRICE_QUESTION = re.compile(r"\b(how much|price|prices|pricing|cost|costs|charge|fee|fees)\b|\$", re.I)
GENERIC_WORDS = frozenset(re.findall(r"[a-z]+", """
how much what does price prices pricing cost costs charge charges fee fees your have there
this that with from will would please about place week today tonight tomorrow need want know tell could they their
them many also just like some good cheap expensive dollars dollar rent pay paying does do is are the per for and
"""))


def _grounded(question: str, passage: str) -> bool:
    """A price question is answered only by a passage about the thing asked: most of the question's own words
    must be in it (a nearby entry's figure, say the tasting menu's for the truffle supplement, is no answer).
    Other questions pass: similarity and the knowledge base's relevance floor judge them."""
    if not PRICE_QUESTION.search(question):
        return True
    words = {w for w in re.findall(r"[a-z]{4,}", question.lower()) if w not in GENERIC_WORDS}
    if not words:
        return True
    hay = passage.lower()
    found = sum(1 for w in words if w in hay or w.rstrip("s") in hay or (w.endswith("ing") and w[:-3] in hay))
    return found / len(words) >= 0.75


class LocalPolicyModel(BaseChatModel):
    """See the module docstring. `bind_tools` keeps the names of the tools it may call."""

    tool_names: list[str] = []

    @property
    def _llm_type(self) -> str:
        return "leadpilot-local-policy"

    def bind_tools(self, tools: Sequence[BaseTool | dict[str, Any]], **kwargs: Any) -> LocalPolicyModel:  # type: ignore[override]
        names = [t.name if isinstance(t, BaseTool) else convert_to_openai_tool(t)["function"]["name"] for t in tools]
        return self.model_copy(update={"tool_names": names})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        ctx = {**_context(messages), "asked": _asked(messages)}
        text, done = _turn(messages)
        message = self.decide(text, done, ctx)
        tokens = sum(len(str(m.content).split()) for m in messages)
        message.usage_metadata = {"input_tokens": tokens, "output_tokens": len(str(message.content).split()),
                                  "total_tokens": tokens + len(str(message.content).split())}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        """The same decision, streamed: a reply word by word (a webchat lead watches it arrive), a tool call in
        one chunk. Only runs that stream (the graph's `messages` mode) take this path."""
        message = self._generate(messages, stop, None, **kwargs).generations[0].message
        assert isinstance(message, AIMessage)
        if message.tool_calls or not message.content:
            yield ChatGenerationChunk(message=AIMessageChunk(
                content=message.content, response_metadata=message.response_metadata,
                usage_metadata=message.usage_metadata, tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i,
                     "type": "tool_call_chunk"} for i, c in enumerate(message.tool_calls)]))
            return
        pieces = re.split(r"(?<=\s)(?=\S)", str(message.content))
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = ChatGenerationChunk(message=AIMessageChunk(
                content=piece, response_metadata=message.response_metadata if last else {},
                usage_metadata=message.usage_metadata if last else None))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    # ------------------------------------------------------------------ the policy
    def _call(self, name: str, args: dict[str, Any], confidence: float, intent: str) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}",
                                                  "type": "tool_call"}],
                         response_metadata={"confidence": confidence, "intent": intent})

    def _reply(self, text: str, ctx: dict[str, Any], confidence: float, intent: str) -> AIMessage:
        return AIMessage(content=_short(text, ctx), response_metadata={"confidence": confidence, "intent": intent})

    def _handoff(self, reason: str, summary: str, ctx: dict[str, Any], intent: str, confidence: float) -> AIMessage:
        if "request_human_handoff" in self.tool_names:
            return self._call("request_human_handoff", {"reason": reason, "summary": summary[:400]}, confidence,
                              intent)
        return self._reply("I'm sorry, I can't help with that here. Please call us and our team will take care "
                           "of you.", ctx, confidence, intent)

    def decide(self, text: str, done: list[tuple[str, dict[str, Any], dict[str, Any]]],
               ctx: dict[str, Any]) -> AIMessage:
        intent = classify(text) if text else Intent("greeting", 1.0)
        pending = ctx.get("qualification") or []
        asked = next((q for q in pending if q["question"] in (ctx.get("asked") or "")), None)
        if asked is not None and not done and "update_contact" in self.tool_names:
            value = _answer_value(text, asked, ctx)
            if value is not None:  # the lead answered the question we asked
                return self._call("update_contact", {"custom_fields": {asked["field"]: value},
                                                     "qualification_status": "contacted"}, 0.85, "qualify")
        if intent.name == "qualify" and not done:
            return self._qualify(text, pending, ctx, intent)
        if intent.name in ("question", "greeting", "thanks") and _when(text, ctx)[1]:
            intent = Intent("book", 0.8)  # "Friday at 6 works": a time picked from the offer
        if done:
            return self._after_tools(text, intent, done, ctx)
        needs = {"qualify": "update_contact", "book": "check_availability", "reschedule": "list_appointments",
                 "cancel": "list_appointments",
                 "my_appointments": "list_appointments", "pay": "send_payment_link", "question": "search_knowledge"}
        name = intent.name
        if name == "greeting":
            business = ctx.get("business") or "us"
            return self._reply(f"Hi! Thanks for reaching out to {business}. How can I help you today?", ctx,
                               intent.confidence, name)
        if name == "thanks":
            return self._reply("You're welcome! Anything else I can help with?", ctx, intent.confidence, name)
        if name == "human":
            return self._handoff("human_requested", f"The lead asked for a person: \"{text}\"", ctx, name, 0.95)
        if name == "complaint":
            return self._handoff("negative_sentiment", f"The lead is upset: \"{text}\"", ctx, name, intent.confidence)
        tool = needs[name]
        if tool not in self.tool_names:
            if name != "question" and "search_knowledge" in self.tool_names:
                return self._call("search_knowledge", {"query": text}, intent.confidence, "question")
            return self._handoff("missing_capability", f"The lead wants to {name.replace('_', ' ')}: \"{text}\"",
                                 ctx, name, intent.confidence)
        if name == "book":
            when, named_time = _when(text, ctx)
            if when is None:  # no day named: the week from tomorrow
                when = (datetime.fromisoformat(ctx["now"]) if ctx.get("now") else datetime.now(UTC)) + timedelta(days=1)
            return self._call("check_availability", _availability_args(when, named_time), intent.confidence, name)
        if name == "question":
            return self._call("search_knowledge", {"query": text}, intent.confidence, name)
        return self._call(tool, {}, intent.confidence, name)

    def _qualify(self, text: str, pending: list[dict[str, Any]], ctx: dict[str, Any], intent: Intent) -> AIMessage:
        """An event or catering enquiry: save what the first message already says, else ask the first
        unanswered question; with nothing left to ask, open the opportunity."""
        if not pending:
            return self._qualified(ctx, intent.confidence, "Thanks! Our events team will be in touch shortly.")
        first = pending[0]
        value = _answer_value(text, first, ctx) if first.get("type") in ("number", "money", "date") else None
        if value is not None and "update_contact" in self.tool_names:
            return self._call("update_contact", {"custom_fields": {first["field"]: value}}, intent.confidence,
                              "qualify")
        return self._reply(f"Happy to help with that! {first['question']}", ctx, intent.confidence, "qualify")

    def _qualified(self, ctx: dict[str, Any], confidence: float, thanks: str) -> AIMessage:
        """Every qualification question answered: open the lead's deal in the agent's `on_qualified` stage (the
        first stage by default), or move the deal the lead already has there; never a second deal."""
        stage = (ctx.get("pipeline") or {}).get("on_qualified")
        if ctx.get("deal") is None and "create_opportunity" in self.tool_names:
            args = {"name": f"{ctx.get('business') or 'Event'} event enquiry", **({"stage": stage} if stage else {})}
            return self._call("create_opportunity", args, confidence, "qualify")
        return self._move_deal(ctx, "on_qualified", confidence, "qualify") or self._reply(thanks, ctx, confidence,
                                                                                          "qualify")

    def _move_deal(self, ctx: dict[str, Any], setting: str, confidence: float, intent: str) -> AIMessage | None:
        """Move the lead's open deal (CONTEXT) to the stage the agent's pipeline setting names, unless it is there
        already, there is no deal or setting, or the agent may not move deals."""
        deal, stage = ctx.get("deal"), (ctx.get("pipeline") or {}).get(setting)
        if not deal or not stage or str(deal.get("stage", "")).lower() == stage.lower() \
                or "move_opportunity" not in self.tool_names:
            return None
        return self._call("move_opportunity", {"opportunity_id": deal["id"], "stage": stage}, confidence, intent)

    def _after_tools(self, text: str, intent: Intent, done: list[tuple[str, dict[str, Any], dict[str, Any]]],
                     ctx: dict[str, Any]) -> AIMessage:
        name, args, result = done[-1]
        zone = ctx.get("timezone") or "UTC"
        confidence = intent.confidence
        if not result.get("ok", True) and name == "request_human_handoff":
            return self._reply("I can't reach our team from here right now. Please call us and we'll help you "
                               "directly.", ctx, 0.2, intent.name)
        booked = next((r for n, _, r in done if n == "book_appointment" and r.get("ok", True)), None)
        if not result.get("ok", True) and name != "book_appointment" and not (name == "move_opportunity" and booked):
            return self._handoff("failed_to_resolve", f"{name} failed: {result.get('error', {}).get('message')}",
                                 ctx, intent.name, 0.2)
        if name == "search_knowledge":
            hits = result.get("results") or []
            if hits and not _grounded(text, hits[0]["text"]):
                return self._handoff("lack_of_information", f"The knowledge base has no price for: \"{text}\"",
                                     ctx, "question", float(hits[0].get("similarity") or 0))
            if result.get("confident") and hits:
                answer = hits[0]["text"].split("\n", 1)[-1]
                return self._reply(answer, ctx, float(hits[0].get("similarity") or 0), "question")
            return self._handoff("lack_of_information", f"No confident answer in the knowledge base for: \"{text}\"",
                                 ctx, "question", float(hits[0]["similarity"]) if hits else 0.0)
        if name == "request_human_handoff":
            message = ctx.get("handoff_message") or "Thanks for your patience. I'm connecting you with our team now."
            return self._reply(message, ctx, confidence, intent.name)
        if name == "check_availability":
            slots = result.get("slots") or []
            tz = result.get("timezone") or zone
            when, named_time = _when(text, {**ctx, "timezone": tz})
            if when is not None and named_time:
                for slot in slots:
                    if datetime.fromisoformat(slot["start"]) == when:
                        appointment = next((r for n, _, r in done if n == "list_appointments"), None)
                        if appointment and appointment.get("appointments") and intent.name == "reschedule":
                            return self._call("reschedule_appointment", {
                                "appointment_id": appointment["appointments"][0]["id"], "new_start": slot["start"],
                                "calendar_id": slot["calendar_id"]},
                                confidence, intent.name)
                        return self._call("book_appointment", {"slot_start": slot["start"],
                                                               "calendar_id": slot["calendar_id"]},
                                          confidence, intent.name)
            if not slots:
                return self._reply("I don't see any open times that week. Would another week work?", ctx, confidence,
                                   intent.name)
            offer = ", ".join(_say_time(s["start"], tz) for s in slots[:3])
            prefix = "That exact time isn't available. " if when is not None and named_time else ""
            return self._reply(f"{prefix}I can offer {offer}. Which works best for you?", ctx, confidence,
                               intent.name)
        if name == "book_appointment":
            if not result.get("ok", True):
                alternatives = result.get("error", {}).get("alternatives") or []
                offer = ", ".join(_say_time(a, zone) for a in alternatives[:3])
                return self._reply(f"Sorry, that time was just taken. I can offer {offer}." if offer else
                                   "Sorry, that time was just taken. Would another day work?", ctx, confidence,
                                   intent.name)
            move = self._move_deal(ctx, "on_booked", confidence, intent.name)
            if move is not None:
                return move
            return self._reply(f"You're booked for {_say_time(result['start'], zone)} ({zone}). See you then!", ctx,
                               confidence, intent.name)
        if name == "list_appointments":
            upcoming = result.get("appointments") or []
            if not upcoming:
                return self._reply("I don't see any upcoming appointment for you. Would you like to book one?", ctx,
                                   confidence, intent.name)
            first = upcoming[0]
            if intent.name == "cancel":
                return self._call("cancel_appointment", {"appointment_id": first["id"], "reason": text[:200]},
                                  confidence, intent.name)
            if intent.name == "reschedule":
                when, named_time = _when(text, ctx)
                if when is None:
                    return self._reply(f"Your appointment is {_say_time(first['start'], zone)}. What day and time "
                                       "would you like instead?", ctx, confidence, intent.name)
                return self._call("check_availability", _availability_args(when, named_time), confidence,
                                  intent.name)
            return self._reply(f"Your next appointment is {_say_time(first['start'], zone)}.", ctx, confidence,
                               intent.name)
        if name == "cancel_appointment":
            cancelled = next((a for n, _, r in done if n == "list_appointments" for a in r.get("appointments", [])),
                             None)
            for_when = f" for {_say_time(cancelled['start'], zone)}" if cancelled else ""
            return self._reply(f"Done: your appointment{for_when} is cancelled. Hope to see you another time!", ctx,
                               confidence, intent.name)
        if name == "reschedule_appointment":
            return self._reply(f"Done: you're now booked for {_say_time(result['start'], zone)} ({zone}).", ctx,
                               confidence, intent.name)
        if name == "update_contact":
            saved = set((args.get("custom_fields") or {}).keys())
            remaining = [q for q in ctx.get("qualification") or [] if q["field"] not in saved]
            if remaining:
                return self._reply(remaining[0]["question"], ctx, confidence, "qualify")
            return self._qualified(ctx, confidence, "Thank you! Our events team will be in touch shortly.")
        if name == "create_opportunity" or (name == "move_opportunity" and booked is None):
            return self._reply("Thank you, that's everything we need! Our events team will reach out shortly with "
                               "options and pricing.", ctx, confidence, "qualify")
        if name == "move_opportunity" and booked is not None:  # moved or not, the lead hears about the booking
            return self._reply(f"You're booked for {_say_time(booked['start'], zone)} ({zone}). See you then!", ctx,
                               confidence, intent.name)
        if name == "send_payment_link":
            return self._reply(f"Here is your secure payment link for invoice {result.get('number')} "
                               f"({result.get('currency')} {result.get('due')} due): {result.get('payment_link')}",
                               ctx, confidence, intent.name)
        return self._reply("Done. Anything else I can help with?", ctx, confidence, intent.name)
