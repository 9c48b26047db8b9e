"""The scenario format (one YAML file per scenario) as pydantic models, and a loader whose errors name the file
and the field."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CAPABILITIES = ("faq", "qualify", "book", "reschedule", "cancel", "pay", "handoff", "opt_out", "analyst",
                "injection")
Capability = Literal["faq", "qualify", "book", "reschedule", "cancel", "pay", "handoff", "opt_out", "analyst",
                     "injection"]
ENTITIES = ("appointment", "contact", "handoff", "opportunity", "invoice", "ai_config", "message")
DEFAULT_CLOCK = "2026-11-25T15:00:00+00:00"  # a Wednesday, the day after the demo agency's data ends


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeadFixture(Strict):
    """The contact the simulated user plays (always created fresh, so scenarios never share one)."""

    first_name: str = "Eval"
    last_name: str | None = None
    timezone: str | None = "America/Chicago"
    email: str | None = None
    phone: str | None = None
    lead_source: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    dnd_channels: dict[str, Any] = Field(default_factory=dict)


class AppointmentFixture(Strict):
    """An appointment that exists before the conversation; `start` is local time in the lead's timezone."""

    start: str
    status: str = "scheduled"
    contact: str = "lead"  # "lead" or the `key` of an extra contact


class ContactFixture(Strict):
    key: str
    first_name: str
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None


class InvoiceLine(Strict):
    description: str
    quantity: str = "1"
    unit_price: str


class InvoiceFixture(Strict):
    lines: list[InvoiceLine]
    status: str = "open"


class KnowledgeFixture(Strict):
    question: str
    answer: str
    category: str | None = None


class AgentFixture(Strict):
    """Changes to the sub-account's lead agent for this scenario only."""

    capabilities: list[str] | None = None
    mode: Literal["off", "suggestive", "autopilot"] | None = None


class InitialState(Strict):
    clock: datetime = Field(default_factory=lambda: datetime.fromisoformat(DEFAULT_CLOCK))
    sub_account: Literal["restaurant-a", "restaurant-b"] = "restaurant-a"
    lead: LeadFixture = Field(default_factory=LeadFixture)
    contacts: list[ContactFixture] = Field(default_factory=list)
    appointments: list[AppointmentFixture] = Field(default_factory=list)
    invoices: list[InvoiceFixture] = Field(default_factory=list)
    knowledge: list[KnowledgeFixture] = Field(default_factory=list)
    agent: AgentFixture = Field(default_factory=AgentFixture)
    user_email: str | None = None  # analyst scenarios: the staff member asking (their scope applies)
    scope: Literal["sub_account", "agency"] = "sub_account"  # analyst: one business or the agency view
    timezone: str = "America/New_York"  # analyst: the timezone the question is asked in

    @field_validator("clock")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("clock needs a timezone offset, e.g. 2026-11-25T15:00:00+00:00")
        return value


class Answer(Strict):
    """How the scripted user answers an agent message that matches `when` (a regex, case-insensitive)."""

    when: str
    say: str
    once: bool = True


class Step(Strict):
    """One scripted step: something the user says, or something that happens in the world meanwhile."""

    say: str | None = None
    action: Literal["take_slot", "return_to_ai", "advance_clock"] | None = None
    slot: str | None = None  # take_slot: a local time, or a template such as "{offer[0]}"
    minutes: int = 0  # advance_clock

    @model_validator(mode="after")
    def _one(self) -> Step:
        if (self.say is None) == (self.action is None):
            raise ValueError("a step has exactly one of `say` or `action`")
        if self.action == "take_slot" and not self.slot:
            raise ValueError("take_slot needs `slot`")
        return self


