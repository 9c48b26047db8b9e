"""The offline policy model: a real LangChain chat model that reads the conversation and its dialogue frame,
decides, fills tool arguments, emits genuine `tool_calls`, and writes replies in the lead's language from
templates over the tool results. Its confidence is the intent's (or the retrieval similarity when it answers
from the knowledge base).

It knows no kind of business: what the business offers, asks and says comes from the run's CONTEXT (its
services and their synonyms, custom intents, qualification questions, languages, handoff messages), and what
the lead said comes from `agents.understanding` through the frame (agents/lead/frame.py). One turn, in order:
save contact details the lead gave; hand off a complaint, an emergency or a request for a person; say what it
is to "are you a bot?"; answer each question from the knowledge base; then carry on the task of the frame
(book, reschedule, cancel, pay, qualify), asking when something needed is missing or ambiguous."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

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

from agents.lead import frame as frames
from agents.lead.replies import emergency_number, join, say, say_day, say_time
from agents.understanding import choice, signals
from agents.understanding.intents import fold
from knowledge.query import content_words, mentions, normalise

CONTEXT_TAG = "CONTEXT "
# "cancel monday's but keep friday", "cancela la del lunes pero la del jueves la mantengo": the clause that keeps
# an appointment does not say which one is meant
CLAUSES = re.compile(r"\s*(?:[,;]|\bbut\b|\bpero\b|\bexcept\b|\bexcepto\b|\bmenos\b|\bsino\b)\s*", re.I)
KEEPS = re.compile(r"\b(keep|keeping|leave|still (coming|on|good|fine)|not (that|the|this) one|mant[eé]n\w*|mantengo|"
                   r"conserv\w*|dej[ao]\b|dejad|la dejo|lo dejo|sigue en pie)\b", re.I)


def _meant(text: str) -> str:
    clauses = [c for c in CLAUSES.split(text) if c and c.strip()]
    kept = [c for c in clauses if not KEEPS.search(c)]
    return " ".join(kept) if kept and len(kept) < len(clauses) else text


Done = list[tuple[str, dict[str, Any], dict[str, Any]]]


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


def _turn(messages: Sequence[BaseMessage]) -> tuple[str, Done]:
    """The lead's latest message and this turn's tool calls with their results, in order."""
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    text = str(messages[last_human].content) if last_human >= 0 else ""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    done: Done = []
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


def _short(text: str, ctx: dict[str, Any]) -> str:
    limit = 320 if ctx.get("channel") == "sms" else 1200
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


PRICE_QUESTION = re.compile(r"\b(how much|price|prices|pricing|cost|costs|charge|fee|fees|tax|taxes|rate|rates|"
                            r"cu[aá]nto|precio|cuesta|vale|tarifa|impuestos?)\b|[$€£]", re.I)
GENERIC_WORDS = frozenset(re.findall(r"[a-z]+", """
how much what does price prices pricing cost costs charge charges fee fees your have there
this that with from will would please about place week today tonight tomorrow need want know tell could they their
them many also just like some good cheap expensive dollars dollar rent pay paying does do is are the per for and
more less extra roughly rate rates
cuanto cuesta precio precios vale valen tarifa tienen teneis hacen hay para como cual cuales esto este esta
quiero queria saber gracias favor
"""))
# a follow-up that points back at the question before it
POINTS_BACK = re.compile(r"\b(it|they|them|that|those|this|these|one|ones|eso|esto|ese|esa|lo)\b", re.I)


def _grounded(question: str, passage: str) -> bool:
    """A money question is answered only by a passage about the thing asked: most of the question's own words
    must be in it (a nearby entry's figure is no answer, nor a listing's price for its taxes). Other questions
    pass: similarity, the knowledge base's relevance floor and `_pick` judge them."""
    question = normalise(question)
    if not PRICE_QUESTION.search(question):
        return True
    words = {w for w in re.findall(r"[a-z]{4,}", fold(question)) if w not in GENERIC_WORDS}
    if not words:
        return True
    hay = fold(passage)
    found = sum(1 for w in words if w in hay or w.rstrip("s") in hay or (w.endswith("ing") and w[:-3] in hay))
    return found / len(words) >= 0.75


