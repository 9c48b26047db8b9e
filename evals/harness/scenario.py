"""The scenario format (one YAML file per scenario) as pydantic models, and a loader whose errors name the file
and the field."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.agent_config import AgentSettings, Intent, Question
from services.agent_presets import presets

CAPABILITIES = ("faq", "qualify", "book", "reschedule", "cancel", "pay", "handoff", "opt_out", "analyst",
                "injection")
Capability = Literal["faq", "qualify", "book", "reschedule", "cancel", "pay", "handoff", "opt_out", "analyst",
                     "injection"]
ENTITIES = ("appointment", "contact", "handoff", "opportunity", "invoice", "ai_config", "message")
DEFAULT_CLOCK = "2026-11-25T15:00:00+00:00"  # a Wednesday, the day after the demo agency's data ends


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DealFixture(Strict):
    """An open deal of the lead in the business's default pipeline."""

    name: str = "Enquiry"
    stage: str | None = None  # a stage name of the default pipeline; default: its first stage
    value: Decimal = Field(Decimal("0"), ge=0)
    status: Literal["open", "won", "lost"] = "open"


class LeadFixture(Strict):
    """The contact the simulated user plays (always created fresh, so scenarios never share one). `first_name:
    null` is a lead whose name is not on file; `email: null` likewise (otherwise a unique one is made up)."""

    first_name: str | None = "Eval"
    last_name: str | None = None
    timezone: str | None = "America/Chicago"
    email: str | None = None
    phone: str | None = None
    lead_source: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    dnd_channels: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    deals: list[DealFixture] = Field(default_factory=list)


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


DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # index = day_of_week (0 = Sunday, as the schema)
Hours = dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], str | list[str]]


def parse_ranges(value: str | list[str]) -> list[tuple[time, time]]:
    """"09:00-17:00", ["09:00-12:00", "13:00-17:00"] or "closed" as (start, end) pairs, each start < end."""
    items = [value] if isinstance(value, str) else list(value)
    out: list[tuple[time, time]] = []
    for item in items:
        if item.strip().lower() == "closed":
            continue
        start, sep, end = item.partition("-")
        try:
            pair = (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
        except ValueError:
            raise ValueError(f"{item!r}: hours are HH:MM-HH:MM, e.g. 09:00-17:30, or 'closed'") from None
        if not sep or pair[0] >= pair[1]:
            raise ValueError(f"{item!r}: the opening time must come before the closing time")
        out.append(pair)
    return out


def _check_hours(hours: Hours | None) -> Hours | None:
    for value in (hours or {}).values():
        parse_ranges(value)
    return hours


def _check_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{zone!r} is not an IANA timezone (e.g. Europe/Madrid)") from None
    return zone


class CalendarSpec(Strict):
    """A bookable calendar of the business; `team` makes one calendar per member, booked round robin."""

    name: str
    hours: Hours | None = None  # default: the business's opening hours
    slot_minutes: int = Field(30, ge=5, le=480)
    buffer_before_minutes: int = Field(0, ge=0)
    buffer_after_minutes: int = Field(0, ge=0)
    min_notice_minutes: int = Field(60, ge=0)
    window_days: int = Field(60, ge=1, le=730)
    max_bookings_per_day: int | None = Field(None, ge=1)
    team: list[str] = Field(default_factory=list)  # staff names; none: one calendar of the business's manager

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: Hours | None) -> Hours | None:
        return _check_hours(value)


class ServiceSpec(Strict):
    """Something a lead books: its duration, price and deposit (a deposit means booking requires payment)."""

    name: str
    duration_minutes: int = Field(gt=0, le=1440)
    price: Decimal | None = Field(None, ge=0)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")  # default: the business's
    deposit: Decimal | None = Field(None, gt=0)
    description: str | None = None  # every calendar of the business offers every service
    synonyms: list[str] = Field(default_factory=list)  # words leads use for it, any language


class ProductSpec(Strict):
    name: str
    price: Decimal = Field(ge=0)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    description: str | None = None
    every: Literal["day", "week", "month", "year"] | None = None  # recurring price


