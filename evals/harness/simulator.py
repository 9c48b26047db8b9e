"""Simulated users. The offline one is a deterministic script: it answers the agent's questions from its known
facts (`answers`: regex on the agent's message -> reply) and otherwise says its next scripted turn. Templates
fill from the facts and from what the agent just said: `{offer[0]}` is the first time the agent offered.
The LLM one (only with LLM_PROVIDER=openai) plays the persona and goal with the same provider."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from evals.harness.scenario import Scenario, Step

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


@dataclass
class LLMUser:
    """A user played by the configured OpenAI-compatible model (deepeval's ConversationSimulator when installed
    follows the same idea; this one keeps the scenario's scripted first turn so both simulators start alike)."""

    scenario: Scenario
    history: list[tuple[str, str]] = field(default_factory=list)
    started: bool = False

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
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        from agents.models import chat_model

        system = (f"You are role-playing a customer texting a business. Persona: {user.persona}\nGoal: {user.goal}\n"
                  f"Facts you know: {user.known_facts}\nThings you do not know (say so if asked): "
                  f"{user.unknown_facts}\n{user.llm_instructions or ''}\nReply with the customer's next SMS only, "
                  f"short. When the goal is met or cannot be met, reply exactly {DONE}.")
        # roles flip: the agent's messages are the 'human' side for the simulator model
        messages = [SystemMessage(system)] + [HumanMessage(t) if r == "assistant" else AIMessage(t)
                                              for r, t in self.history]
        said = str(chat_model().invoke(messages).content).strip()
        if not said or DONE in said:
            return None
        self.history.append(("user", said))
        return Step(say=said)


def simulator_for(scenario: Scenario, kind: str) -> ScriptedUser | LLMUser:
    """`scripted` (offline, default) or `llm` (needs LLM_PROVIDER=openai)."""
    if kind == "llm":
        from leadpilot.settings import get_settings

        if get_settings().llm_provider != "openai":
            raise RuntimeError("the LLM simulator needs LLM_PROVIDER=openai and an OpenAI-compatible model")
        return LLMUser(scenario)
    return ScriptedUser(scenario)