class User(Strict):
    persona: str = "A customer texting the business."
    goal: str
    known_facts: dict[str, Any] = Field(default_factory=dict)
    unknown_facts: list[str] = Field(default_factory=list)
    turns: list[Step] = Field(min_length=1)
    answers: list[Answer] = Field(default_factory=list)
    llm_instructions: str | None = None

    @field_validator("turns", mode="before")
    @classmethod
    def _plain_strings(cls, value: Any) -> Any:
        return [{"say": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value


class DbAssertion(Strict):
    """An entity matcher (`entity` + `where` + `count`), a SQL query compared with `equals`, or
    `only_lead_changed` (nothing outside the lead's own rows was written)."""

    entity: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)
    count: int | None = None
    query: str | None = None
    equals: Any = None
    only_lead_changed: bool = False

    @model_validator(mode="after")
    def _kind(self) -> DbAssertion:
        kinds = [self.entity is not None, self.query is not None, self.only_lead_changed]
        if sum(kinds) != 1:
            raise ValueError("a db assertion has exactly one of `entity`, `query` or `only_lead_changed: true`")
        if self.entity is not None and self.entity not in ENTITIES:
            raise ValueError(f"unknown entity {self.entity!r}; one of {', '.join(ENTITIES)}")
        if self.query is not None and self.equals is None:
            raise ValueError("a query assertion needs `equals`")
        return self

    def describe(self) -> str:
        if self.only_lead_changed:
            return "only the lead's own rows changed"
        if self.query is not None:
            return f"{self.query} == {self.equals!r}"
        return f"{self.count if self.count is not None else '>=1'} {self.entity} where {self.where}"


class ReportCheck(Strict):
    """Analyst: the figure(s) the answer must state, computed independently from services/reporting."""

    kind: Literal["metric", "best_campaign", "worst_campaign", "unbooked_leads", "call_outcomes"]
    metric: str | None = None
    period: Literal["day", "week", "month", "quarter"] = "month"
    anchor: str | None = None  # a day inside the period (YYYY-MM-DD); default: the clock's date
    source: str | None = None
    with_baseline: bool = True


class Expected(Strict):
    db: list[DbAssertion] = Field(default_factory=list)
    must_say: list[str] = Field(default_factory=list)
    must_not_say: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)  # tools that must be called (ToolCorrectness)
    must_not_call: list[str] = Field(default_factory=list)
    handoff: str | None = "none"  # a handoff reason, "none", or null to not check
    report: list[ReportCheck] = Field(default_factory=list)
    nl_assertions: list[str] = Field(default_factory=list)


class Scenario(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    capability: Capability
    channel: Literal["sms", "email", "webchat", "staff"] = "sms"
    description: str | None = None
    initial_state: InitialState = Field(default_factory=InitialState)
    user: User
    expected: Expected
    max_turns: int = Field(default=8, ge=1, le=40)
    path: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Scenario:
        if (self.capability == "analyst") != (self.channel == "staff"):
            raise ValueError("analyst scenarios use channel `staff`, and only they do")
        return self


class ScenarioError(ValueError):
    """A scenario file that does not follow the format; the message names the file and the field."""


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with id, capability, user, expected")
    try:
        scenario = Scenario.model_validate({**raw, "path": str(path)})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ScenarioError(f"{path}: {problems}") from exc
    return scenario


def load_scenarios(paths: Iterable[Path | str], *, capability: str | None = None,
                   ids: Iterable[str] = ()) -> list[Scenario]:
    """Every *.yaml under the given files and folders, sorted by id; ids must be unique."""
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            files += sorted(p for p in entry.rglob("*.y*ml"))
        elif entry.exists():
            files.append(entry)
        else:
            raise ScenarioError(f"{entry}: no such file or folder")
    errors, scenarios = [], []
    for file in files:
        try:
            scenarios.append(load_scenario(file))
        except ScenarioError as exc:
            errors.append(str(exc))
    if errors:
        raise ScenarioError("\n".join(errors))
    seen: dict[str, str] = {}
    for s in scenarios:
        if s.id in seen:
            raise ScenarioError(f"{s.path}: id {s.id!r} is already used by {seen[s.id]}")
        seen[s.id] = str(s.path)
    wanted = set(ids)
    return sorted((s for s in scenarios if (capability is None or s.capability == capability)
                   and (not wanted or s.id in wanted)), key=lambda s: s.id)