class QuestionSpec(Strict):
    """A qualification question; its answer is stored in the contact's custom field `key`."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    question: str
    type: Literal["text", "textarea", "number", "money", "date", "select", "multi_select", "checkbox", "phone",
                  "email", "url"] = "text"
    options: list[str] = Field(default_factory=list)
    translations: dict[str, str] = Field(default_factory=dict)  # the question in other languages: {"es": "..."}
    ask: Literal["on_enquiry", "before_booking"] = "on_enquiry"

    @model_validator(mode="after")
    def _options(self) -> QuestionSpec:
        if (self.type in ("select", "multi_select")) != bool(self.options):
            raise ValueError("select and multi_select questions need `options`, and only they take them")
        return self

    def stored(self) -> dict[str, Any]:
        """The question as the agent API stores it (validated by the same model)."""
        return Question(field=self.key, key=self.key, question=self.question, translations=self.translations,
                        ask=self.ask).model_dump(exclude_none=True)


class AgentSpec(Strict):
    """The business's lead agent, configured as its agency would in the product."""

    name: str = "Assistant"
    persona: str | None = None
    system_prompt: str | None = None
    capabilities: list[str] = Field(default_factory=lambda: [
        "answer_faq", "book_appointments", "qualify_leads", "take_payments", "escalate_to_human"])
    mode: Literal["off", "suggestive", "autopilot"] = "autopilot"
    channel_modes: dict[Literal["sms", "email", "webchat"], Literal["off", "suggestive", "autopilot"]] = Field(
        default_factory=dict)
    qualification_questions: list[QuestionSpec] = Field(default_factory=list)
    pipeline: list[str] = Field(  # the default pipeline's stages, in order; "Won" and "Lost" close a deal
        default_factory=lambda: ["New Lead", "Qualified", "Booked", "Won", "Lost"], min_length=1)
    on_qualified: str | None = "Qualified"  # the pipeline stage a qualified lead's deal moves to
    on_booked: str | None = "Booked"
    handoff_message: str | None = None
    intents: list[Intent] = Field(default_factory=list)  # the business's own intents, as the agent API takes them
    languages: list[str] | None = None  # ISO 639-1 codes; default: [the business's language]

    @model_validator(mode="after")
    def _stages(self) -> AgentSpec:
        if self.languages is not None:
            AgentSettings(languages=self.languages)  # ISO 639-1 codes, distinct
        for stage in (self.on_qualified, self.on_booked):
            if stage is not None and stage not in self.pipeline:
                raise ValueError(f"pipeline stage {stage!r} is not one of the pipeline's stages {self.pipeline}")
        return self


