"""Simulated users. The offline one is a deterministic script: it answers the agent's questions from its known
facts (`answers`: regex on the agent's message -> reply) and otherwise says its next scripted turn. Templates
fill from the facts and from what the agent just said: `{offer[0]}` is the first time the agent offered.
The LLM one plays the persona and goal on an OpenAI-compatible endpoint (OPENAI_BASE_URL), seeded per trial."""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from evals.harness.scenario import Scenario, Step
from leadpilot.settings import get_settings

OFFERED = re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                     r"\d{1,2} at \d{1,2}(?::\d\d)? [AP]M")
DONE = "<done>"


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"template field {{{key}}} is neither a known fact nor `offer`/`last`")


def render(template: str, facts: dict[str, Any], last_reply: str, offers: list[str]) -> str:
    """Fill a scripted line from the facts, the agent's last reply and the times offered so far."""
    values = _Lenient({**facts, "offer": offers, "last": last_reply})
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    for name in fields:
        root = re.match(r"\w+", name)
        if root and root.group() == "offer":
            index = int(re.search(r"\[(\d+)\]", name).group(1)) if "[" in name else 0  # type: ignore[union-attr]
            if index >= len(offers):
                raise LookupError(f"the script needs {{{name}}} but the agent offered only {offers or 'no times'}")
    return template.format_map(values)


@dataclass
class ScriptedUser:
    """Deterministic: the same agent replies always get the same user messages."""

    scenario: Scenario
    position: int = 0
    used_answers: set[int] = field(default_factory=set)
    offers: list[str] = field(default_factory=list)

    def next(self, last_reply: str) -> Step | None:
        """The next step, given the agent's last reply ('' before the first turn); None ends the conversation."""
        user = self.scenario.user
        if last_reply:
            found = OFFERED.findall(last_reply)
            if found:
                self.offers = found
            for i, answer in enumerate(user.answers):
                if (answer.once and i in self.used_answers) or not re.search(answer.when, last_reply, re.I):
                    continue
                self.used_answers.add(i)
                return Step(say=render(answer.say, user.known_facts, last_reply, self.offers))
        if self.position >= len(user.turns):
            return None
        step = user.turns[self.position]
        self.position += 1
        if step.say is not None:
            return Step(say=render(step.say, user.known_facts, last_reply, self.offers))
        if step.burst is not None:
            return Step(burst=[render(line, user.known_facts, last_reply, self.offers) for line in step.burst])
        if step.slot:
            return step.model_copy(update={"slot": render(step.slot, user.known_facts, last_reply, self.offers)})
        return step


def user_model(seed: int) -> BaseChatModel:
    """The simulated user's own model: the OpenAI-compatible endpoint of OPENAI_BASE_URL (with the configured
    model and key), sampled at temperature 1 with a seed, so trials differ from each other and each one can be
    replayed. It does not depend on which model the agent runs on: the offline agent can face an LLM user."""
    settings = get_settings()
    if not settings.openai_base_url:
        raise RuntimeError("the LLM user needs OPENAI_BASE_URL (an OpenAI-compatible endpoint)")
    return ChatOpenAI(model=settings.eval_user_model or settings.openai_model, base_url=settings.openai_base_url,
                      api_key=settings.openai_api_key or "not-needed", temperature=1.0, seed=seed,  # type: ignore[arg-type]
                      max_completion_tokens=200)


def trial_seed(scenario_id: str, trial: int) -> int:
    """Stable across processes (not Python's salted hash): the same scenario and trial, the same seed."""
    return int(hashlib.sha256(f"{scenario_id}#{trial}".encode()).hexdigest()[:8], 16)


@dataclass
class LLMUser:
    """tau-bench's user simulator: a model plays the lead from the persona, the goal and the known facts, never
    volunteering what it was not asked, and ends with <done> when the goal is met or cannot be. It opens with the
    scenario's first scripted turn, so both simulators start alike."""

    scenario: Scenario
    model: BaseChatModel
    history: list[tuple[str, str]] = field(default_factory=list)
    started: bool = False

    def system_prompt(self) -> str:
        user = self.scenario.user
        return (f"You are role-playing a customer writing to a business by {self.scenario.channel}. Stay in "
                f"character; you are not an assistant.\nPersona: {user.persona}\nYour goal: {user.goal}\n"
                f"Facts you know (give one only when asked for it, never ahead): {user.known_facts}\n"
                f"Things you do not know (say so if asked): {user.unknown_facts}\n{user.llm_instructions or ''}\n"
                f"Write only the customer's next message, short, the way people text. When the goal is met or "
                f"cannot be met, reply exactly {DONE}.")

    def next(self, last_reply: str) -> Step | None:
        user = self.scenario.user
        if not self.started:
            self.started = True
            opening = user.turns[0]
            first = render(opening.say or " ".join(opening.burst or []), user.known_facts, "", [])
            self.history.append(("user", first))
            return Step(say=first)
        if last_reply:
            self.history.append(("assistant", last_reply))
        # roles flip: the agent's messages are the 'human' side for the simulator model
        messages = [SystemMessage(self.system_prompt())] + [
            HumanMessage(t) if r == "assistant" else AIMessage(t) for r, t in self.history]
        said = str(self.model.invoke(messages).content).strip()
        if not said or DONE in said:
            return None
        self.history.append(("user", said))
        return Step(say=said)


def simulator_for(scenario: Scenario, kind: str, trial: int = 0) -> ScriptedUser | LLMUser:
    """`scripted` (offline, default) or `llm` (an OpenAI-compatible endpoint at OPENAI_BASE_URL)."""
    if kind == "llm":
        return LLMUser(scenario, user_model(trial_seed(scenario.id, trial)))
    return ScriptedUser(scenario)