def _pick(question: str, hits: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The passage that answers: the best hit, unless it shares no word of substance with the question while
    another hit does ("tengo mapfre, ¿me lo cubre?": the entry naming the insurer, not the nearest in meaning).
    None when a question of several such words shares none with any hit: the passages are about other things
    ("a whole roast pig for a backyard party" is not answered by "Can I bring my dog?")."""
    if not hits:
        return None
    words = content_words(question)
    if not words or any(mentions(w, hits[0]["text"]) for w in words):
        return hits[0]
    agreeing = next((h for h in hits[1:] if any(mentions(w, h["text"]) for w in words)), None)
    return agreeing or (hits[0] if len(words) < 2 else None)


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
        if "turn" not in ctx:  # used outside the lead graph: read the message here
            ctx["turn"] = frames.read_turn(text, ctx.get("frame") or {}, ctx)
            ctx["frame"] = frames.update_frame(ctx.get("frame") or {}, ctx["turn"])
        message = Policy(self.tool_names, text, done, ctx).decide()
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


class Policy:
    """One decision of a turn: the next tool call, or the reply once the turn's tools have run."""

    def __init__(self, tools: list[str], text: str, done: Done, ctx: dict[str, Any]) -> None:
        self.tools, self.text, self.done, self.ctx = tools, text, done, ctx
        self.turn: dict[str, Any] = ctx.get("turn") or {}
        self.frame: dict[str, Any] = ctx.get("frame") or {}
        self.lang: str = self.turn.get("language") or "en"
        self.business_zone: str = ctx.get("timezone") or "UTC"
        # the lead's own clock when they state it ("10am my time, I'm in Perth"): asked for and said in it
        self.zone: str = (self.frame.get("when") or {}).get("timezone") or self.business_zone
        self.signals: dict[str, bool] = self.turn.get("signals") or {}
        self.requests: list[dict[str, Any]] = self.turn.get("requests") or []
        self.confidence = max((r["confidence"] for r in self.requests), default=0.8)
        self.intent = frames.task_of(self.turn) or (self.requests[0]["intent"] if self.requests else "greeting")

    # ---------------------------------------------------------------- what was done this turn
    def _results(self, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(a, r) for n, a, r in self.done if n == name]

    def _last(self, name: str) -> dict[str, Any] | None:
        found = self._results(name)
        return found[-1][1] if found else None

    def _ran(self, name: str) -> bool:
        return any(n == name for n, _, _ in self.done)

    # ---------------------------------------------------------------- what it emits
    def _call(self, name: str, args: dict[str, Any], confidence: float | None = None,
              intent: str | None = None) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}",
                                                  "type": "tool_call"}],
                         response_metadata={"confidence": confidence if confidence is not None else self.confidence,
                                            "intent": intent or self.intent})

    def _reply(self, parts: list[str], confidence: float | None = None, proposal: dict[str, Any] | None = None,
               intent: str | None = None, asks: str | None = None) -> AIMessage:
        text = " ".join(p for p in parts if p)
        meta: dict[str, Any] = {"confidence": confidence if confidence is not None else self.confidence,
                                "intent": intent or self.intent, "language": self.lang}
        if proposal is not None:
            meta["proposal"] = proposal
        if asks is not None:
            meta["asks_field"] = asks  # the qualification question this reply asks (kept in the frame)
        return AIMessage(content=_short(text, self.ctx), response_metadata=meta)

    def _say(self, key: str, **values: Any) -> str:
        """A reply template, or the business's own wording of it in this language (agent personality.messages)."""
        own = ((self.ctx.get("messages") or {}).get(key) or {})
        text = own.get(self.lang) if isinstance(own, dict) else None
        return text.format(**values) if text else say(key, self.lang, **values)

    def _time(self, value: str | datetime) -> str:
        return say_time(value, self.zone, self.lang)

    def _handoff(self, reason: str, summary: str) -> AIMessage:
        if "request_human_handoff" in self.tools:
            return self._call("request_human_handoff", {"reason": reason, "summary": summary[:400]})
        return self._reply([self._say("cannot_help")], 0.2)

    # ---------------------------------------------------------------- the decision
    def decide(self) -> AIMessage:
        handed = self._last("request_human_handoff")
        if handed is not None:
            return self._after_handoff(handed)
        for step in (self._save_details, self._escalate, self._ask_knowledge):
            message = step()
            if message is not None:
                return message
        task = self.frame.get("task")
        if task is not None:
            message = getattr(self, f"_task_{task}")()
            if message is not None:
                return message
        return self._close()

    def _save_details(self) -> AIMessage | None:
        """Contact details the lead wrote (a webchat 'Visitor' gets their name), and qualification answers."""
        if self._ran("update_contact") or "update_contact" not in self.tools:
            return None
        saved = self.frame.get("details") or {}
        new = {k: v for k, v in (self.turn.get("details") or {}).items() if v and saved.get(k) != v}
        answers = self._qualification_answers()
        if not new and not answers:
            return None
        args: dict[str, Any] = dict(new)
        if answers:
            args["custom_fields"] = answers
            args["qualification_status"] = "contacted"
        return self._call("update_contact", args, 0.9, "details")

    def _can_ask(self, question: dict[str, Any]) -> bool:
        """A question is asked in the lead's language: its translation, or its own text when the lead writes
        the agent's first language."""
        first = (self.ctx.get("languages") or ["en"])[0]
        return self.lang == first or bool((question.get("translations") or {}).get(self.lang))

    def _question_text(self, question: dict[str, Any]) -> str:
        return ((question.get("translations") or {}).get(self.lang) or question["question"]).strip()

    def _qualification_answers(self) -> dict[str, Any]:
        pending = self.ctx.get("qualification") or []
        if not pending or self.frame.get("task") != "enquiry":
            return {}
        asked_text = fold(self.ctx.get("asked") or "")
        found: dict[str, Any] = {}
        for question in pending:
            asked = any(fold(t) in asked_text for t in [question["question"], *(question.get("translations") or {})
                                                        .values()] if t)
            value = frames.qualification_answer(self.text, question, self.turn, asked)
            if value is not None:
                found[question["field"]] = value
        return found

    def _escalate(self) -> AIMessage | None:
        """A complaint, an emergency or a request for a person goes to the team; "are you a bot?" does not."""
        said = self.text[:200]
        if self.signals.get("complaint"):
            return self._handoff("negative_sentiment", f"The lead is unhappy: \"{said}\"")
        if self.signals.get("human") and not self.signals.get("bot"):
            return self._handoff("human_requested", f"The lead asked for a person: \"{said}\"")
        if self.signals.get("urgent"):
            if "search_knowledge" in self.tools and not self._ran("search_knowledge"):
                query = f"{self._say('urgent_query')}: {self.text}"  # the business's emergency advice first
                return self._call("search_knowledge", {"query": query[:500]}, 0.9, "urgent")
            return self._handoff("urgent", f"Urgent: \"{said}\"")
        for request in self.requests:
            custom = request.get("custom") or {}
            if request["intent"] == "custom" and custom.get("action") == "handoff":
                return self._handoff(custom.get("handoff_reason") or "human_requested",
                                     f"{custom.get('name')}: \"{said}\"")
        return None

    def _questions(self) -> list[str]:
        """The message's questions for the knowledge base ("are you a bot?" is answered by the agent itself), and
        a question in an action's words beside another task ("cancel tmrw's appt, will i lose my deposit?")."""
        answering = self.frame.get("task") == "enquiry" and bool(self._qualification_answers())
        task = self.frame.get("task")
        asked = []
        for r in self.requests:
            text = r["text"]
            if signals.asks_if_bot(text) or signals.wants_human(text) or (answering and "?" not in text):
                continue  # "40" answers our question: nothing to look up
            # a request that asks and names something is a question whatever it sounds like ("atendéis a niños
            # de 4 años?" is near "thanks" to the classifier)
            asks = "?" in text and r["intent"] in ("greeting", "thanks", "statement") and bool(content_words(text))
            answered_here = asks or r["intent"] == "question" or (
                r["intent"] == "custom" and (r.get("custom") or {}).get("action") == "answer") or (
                r["intent"] == "enquiry" and r.get("asks"))  # "interested in X, how much is it?"
            beside_task = bool(task) and len(self.requests) > 1 and r["intent"] in frames.ACTIONS \
                and r["intent"] != task and "?" in text
            if answered_here or beside_task:
                asked.append(text)
        return asked

    def _queries(self) -> list[tuple[str, str]]:
        """Each question with what is looked up for it: a follow-up that points back ("and how long does it
        last") is searched with the question before it, which names what "it" is."""
        pairs: list[tuple[str, str]] = []
        for question in self._questions():
            query = question
            if pairs and POINTS_BACK.search(question) and len(content_words(question)) <= 2:
                query = f"{pairs[-1][0]} {question}"
            pairs.append((question, query[:500]))
        return pairs

    def _ask_knowledge(self) -> AIMessage | None:
        """Each question of the message is looked up once, in order."""
        if "search_knowledge" not in self.tools:
            return None
        asked = {a.get("query") for a, _ in self._results("search_knowledge")}
        for _, query in self._queries():
            if query not in asked:
                return self._call("search_knowledge", {"query": query}, None, "question")
        return None

    def _answers(self) -> tuple[list[str], list[str], float]:
        """The knowledge base's answers to this turn's questions (each passage once), the questions it could not
        answer, and the best similarity. A question whose nearest passage was refused but is already in the reply
        (for the question before it) is not called unknown: the lead has what the knowledge base says."""
        results = {a.get("query"): r for a, r in self._results("search_knowledge")}
        answers: list[str] = []
        refused: list[tuple[str, str]] = []
        best = 0.0
        for question, query in self._queries():
            if query not in results:
                continue
            result = results[query]
            hit = _pick(question, result.get("results") or [])
            if result.get("confident") and hit and _grounded(query, hit["text"]):  # "what would that cost?": of what
                answer = hit["text"].split("\n", 1)[-1].strip()
                if answer not in answers:
                    answers.append(answer)
                best = max(best, float(hit.get("similarity") or 0))
            else:
                refused.append((question, hit["text"].split("\n", 1)[-1].strip() if hit else ""))
        unknown = [q for q, nearest in refused if not nearest or nearest not in answers]
        return answers, unknown, best

    def _close(self) -> AIMessage:
        """The reply of a turn with no task left to carry on: answers, or a greeting, or a handoff."""
        answers, unknown, best = self._answers()
        prefix = self._prefix()
        if unknown and not answers and not prefix:
            return self._handoff("lack_of_information", f"No confident answer in the knowledge base for: "
                                                        f"\"{unknown[0][:300]}\"")
        if answers or prefix:
            return self._reply([*prefix, *answers, self._say("unknown") if unknown else ""],
                               best or self.confidence, intent="question" if answers else None)
        if self.intent == "thanks":
            return self._reply([self._say("thanks")])
        if self.intent == "greeting" or not self.text.strip():
            name = (self.ctx.get("lead_name") or "")
            return self._reply([self._say("greeting", business=self.ctx.get("business") or "us",
                                          name=f" {name}" if name else "")], 1.0 if not self.text else None)
        if "search_knowledge" in self.tools and not self._ran("search_knowledge"):
            return self._call("search_knowledge", {"query": self.text[:500]}, None, "question")
        result = self._last("search_knowledge")
        hit = _pick(self.text, (result or {}).get("results") or [])
        if result and result.get("confident") and hit and _grounded(self.text, hit["text"]):
            return self._reply([hit["text"].split("\n", 1)[-1].strip()], float(hit.get("similarity") or 0),
                               intent="question")
        if "request_human_handoff" in self.tools:
            return self._handoff("lack_of_information", f"No confident answer in the knowledge base for: "
                                                        f"\"{self.text[:300]}\"")
        return self._reply([self._say("unknown"), self._say("anything_else")], 0.2)

    def _prefix(self) -> list[str]:
        """What comes before the task's words: who the agent is, when asked, and saved details."""
        parts = []
        if self.signals.get("bot"):
            parts.append(self._say("identity", agent=self.ctx.get("agent_name") or "the assistant",
                                   business=self.ctx.get("business") or "us"))
        return parts

    def _with_answers(self, parts: list[str]) -> list[str]:
        answers, unknown, _ = self._answers()
        return [*self._prefix(), *answers, self._say("unknown") if unknown else "", *parts]

    def _after_handoff(self, result: dict[str, Any]) -> AIMessage:
        if not result.get("ok", True):
            return self._reply([self._say("unreachable")], 0.2)
        args = next(a for n, a, _ in reversed(self.done) if n == "request_human_handoff")
        parts: list[str] = []
        if args.get("reason") == "negative_sentiment":
            parts.append(self._say("apology"))
        if args.get("reason") == "urgent":  # the business's emergency advice, if its knowledge has any
            terms = [fold(t).strip() for t in self._say("urgent_query").split(",")]
            advice = [h["text"].split("\n", 1)[-1].strip() for _, r in self._results("search_knowledge")
                      for h in r.get("results") or [] if any(t and t[:6] in fold(h["text"]) for t in terms)]
            parts += [*advice[:1], self._say("urgent")]
            if not advice:
                parts.append(self._say("urgent_danger", number=emergency_number(self.ctx.get("country"))))
        if args.get("reason") == "lack_of_information":
            parts.append(self._say("unknown"))
        configured = (self.ctx.get("handoff_messages") or {}).get(self.lang)
        parts.append(configured or self._say("handoff", eta=self._eta()))
        return self._reply(parts, self.confidence)

    def _eta(self) -> str:
        opens = self.ctx.get("opens_at")
        if not opens:
            return self._say("eta_soon")
        return self._say("eta_later", when=self._time(opens))

    # ---------------------------------------------------------------- booking
    def _now(self) -> datetime:
        now = self.ctx.get("now")
        zone = ZoneInfo(self.zone)
        return (datetime.fromisoformat(now) if now else datetime.now(zone)).astimezone(zone)

    def _service_id(self) -> str | None:
        wanted = self.frame.get("service")
        return next((s.get("id") for s in self.ctx.get("services") or [] if s.get("name") == wanted and s.get("id")),
                    None)

    def _availability_args(self, base: datetime | None = None) -> dict[str, Any]:
        """check_availability's arguments from the frame: the day or days asked, the exact time as `preferred`,
        a part of the day as a window. `base` is the appointment being moved ("same time", "an hour later")."""
        found = self.frame.get("when") or {}
        now = self._now()
        first, last = frames.when_bounds(found, now)
        at = time.fromisoformat(found["at"]) if found.get("at") else None
        if base is not None:
            base = base.astimezone(ZoneInfo(self.zone))
            if found.get("shift_minutes"):
                moved = base + timedelta(minutes=int(found["shift_minutes"]))
                first = last = moved.date() if not found.get("start_day") else first
                at = moved.time()
            elif found.get("same_time") and at is None:
                at = base.time()
        if at is not None and not found.get("start_day"):
            first = now.date() if datetime.combine(now.date(), at, tzinfo=now.tzinfo) > now else \
                now.date() + timedelta(days=1)
            last = first
        args: dict[str, Any] = {"from_date": first.isoformat(), "to_date": max(first, last).isoformat()}
        if at is not None:
            args["preferred"] = datetime.combine(first, at, tzinfo=ZoneInfo(self.zone)).isoformat()
            args["to_date"] = (first + timedelta(days=max(6, (last - first).days))).isoformat()
        elif found.get("after") or found.get("before"):
            for key in ("after", "before"):
                if found.get(key):  # the tool reads a window on the business's clock
                    args[key] = datetime.combine(first, time.fromisoformat(found[key]), tzinfo=ZoneInfo(
                        self.zone)).astimezone(ZoneInfo(self.business_zone)).time().isoformat("minutes")
        elif first == last:
            args["to_date"] = first.isoformat()
        service = self._service_id()
        if service:
            args["service_id"] = service
        return args

    def _exact(self) -> bool:
        found = self.frame.get("when") or {}
        return bool(found.get("start_day") and found.get("at")) or bool(found.get("shift_minutes"))

    def _chosen_slot(self) -> dict[str, Any] | None:
        offered = self.frame.get("offered") or []
        index = self.turn.get("choice")
        if index is not None and 0 <= index < len(offered):
            return offered[index]
        if self.frame.get("confirm") and self.turn.get("affirms"):
            return self.frame["confirm"]
        if len(offered) == 1 and self.turn.get("affirms"):
            return offered[0]
        return None

    def _task_book(self) -> AIMessage | None:
        if "check_availability" not in self.tools:
            return None if "search_knowledge" in self.tools else self._handoff(
                "missing_capability", f"The lead wants to book: \"{self.text[:300]}\"")
        booked = self._last("book_appointment")
        if booked is not None:
            return self._after_booking(booked)
        slot = self._chosen_slot() if not self.turn.get("when") or self.turn.get("choice") is not None else None
        if slot is not None:
            return self._book(slot)
        if not self.frame.get("when") and not self.turn.get("affirms") and not self._ran("check_availability") \
                and self.frame.get("offered") and self.turn.get("denies"):
            return self._reply(self._with_answers([self._say("ask_time")]), intent="book")
        checked = self._last("check_availability")
        if checked is None:
            return self._call("check_availability", self._availability_args(), None, "book")
        return self._after_availability(checked, self._book)

    def _book(self, slot: dict[str, Any]) -> AIMessage:
        args: dict[str, Any] = {"slot_start": slot["start"], "calendar_id": slot["calendar_id"]}
        service = self._service_id()
        if service:
            args["service_id"] = service
        return self._call("book_appointment", args, None, "book")

    def _after_availability(self, result: dict[str, Any], act: Any) -> AIMessage:
        if not result.get("ok", True):
            return self._handoff("failed_to_resolve", f"check_availability failed: "
                                                      f"{(result.get('error') or {}).get('message')}")
        slots = result.get("slots") or []
        requested = result.get("requested") or {}
        asked: dict[str, Any] = next((a for a, r in reversed(self._results("check_availability")) if r is result), {})
        if not requested and asked.get("preferred"):  # a tool that does not judge the time: is it among the slots?
            wanted = datetime.fromisoformat(asked["preferred"])
            hit = next((s for s in slots if datetime.fromisoformat(s["start"]) == wanted), None)
            requested = {"start": hit["start"], "free": True, "calendar_id": hit["calendar_id"]} if hit else {}
        if requested.get("free"):
            wanted = datetime.fromisoformat(str(requested["start"]))
            slot = next((s for s in slots if datetime.fromisoformat(s["start"]) == wanted), None) or {
                "start": requested["start"], "calendar_id": requested.get("calendar_id") or (slots[0]["calendar_id"]
                                                                                           if slots else None)}
            if slot.get("calendar_id") and self._exact():
                return act(slot)
            if slot.get("calendar_id"):  # a time without its day: confirm the day before booking
                service = f" ({self.frame['service']})" if self.frame.get("service") else ""
                return self._reply(self._with_answers([self._say("confirm", when=self._time(slot["start"]),
                                                                 service=service)]), proposal=slot)
        checks = self._results("check_availability")
        if not slots and len(checks) == 1 and checks[0][0]["from_date"] == checks[0][0].get("to_date"):
            wider = dict(checks[0][0])
            wider["to_date"] = (datetime.fromisoformat(wider["from_date"]) + timedelta(days=7)).date().isoformat()
            return self._call("check_availability", wider)  # nothing that day: the nearest days after it
        reason = self._reason(requested) or self._closed_day(checks)
        if not slots:
            return self._reply(self._with_answers([reason, self._say("no_slots")]))
        offer = join([self._time(s["start"]) for s in slots[:3]], self.lang)
        return self._reply(self._with_answers([reason, self._say("offer", offer=offer)]))

    def _closed_day(self, checks: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
        """The day asked for had nothing because the business is closed then ("tomorrow" on a holiday)."""
        for args, result in checks:
            if result.get("closed") in ("closed", "closed_date") and args.get("from_date"):
                day = date.fromisoformat(args["from_date"])
                return self._say(f"reason_{result['closed']}",
                                 day=say_day(day, self.lang, weekday_only=result["closed"] == "closed"))
        return ""

    def _reason(self, requested: dict[str, Any]) -> str:
        """Why the time asked for is not free, in the lead's language."""
        if not requested or requested.get("free") or not requested.get("start"):
            return ""
        start = datetime.fromisoformat(requested["start"]).astimezone(ZoneInfo(self.zone))
        reason = requested.get("reason") or "other"
        key = f"reason_{reason}" if reason in ("taken", "closed", "closed_date", "notice", "outside_hours",
                                               "outside_window", "past") else "reason_other"
        when_said = self._time(start)
        return self._say(key, when=when_said[:1].upper() + when_said[1:],
                         day=say_day(start.date(), self.lang, weekday_only=reason == "closed"))

    def _slot_taken(self, result: dict[str, Any]) -> AIMessage:
        """The slot went while the lead chose it: say so and offer the alternatives the tool returned."""
        alternatives = (result.get("error") or {}).get("alternatives") or []
        offer = join([self._time(a) for a in alternatives[:3]], self.lang)
        return self._reply([self._say("slot_taken"),
                            self._say("offer", offer=offer) if offer else self._say("no_slots")])

    def _after_booking(self, result: dict[str, Any]) -> AIMessage:
        if not result.get("ok", True):
            return self._slot_taken(result)
        move = self._move_deal("on_booked")
        if move is not None and not self._ran("move_opportunity"):
            return move
        service = f" ({self.frame['service']})" if self.frame.get("service") else ""
        return self._reply(self._with_answers([self._say("booked", when=self._time(result["start"]), service=service,
                                                         zone=self.zone)]), intent="book")

    # ---------------------------------------------------------------- appointments of the lead
    def _appointments(self) -> list[dict[str, Any]] | None:
        listed = self._last("list_appointments")
        return None if listed is None else list(listed.get("appointments") or [])

    def _which(self, upcoming: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The appointment the lead means: the only one, the one chosen from a list we gave, or the one on the
        day they name."""
        if len(upcoming) == 1:
            return upcoming[0]
        chosen = self.frame.get("appointment_id")
        if chosen:
            return next((a for a in upcoming if a["id"] == chosen), None)
        meant = _meant(self.text)  # "cancel monday's job but keep friday": not the part that is kept
        index = choice.choose(meant, [datetime.fromisoformat(a["start"]) for a in upcoming], language=self.lang)
        if index is not None:
            return upcoming[index]
        found = frames.when_of(meant, self.ctx) if meant != self.text else (self.turn.get("when") or {})
        if found and found.get("start_day"):
            same_day = [a for a in upcoming if datetime.fromisoformat(a["start"]).astimezone(
                ZoneInfo(self.zone)).date().isoformat() == found["start_day"]]
            if len(same_day) == 1:
                return same_day[0]
        return None

    def _ask_which(self, upcoming: list[dict[str, Any]]) -> AIMessage:
        choices = join([self._time(a["start"]) for a in upcoming[:4]], self.lang)
        return self._reply(self._with_answers([self._say("which_appointment", count=len(upcoming), choices=choices)]))

    def _task_cancel(self) -> AIMessage | None:
        if "list_appointments" not in self.tools:
            return None
        cancelled = self._last("cancel_appointment")
        if cancelled is not None:
            args = next(a for n, a, _ in reversed(self.done) if n == "cancel_appointment")
            start = next((a["start"] for a in self._appointments() or [] if a["id"] == args["appointment_id"]), None)
            if not cancelled.get("ok", True):
                return self._handoff("failed_to_resolve", "cancel_appointment failed")
            return self._reply(self._with_answers([self._say("cancelled", when=self._time(start) if start else "")]))
        upcoming = self._appointments()
        if upcoming is None:
            return self._call("list_appointments", {}, None, "cancel")
        if not upcoming:
            return self._reply(self._with_answers([self._say("no_appointment")]))
        target = self._which(upcoming)
        if target is None:
            return self._ask_which(upcoming)
        return self._call("cancel_appointment", {"appointment_id": target["id"], "reason": self.text[:200]}, None,
                          "cancel")

    def _task_reschedule(self) -> AIMessage | None:
        if "list_appointments" not in self.tools:
            return None
        moved = self._last("reschedule_appointment")
        if moved is not None:
            if not moved.get("ok", True):
                return self._slot_taken(moved)
            return self._reply(self._with_answers([self._say("rescheduled", when=self._time(moved["start"]),
                                                             zone=self.zone)]))
        upcoming = self._appointments()
        if upcoming is None:
            return self._call("list_appointments", {}, None, "reschedule")
        if not upcoming:  # nothing to move: say so, and offer to book
            return self._reply(self._with_answers([self._say("no_appointment")]))
        target = self._which(upcoming)
        if target is None:
            return self._ask_which(upcoming)
        slot = self._chosen_slot() if not self.turn.get("when") or self.turn.get("choice") is not None else None
        if slot is not None:
            return self._move(target, slot)
        found = self.frame.get("when") or {}
        if not found:
            return self._reply(self._with_answers([self._say("ask_new_time", when=self._time(target["start"]))]))
        checked = self._last("check_availability")
        if checked is None:
            return self._call("check_availability", self._availability_args(datetime.fromisoformat(target["start"])),
                              None, "reschedule")
        return self._after_availability(checked, lambda s: self._move(target, s))

    def _move(self, appointment: dict[str, Any], slot: dict[str, Any]) -> AIMessage:
        args = {"appointment_id": appointment["id"], "new_start": slot["start"]}
        if slot.get("calendar_id"):  # a team: the member free at that time
            args["calendar_id"] = slot["calendar_id"]
        return self._call("reschedule_appointment", args, None, "reschedule")

    def _task_my_appointments(self) -> AIMessage | None:
        if "list_appointments" not in self.tools:
            return None
        upcoming = self._appointments()
        if upcoming is None:
            return self._call("list_appointments", {}, None, "my_appointments")
        if not upcoming:
            return self._reply(self._with_answers([self._say("no_appointment")]))
        return self._reply(self._with_answers([self._say("next_appointment", when=self._time(upcoming[0]["start"]))]))

    # ---------------------------------------------------------------- payments
    def _task_pay(self) -> AIMessage | None:
        if "send_payment_link" not in self.tools:
            return None
        sent = self._last("send_payment_link")
        if sent is not None:
            if not sent.get("ok", True):
                return self._handoff("failed_to_resolve", f"send_payment_link failed: "
                                                          f"{(sent.get('error') or {}).get('message')}")
            return self._reply(self._with_answers([self._say(
                "payment_link", number=sent.get("number"), currency=sent.get("currency"), due=sent.get("due"),
                link=sent.get("payment_link"))]), intent="pay")
        created = self._last("create_invoice")
        if created is not None and created.get("ok", True):
            return self._call("send_payment_link", {"invoice_id": created["invoice_id"]}, None, "pay")
        status = self._last("invoice_status")
        if status is None and "invoice_status" in self.tools:
            return self._call("invoice_status", {}, None, "pay")
        if status is not None and status.get("ok", True) and status.get("status") in ("open", "sent", "draft",
                                                                                      "overdue", "partially_paid") \
                and _money(status.get("due")) > 0:
            return self._call("send_payment_link", {"invoice_id": status["invoice_id"]}, None, "pay")
        products = self._last("list_products")
        if products is None and "list_products" in self.tools and _buys(self.text):
            return self._call("list_products", {}, None, "pay")
        product = _product_asked(self.text, (products or {}).get("products") or [])
        if product is not None and "create_invoice" in self.tools and created is None:
            count = self.turn.get("quantity") or 1
            per_unit = PER_UNIT.search(f"{product.get('product')} {product.get('label') or ''}")
            return self._call("create_invoice", {"items": [{"price_id": product["price_id"],
                                                            "quantity": count if per_unit and count <= 50 else 1}]},
                              None, "pay")
        if "search_knowledge" in self.tools and not self._ran("search_knowledge"):
            # nothing to charge for what they name: what the business says about it ("earnest money goes to escrow")
            return self._call("search_knowledge", {"query": self.text[:500]}, None, "pay")
        looked = self._last("search_knowledge") or {}
        hit = _pick(self.text, looked.get("results") or [])
        said = [hit["text"].split("\n", 1)[-1].strip()] if looked.get("confident") and hit \
            and _grounded(self.text, hit["text"]) and not self._answers()[0] else []
        if status is not None and status.get("ok", True) and status.get("status") == "paid":
            return self._reply(self._with_answers([self._say(
                "paid_in_full", number=status.get("number"), currency=status.get("currency"),
                total=status.get("total"))]), intent="pay")
        return self._reply(self._with_answers([*said, self._say("nothing_owed")]), intent="pay")

    # ---------------------------------------------------------------- qualification
    def _task_enquiry(self) -> AIMessage | None:
        """Ask the configured questions one at a time (answers are saved as they come, see `_save_details`);
        with all answered, open the lead's deal (or move the one they have) and say the team will follow up."""
        saved = {k for a, r in self._results("update_contact") if r.get("ok", True)
                 for k in (a.get("custom_fields") or {})}
        asked_before = set(self.frame.get("asked_fields") or [])  # a question is asked once: no nagging
        pending = [q for q in self.ctx.get("qualification") or [] if q["field"] not in saved
                   and q["field"] not in asked_before and self._can_ask(q)]
        if pending:
            return self._reply(self._with_answers([self._question_text(pending[0])]), intent="qualify",
                               asks=pending[0]["field"])
        if self._ran("create_opportunity") or self._ran("move_opportunity"):
            return self._reply(self._with_answers([self._say("qualified")]), intent="qualify")
        stage = (self.ctx.get("pipeline") or {}).get("on_qualified")
        if self.ctx.get("deal") is None and "create_opportunity" in self.tools:
            what = self.frame.get("enquiry") or self.frame.get("service") or "enquiry"
            name = f"{self.ctx.get('lead_name') or self.ctx.get('business') or 'Lead'} - {what}"
            return self._call("create_opportunity", {"name": name[:120], **({"stage": stage} if stage else {})},
                              None, "qualify")
        move = self._move_deal("on_qualified")
        if move is not None:
            return move
        return self._reply(self._with_answers([self._say("qualified")]), intent="qualify")

    def _move_deal(self, setting: str) -> AIMessage | None:
        """Move the lead's open deal to the stage the agent's pipeline setting names, unless it is there already,
        there is no deal or setting, or the agent may not move deals."""
        deal, stage = self.ctx.get("deal"), (self.ctx.get("pipeline") or {}).get(setting)
        if not deal or not stage or str(deal.get("stage", "")).lower() == stage.lower() \
                or "move_opportunity" not in self.tools:
            return None
        return self._call("move_opportunity", {"opportunity_id": deal["id"], "stage": stage})


BUY_WORDS = re.compile(r"\b(buy|purchase|order|get (a|an|one)|gift|voucher|membership|plan|package|subscribe|deposit|"
                       r"sign (me|us) up|fee|señal|senal|depósito|deposito|reserva|"
                       r"comprar|compra|regalo|bono|tarjeta|plan|paquete)", re.I)


# an item priced per person is invoiced for the people the lead names ("me and my partner (2 adults)")
PER_UNIT = re.compile(r"\bper\b|\beach\b|\bpor\s+(persona|adulto|cabeza|invitado|asistente)\b|/\s*(person|adult|guest|"
                      r"head|persona)\b", re.I)
PAY_WORDS = frozenset({"deposit", "deposits", "fee", "fees", "payment", "payments", "charge", "senal", "deposito",
                       "pago", "pagos", "cuota", "plan", "the", "and", "for"})


def _buys(text: str) -> bool:
    return bool(BUY_WORDS.search(text))


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError):
        return Decimal(0)


def _product_asked(text: str, products: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The catalogue item the lead asks to buy: the one whose name's words they use, the amount they name
    breaking a tie."""
    said = fold(text)
    amounts = {_money(a.replace(",", "")) for a in re.findall(r"[$€£]\s?(\d[\d,]*(?:\.\d\d)?)", text)}
    scored = []
    for product in products:
        words = [w for w in re.findall(r"[a-z]{3,}", fold(f"{product.get('product')} {product.get('label') or ''}"))
                 if w not in ("the", "and", "for", "con", "del", "las", "los")]
        matched = [w for w in words if w in said or w.rstrip("s") in said]
        hits = len(matched)
        if any(w not in PAY_WORDS for w in matched):  # "my deposit" names no product; "anti-wrinkle deposit" does
            scored.append((hits + (2 if _money(product.get("amount")) in amounts else 0), product))
    if not scored:
        return None
    scored.sort(key=lambda kv: -kv[0])
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None
    return scored[0][1]


__all__ = ["CONTEXT_TAG", "LocalPolicyModel", "Policy"]