class BusinessFixture(Strict):
    """A business built from scratch for the scenario (a new sub-account of the demo agency): its place, hours,
    calendars, services, products, knowledge, agent and channels. Nothing of the demo restaurants is used."""

    name: str
    vertical: str  # e.g. dental clinic, plumbing, real estate, med spa
    timezone: str = "America/New_York"
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    language: Literal["en", "es"] = "en"
    phone: str | None = None  # the SMS number; default: a generated one
    email: str | None = None
    address: str | None = None
    hours: Hours = Field(default_factory=lambda: {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")})
    closed_dates: list[date] = Field(default_factory=list)
    calendars: list[CalendarSpec] = Field(default_factory=lambda: [CalendarSpec(name="Appointments")])
    services: list[ServiceSpec] = Field(default_factory=list)
    products: list[ProductSpec] = Field(default_factory=list)
    knowledge: list[KnowledgeFixture] = Field(default_factory=list)
    agent: AgentSpec = Field(default_factory=AgentSpec)
    channels: list[Literal["sms", "email", "webchat"]] = Field(default_factory=lambda: ["sms", "email", "webchat"])
    # a vertical preset (services/presets/<name>.yaml) applied as POST /ai-agents {"preset": ...} applies it; what
    # the scenario states explicitly (agent settings, services, questions, knowledge) comes on top
    preset: str | None = None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in presets():
            raise ValueError(f"no preset {value!r}; the presets are {', '.join(presets())}")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: Hours) -> Hours:
        return _check_hours(value) or {}

    @model_validator(mode="after")
    def _coherent(self) -> BusinessFixture:
        names = [c.name for c in self.calendars]
        if len(set(names)) != len(names):
            raise ValueError("calendar names must be unique")
        return self


class CampaignRow(Strict):
    key: str
    name: str
    platform: str | None = None  # facebook, google, tiktok, ...
    start: date
    end: date | None = None
    budget: Decimal = Field(Decimal("0"), ge=0)
    status: Literal["draft", "active", "paused", "completed"] = "active"


class LeadRows(Strict):
    """`count` leads (contacts in the lead stage) created at `at` (local time of the sub-account)."""

    count: int = Field(1, ge=1, le=5000)
    at: str
    source: str | None = None
    campaign: str | None = None  # a campaign key


class CallRows(Strict):
    """`count` sales calls; `closer` is a staff member's name or e-mail."""

    count: int = Field(1, ge=1, le=5000)
    at: str
    outcome: Literal["scheduled", "completed", "no_show", "closed"]
    closer: str | None = None
    campaign: str | None = None
    minutes: int = Field(30, ge=0)


class MoneyRows(Strict):
    count: int = Field(1, ge=1, le=5000)
    at: str
    type: Literal["ad_spend", "payment", "refund"]
    amount: Decimal = Field(ge=0)  # each row's amount
    campaign: str | None = None
    status: Literal["pending", "paid", "failed"] = "paid"


class ConversationRows(Strict):
    """`count` conversations opened by a lead's message at `at`, answered after `first_reply_seconds` (none:
    unanswered), optionally handed off for `handoff` and claimed after `claimed_after_minutes`."""

    count: int = Field(1, ge=1, le=2000)
    at: str
    channel: Literal["sms", "email", "webchat"] = "sms"
    first_reply_seconds: int | None = Field(60, ge=0)
    handoff: Literal["human_requested", "lack_of_information", "failed_to_resolve", "negative_sentiment",
                     "missing_capability", "manual"] | None = None
    claimed_after_minutes: int | None = Field(None, ge=0)
    claimed_by: str | None = None  # a staff member's name or e-mail; default: the sub-account's first member


class Generated(Strict):
    """Leads spread evenly over the local days [start, end) with exact stated totals: `leads` in all, split over
    `sources` by share (rounded down, the remainder to the first sources), the first of them booked into sales
    calls with the outcome counts of `calls` (counts, not shares, so every total is stated)."""

    seed: int = 1
    leads: int = Field(ge=1, le=5000)
    start: date
    end: date
    sources: dict[str, float] = Field(default_factory=lambda: {"facebook": 1.0})
    calls: dict[Literal["scheduled", "completed", "no_show", "closed"], int] = Field(default_factory=dict)
    closers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _totals(self) -> Generated:
        if self.end <= self.start:
            raise ValueError("end must come after start")
        if abs(sum(self.sources.values()) - 1) > 1e-6:
            raise ValueError("source shares must add up to 1")
        if sum(self.calls.values()) > self.leads:
            raise ValueError("more calls than leads")
        return self


class DataFixture(Strict):
    """Analyst data written as rows of the scenario's sub-account (explicit, or generated with stated totals)."""

    campaigns: list[CampaignRow] = Field(default_factory=list)
    leads: list[LeadRows] = Field(default_factory=list)
    sales_calls: list[CallRows] = Field(default_factory=list)
    money: list[MoneyRows] = Field(default_factory=list)
    conversations: list[ConversationRows] = Field(default_factory=list)
    generate: Generated | None = None

    @model_validator(mode="after")
    def _keys(self) -> DataFixture:
        keys = {c.key for c in self.campaigns}
        for rows in (*self.leads, *self.sales_calls, *self.money):
            if rows.campaign is not None and rows.campaign not in keys:
                raise ValueError(f"no campaign with key {rows.campaign!r}; declare it under data.campaigns")
        return self


class InitialState(Strict):
    clock: datetime = Field(default_factory=lambda: datetime.fromisoformat(DEFAULT_CLOCK))
    sub_account: Literal["restaurant-a", "restaurant-b"] = "restaurant-a"
    business: BusinessFixture | None = None  # a business built from scratch instead of a demo restaurant
    data: DataFixture | None = None  # analyst rows of the scenario's sub-account
    knowledge_mode: Literal["add", "replace"] = "add"  # `knowledge` adds to the demo's entries, or replaces them
    lead: LeadFixture = Field(default_factory=LeadFixture)
    contacts: list[ContactFixture] = Field(default_factory=list)
    # contacts of the other sub-account (the demo restaurant not in play): what must never leak across tenants
    other_contacts: list[ContactFixture] = Field(default_factory=list)
    appointments: list[AppointmentFixture] = Field(default_factory=list)
    invoices: list[InvoiceFixture] = Field(default_factory=list)
    knowledge: list[KnowledgeFixture] = Field(default_factory=list)
    agent: AgentFixture = Field(default_factory=AgentFixture)
    user_email: str | None = None  # analyst: who asks (their scope applies); "manager": the built business's
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
    burst: list[str] | None = Field(None, min_length=2)  # several messages sent before the agent answers
    action: Literal["take_slot", "return_to_ai", "advance_clock"] | None = None
    slot: str | None = None  # take_slot: a local time, or a template such as "{offer[0]}"
    minutes: int = 0  # advance_clock

    @model_validator(mode="after")
    def _one(self) -> Step:
        if [self.say is not None, self.burst is not None, self.action is not None].count(True) != 1:
            raise ValueError("a step has exactly one of `say`, `burst` or `action`")
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


class Figure(Strict):
    """A figure the answer must state, computed by the scenario's own SQL (never by the reporting service). The
    query returns one value; `percent` expects a ratio (0.25 is "25%")."""

    query: str
    format: Literal["money", "percent", "number", "text"] = "number"
    label: str | None = None  # what the figure is, for the report


class ToolCall(Strict):
    """A tool that must be called with (at least) these arguments; values as in `db.where`."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Expected(Strict):
    db: list[DbAssertion] = Field(default_factory=list)
    must_say: list[str] = Field(default_factory=list)
    must_not_say: list[str] = Field(default_factory=list)
    one_of: list[str] = Field(default_factory=list)  # at least one of these is said
    language: Literal["en", "es"] | None = None  # every reply is written in this language
    no_reply: bool = False  # the agent sends nothing at all (no message to the lead is even queued)
    says_unknown: bool = False  # the agent says it does not know (or hands off for lack of information)
    delivered: int | None = Field(None, ge=0)  # messages the outbound sender actually sent to the lead
    tools: list[str | ToolCall] = Field(default_factory=list)  # tools that must be called (ToolCorrectness)
    must_not_call: list[str] = Field(default_factory=list)
    handoff: str | None = "none"  # a handoff reason, "none", or null to not check
    report: list[ReportCheck] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)  # analyst: stated figures, each from the scenario's SQL
    nl_assertions: list[str] = Field(default_factory=list)
    any_of: list[Expected] = Field(default_factory=list)  # at least one alternative holds in full
    all_of: list[Expected] = Field(default_factory=list)  # every group holds (to group alternatives)

    @property
    def tool_names(self) -> list[str]:
        return [t if isinstance(t, str) else t.name for t in self.tools]


class Scenario(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    split: str = Field("core", pattern=r"^[a-z][a-z0-9_]*$")  # core (ours), wild, analyst_wild, ...
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
    raw = _mapping(path, "a scenario is a mapping with id, capability, user, expected")
    business = (raw.get("initial_state") or {}).get("business") if isinstance(raw.get("initial_state"), dict) else None
    if isinstance(business, str):  # the name of a shared business file: <an enclosing folder>/businesses/<name>.yaml
        raw["initial_state"]["business"] = _shared_business(path, business)
    try:
        scenario = Scenario.model_validate({**raw, "path": str(path)})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ScenarioError(f"{path}: {problems}") from exc
    return scenario


def _mapping(path: Path, shape: str) -> dict[str, Any]:
    """A YAML file that holds one mapping, or a ScenarioError naming the file."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ScenarioError(f"{path}: {shape}")
    return loaded


def _shared_business(path: Path, name: str) -> dict[str, Any]:
    for folder in path.resolve().parents:
        candidate = folder / "businesses" / f"{name}.yaml"
        if candidate.is_file():
            return _mapping(candidate, "a business is a mapping (name, vertical, timezone, ...)")
    raise ScenarioError(f"{path}: initial_state.business: no businesses/{name}.yaml in any enclosing folder")


def load_scenarios(paths: Iterable[Path | str], *, capability: str | None = None,
                   ids: Iterable[str] = (), split: str | None = None) -> list[Scenario]:
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
                   and (split is None or s.split == split) and (not wanted or s.id in wanted)), key=lambda s: s.id)
