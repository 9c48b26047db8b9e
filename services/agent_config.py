"""The shape of an AI agent's configuration: what a business offers, asks and says, as data.

The same models validate a request to the agent API and a vertical preset file, and `stored_*` turn them into
exactly what `ai_agents` keeps (JSONB), so an agent made from a preset and one typed in by hand look alike.
References to rows of the sub-account (custom fields, services, pipeline stages, staff) are checked against the
database by `services.agents`; everything a model can check without it is checked here.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from models.ai import AI_MODES, CAPABILITIES
from models.conversations import HANDOFF_REASONS

# ISO 639-1: the languages a business may say it answers in (the first of an agent's list is its default)
LANGUAGE_CODES = frozenset({
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bh", "bi", "bm", "bn",
    "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da", "de", "dv", "dz", "ee", "el", "en",
    "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr", "fy", "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he",
    "hi", "ho", "hr", "ht", "hu", "hy", "hz", "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv",
    "ka", "kg", "ki", "kj", "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li",
    "ln", "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "na", "nb", "nd", "ne",
    "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi", "pl", "ps", "pt", "qu", "rm",
    "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk", "sl", "sm", "sn", "so", "sq", "sr", "ss", "st",
    "su", "sv", "sw", "ta", "te", "tg", "th", "ti", "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk",
    "ur", "uz", "ve", "vi", "vo", "wa", "wo", "xh", "yi", "yo", "za", "zh", "zu"
})
INTENT_ACTIONS = ("qualify", "book", "handoff", "answer")
ASK_WHEN = ("on_enquiry", "before_booking")
CHANNELS = ("sms", "email", "webchat")

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Action = Literal["qualify", "book", "handoff", "answer"]
Reason = Literal["human_requested", "lack_of_information", "failed_to_resolve", "negative_sentiment",
                 "missing_capability", "manual", "urgent"]
Capability = Literal["answer_faq", "book_appointments", "qualify_leads", "take_payments", "escalate_to_human",
                     "reporting"]
Channel = Literal["sms", "email", "webchat"]
Mode = Literal["off", "suggestive", "autopilot"]
assert set(Reason.__args__) == set(HANDOFF_REASONS)  # type: ignore[attr-defined]
assert set(Capability.__args__) == set(CAPABILITIES) and set(Mode.__args__) == set(AI_MODES)  # type: ignore[attr-defined]


class Strict(BaseModel):
    """Unknown keys are refused: a misspelt setting must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _language(code: str) -> str:
    if code not in LANGUAGE_CODES:
        raise ValueError(f"{code!r} is not an ISO 639-1 language code (en, es, fr, ...)")
    return code


def _translations(value: dict[str, str]) -> dict[str, str]:
    for code in value:
        _language(code)
    return value


Translations = Annotated[dict[str, Text], Field(description="The text in other languages, by ISO 639-1 code: "
                                                            '{"es": "..."}.')]


class Intent(Strict):
    """Something leads of this business say, and what the agent does about it."""

    name: Slug = Field(description="A slug: quote_request, emergency, table_booking.")
    examples: list[Text] = Field(min_length=1, max_length=200, description="What leads write, in any language the "
                                 "business answers in; the classifier is trained on these.")
    action: Action = Field(description="qualify: ask the qualification questions; book: offer times for `service`; "
                           "handoff: hand to a person for `handoff_reason`; answer: answer from the knowledge base.")
    service: Name | None = Field(None, description="The service the intent is about (a service name of the business).")
    handoff_reason: Reason | None = Field(None, description="For action handoff: why (default human_requested).")

    @model_validator(mode="after")
    def _coherent(self) -> Intent:
        if self.handoff_reason is not None and self.action != "handoff":
            raise ValueError("handoff_reason is only for intents whose action is handoff")
        if len({e.casefold() for e in self.examples}) != len(self.examples):
            raise ValueError("examples must be distinct")
        return self


