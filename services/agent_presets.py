"""Vertical presets: what a restaurant, a dental clinic, a plumber, a realtor or a med spa offers, asks and says,
as data files (services/presets/<name>.yaml) a sub-account copies into its own configuration and then edits.

Each file is validated here, unknown keys refused, so a preset can only hold what the agent really reads; the
agent settings it yields are the same `AgentSettings` the agent API takes.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, StringConstraints, ValidationError, model_validator

from services.agent_config import (
    AgentSettings,
    HandoffScenario,
    Intent,
    Name,
    PipelineSettings,
    Question,
    Reason,
    Slug,
    Strict,
    Text,
)
from services.errors import InvalidInput

PRESET_DIR = Path(__file__).parent / "presets"
MIN_EXAMPLES_PER_LANGUAGE = 6
PresetName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class PresetError(ValueError):
    """A preset file that does not validate (a packaging error, never the caller's)."""


class FieldDefinition(Strict):
    """A contact custom field the preset's questions store answers in."""

    key: Slug
    label: Name
    type: Literal["text", "number", "select", "multi_select", "date"]
    options: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _options(self) -> FieldDefinition:
        if (self.type in ("select", "multi_select")) != bool(self.options):
            raise ValueError(f"{self.key}: select and multi_select fields need options, and only they take them")
        return self


class PresetService(Strict):
    """A bookable service with the words leads use for it and its typical duration and price."""

    name: Name
    description: Text | None = None
    duration_minutes: int = Field(gt=0, le=1440)
    price: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    synonyms: list[Text] = Field(min_length=1)


class FAQ(Strict):
    question: Text
    answer: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    category: Name | None = None


class PresetIntent(Strict):
    """An intent with its examples per language (stored flattened, as the agent API takes them)."""

    name: Slug
    action: Literal["qualify", "book", "handoff", "answer"]
    service: Name | None = None
    handoff_reason: Reason | None = None
    examples: dict[str, list[Text]]

    def as_intent(self) -> Intent:
        return Intent(name=self.name, action=self.action, service=self.service, handoff_reason=self.handoff_reason,
                      examples=[e for examples in self.examples.values() for e in examples])


class Stage(Strict):
    name: Name
    probability: int = Field(0, ge=0, le=100)
    outcome: Literal["open", "won", "lost"] = "open"


class PresetPipeline(Strict):
    name: Name
    stages: list[Stage] = Field(min_length=2)
    on_qualified: Name | None = None
    on_booked: Name | None = None


class Preset(Strict):
    """One vertical's starting configuration."""

    name: PresetName
    vertical: Name
    summary: Text
    agent: AgentSettings
    custom_fields: list[FieldDefinition] = Field(default_factory=list)
    qualification_questions: list[Question] = Field(default_factory=list)
    intents: list[PresetIntent] = Field(default_factory=list)
    services: list[PresetService] = Field(default_factory=list)
    faq: list[FAQ] = Field(default_factory=list)
    pipeline: PresetPipeline
    handoff: dict[Reason, HandoffScenario] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _coherent(self) -> Preset:
        for name in ("intents", "qualification_questions", "handoff_settings", "pipeline_settings"):
            if name in self.agent.model_fields_set:
                raise ValueError(f"agent.{name} belongs at the top level of a preset")
        if not self.agent.name or not self.agent.languages:
            raise ValueError("agent.name and agent.languages are required")
        languages = self.agent.languages
        fields = {f.key for f in self.custom_fields}
        services = {s.name for s in self.services}
        stages = {s.name for s in self.pipeline.stages}
        problems = [f"question asks for unknown field {q.field!r}" for q in self.qualification_questions
                    if q.field not in fields]
        problems += [f"intent {i.name!r} names unknown service {i.service!r}" for i in self.intents
                     if i.service is not None and i.service not in services]
        problems += [f"pipeline.{k} {v!r} is not a stage" for k, v in (("on_qualified", self.pipeline.on_qualified),
                                                                       ("on_booked", self.pipeline.on_booked))
                     if v is not None and v not in stages]
        for intent in self.intents:
            for language in languages:
                if len(intent.examples.get(language, [])) < MIN_EXAMPLES_PER_LANGUAGE:
                    problems.append(f"intent {intent.name!r} needs {MIN_EXAMPLES_PER_LANGUAGE} examples in {language}")
            problems += [f"intent {intent.name!r} has examples in {code!r}, not one of {languages}"
                         for code in intent.examples if code not in languages]
        others = languages[1:]
        problems += [f"question {q.field!r} has no {code!r} translation" for q in self.qualification_questions
                     for code in others if code not in q.translations]
        problems += [f"handoff {reason!r} has no {code!r} translation" for reason, h in self.handoff.items()
                     for code in others if h.message and code not in h.translations]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def agent_settings(self) -> AgentSettings:
        """The agent this preset makes, as the agent API would be asked for it."""
        settings = self.agent.model_copy(deep=True)
        settings.intents = [i.as_intent() for i in self.intents]
        settings.qualification_questions = list(self.qualification_questions)
        settings.handoff_settings = dict(self.handoff)
        settings.pipeline_settings = PipelineSettings(on_qualified=self.pipeline.on_qualified,
                                                      on_booked=self.pipeline.on_booked)
        settings.system_prompt = settings.system_prompt or (
            f"You are {settings.name}, the assistant of a {self.vertical.lower()}. {self.summary}")
        settings.model_fields_set.update({"intents", "qualification_questions", "handoff_settings",
                                          "pipeline_settings", "system_prompt"})
        return settings


def load_preset_file(path: Path) -> Preset:
    """Parse and validate one preset file (PresetError naming the file and the problem otherwise)."""
    try:
        preset = Preset.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise PresetError(f"{path.name}: {exc}") from exc
    if preset.name != path.stem:
        raise PresetError(f"{path.name}: its name is {preset.name!r}, not the file's {path.stem!r}")
    return preset


@cache
def presets() -> dict[str, Preset]:
    """Every shipped preset by name, validated once per process."""
    return {p.stem: load_preset_file(p) for p in sorted(PRESET_DIR.glob("*.yaml"))}


def get_preset(name: str) -> Preset:
    """A preset by name; an unknown name is invalid input (422) naming the presets there are."""
    found = presets().get(name)
    if found is None:
        msg = f"No preset {name!r}; the presets are {', '.join(presets())}."
        raise InvalidInput(msg, errors=[{"loc": ["body", "preset"], "msg": msg, "type": "unknown_preset"}])
    return found