class Question(Strict):
    """A qualification question; the answer is stored in the contact's custom field `field`."""

    field: Slug = Field(description="Key of a contact custom field of the sub-account.")
    question: Text = Field(description="The question in the agent's default language.")
    key: Slug | None = Field(None, description="Legacy alias of `field` (kept when given).")
    translations: Translations = Field(default_factory=dict)
    ask: Literal["on_enquiry", "before_booking"] = Field(
        "on_enquiry", description="on_enquiry: asked, one at a time, when the lead makes an enquiry or quote "
        "request; before_booking: asked before a booking is made.")

    _check_translations = field_validator("translations")(_translations)


class HandoffScenario(Strict):
    """What happens when the agent hands a conversation to a person for one reason (GoHighLevel's Human
    Handover): the last message to the lead, an assignee, tags, a task, a reactivation timer."""

    message: Text | None = None
    translations: Translations = Field(default_factory=dict)
    assign_to_user_id: uuid.UUID | None = None
    tags: list[Name] = Field(default_factory=list)
    create_task: bool = False
    reactivate_after_minutes: int | None = Field(None, ge=1, le=60 * 24 * 30)

    _check_translations = field_validator("translations")(_translations)


class Personality(Strict):
    persona: str | None = Field(None, max_length=2000)
    tone: str | None = Field(None, max_length=60)
    style: str | None = Field(None, max_length=60)
    emoji_usage: Literal["none", "minimal", "moderate"] | None = None
    max_sms_chars: int | None = Field(None, ge=70, le=1600)


class PipelineSettings(Strict):
    """Stage names of the default pipeline the agent moves the lead's deal to."""

    on_qualified: Name | None = None
    on_booked: Name | None = None


class AgentSettings(Strict):
    """Every setting of an agent; None means "not given" (a preset's value, or the column default, applies)."""

    name: Name | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    temperature: Decimal | None = Field(None, ge=0, le=2, max_digits=3, decimal_places=2)
    max_tokens: int | None = Field(None, ge=1, le=32_000)
    system_prompt: str | None = Field(None, max_length=20_000)
    personality: Personality | None = None
    capabilities: list[Capability] | None = None
    enabled_channels: list[Channel] | None = None
    mode: Mode | None = None
    channel_modes: dict[Channel, Mode] | None = None
    languages: list[str] | None = Field(None, min_length=1, max_length=20, description="ISO 639-1 codes the "
                                        "business answers in; the first is the default.")
    intents: list[Intent] | None = Field(None, max_length=100)
    qualification_questions: list[Question] | None = Field(None, max_length=50)
    handoff_settings: dict[Reason, HandoffScenario] | None = None
    pipeline_settings: PipelineSettings | None = None
    confidence_threshold: Decimal | None = Field(None, ge=0, le=1, max_digits=3, decimal_places=2)
    max_tool_loops: int | None = Field(None, ge=1, le=20)
    is_active: bool | None = None

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for code in value:
                _language(code)
            if len(set(value)) != len(value):
                raise ValueError("languages must be distinct")
        return value

    @field_validator("intents")
    @classmethod
    def _intent_names(cls, value: list[Intent] | None) -> list[Intent] | None:
        if value is not None and len({i.name for i in value}) != len(value):
            raise ValueError("intent names must be distinct")
        return value

    @field_validator("qualification_questions")
    @classmethod
    def _question_fields(cls, value: list[Question] | None) -> list[Question] | None:
        if value is not None and len({q.field for q in value}) != len(value):
            raise ValueError("each custom field is asked by one question only")
        return value

    @field_validator("capabilities", "enabled_channels")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value is not None else None


def stored(settings: AgentSettings) -> dict[str, Any]:
    """The given settings as the `ai_agents` columns hold them (JSON-ready; unset ones left out)."""
    out: dict[str, Any] = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if name == "personality":
            value = value.model_dump(exclude_none=True)
        elif name == "intents":
            value = [i.model_dump(exclude_none=True) for i in value]
        elif name == "qualification_questions":
            value = [q.model_dump(exclude_none=True) for q in value]
        elif name == "handoff_settings":
            value = {r: h.model_dump(mode="json", exclude_none=True) for r, h in value.items()}
        elif name == "pipeline_settings":
            value = value.model_dump(exclude_none=True)
        out[name] = value
    return out
