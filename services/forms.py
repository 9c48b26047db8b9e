"""Forms and surveys: field definitions and their validation, spam protection, and turning a submission into a
contact, a stored submission, custom-field values, tags, an analytics event and the form_submitted workflow
trigger, all in one transaction (nothing half-written). Surveys branch question to question and score answers.

A field definition (a form's `fields` JSON):
    {"key": "party_size", "label": "Party size", "type": "number", "required": true, "min": 1, "max": 500,
     "maps_to": "custom_fields.party_size"}
types: text, textarea, email, phone, number, select, radio, checkbox, date, hidden. `options` for select/radio.
`maps_to`: first_name, last_name, full_name, email, phone, company_name, or custom_fields.<key>; the keys
email, phone, full_name, name, first_name, last_name and company_name map themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
import redis
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadpilot.infra import ensure_infra
from models.activity import AnalyticsEvent
from models.crm import Contact
from models.performance import Campaign
from models.sites import Form, FormSubmission, Survey, SurveyResponse
from services import analytics, crm
from services.errors import DomainError, InvalidInput, NotFound

FIELD_TYPES = ("text", "textarea", "email", "phone", "number", "select", "radio", "checkbox", "date", "hidden")
CONTACT_FIELDS = ("first_name", "last_name", "full_name", "email", "phone", "company_name")
SELF_MAPPED = {"email": "email", "phone": "phone", "full_name": "full_name", "name": "full_name",
               "first_name": "first_name", "last_name": "last_name", "company_name": "company_name",
               "company": "company_name"}
MAX_LENGTH = 2000
DEFAULT_RATE_LIMIT = 5  # submissions per form per address per minute
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


class TooManySubmissions(DomainError):
    status = 429
    title = "Too many submissions"


@dataclass
class Visit:
    """Where a submission came from: the visitor's address, browser, page and first-touch attribution."""

    ip_address: str | None = None
    user_agent: str | None = None
    page_url: str | None = None
    session_id: str | None = None
    attribution: dict[str, str] = field(default_factory=dict)


def check_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A form's field definitions, checked when a form is saved (unique keys, known types, options present)."""
    seen: set[str] = set()
    for i, f in enumerate(fields):
        key = f.get("key")
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise InvalidInput(f"Field {i + 1}: key must be a name of letters, digits and _.", field=f"fields[{i}].key")
        if key in seen:
            raise InvalidInput(f"Field {i + 1}: the key '{key}' is used twice.", field=f"fields[{i}].key")
        seen.add(key)
        if f.get("type", "text") not in FIELD_TYPES:
            raise InvalidInput(f"Field '{key}': type must be one of {', '.join(FIELD_TYPES)}.",
                               field=f"fields[{i}].type")
        if f.get("type") in ("select", "radio") and not f.get("options"):
            raise InvalidInput(f"Field '{key}': a {f['type']} needs options.", field=f"fields[{i}].options")
        target = f.get("maps_to")
        if target and target not in CONTACT_FIELDS and not str(target).startswith("custom_fields."):
            raise InvalidInput(f"Field '{key}': maps_to is a contact field ({', '.join(CONTACT_FIELDS)}) or "
                               "custom_fields.<key>.", field=f"fields[{i}].maps_to")
    return fields


def _one(definition: dict[str, Any], raw: Any) -> tuple[Any, str | None]:  # noqa: C901 - one branch per type
    """(clean value, error) for one field."""
    kind = definition.get("type", "text")
    label = definition.get("label") or definition["key"].replace("_", " ").capitalize()
    if kind == "checkbox":
        value = raw not in (None, "", "0", "false", "off", False)
        if definition.get("required") and not value:
            return value, f"{label} must be ticked."
        return value, None
    text = ("" if raw is None else str(raw)).strip()
    if not text:
        return None, (f"{label} is required." if definition.get("required") else None)
    if len(text) > int(definition.get("max_length", MAX_LENGTH)):
        return None, f"{label} is too long."
    if kind == "email":
        try:
            return validate_email(text, check_deliverability=False).normalized, None
        except EmailNotValidError:
            return None, f"{label}: enter a valid email address."
    if kind == "phone":
        try:
            number = phonenumbers.parse(text, definition.get("region", "US"))
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            return None, f"{label}: enter a valid phone number."
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None
    if kind == "number":
        try:
            number_value = Decimal(text)
        except InvalidOperation:
            return None, f"{label} must be a number."
        if not number_value.is_finite():
            return None, f"{label} must be a number."
        if "min" in definition and number_value < Decimal(str(definition["min"])):
            return None, f"{label} must be at least {definition['min']}."
        if "max" in definition and number_value > Decimal(str(definition["max"])):
            return None, f"{label} must be at most {definition['max']}."
        return (int(number_value) if number_value == number_value.to_integral_value() else float(number_value)), None
    if kind in ("select", "radio"):
        options = [str(o) for o in definition.get("options") or []]
        return (text, None) if text in options else (None, f"{label}: choose one of the options.")
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat(), None
        except ValueError:
            return None, f"{label}: enter a date as YYYY-MM-DD."
    return text, None


def validate(fields: list[dict[str, Any]], data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The clean values of the form's fields (unknown keys dropped) and an error per failing field."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for definition in fields:
        value, error = _one(definition, data.get(definition["key"]))
        if error:
            errors[definition["key"]] = error
        elif value is not None:
            clean[definition["key"]] = value
    return clean, errors


def _rate_limited(scope: str, ip: str | None, limit: int) -> bool:
    """Fixed one-minute window per form (or survey) and address, in Redis."""
    if not ip or limit <= 0:
        return False
    client = redis.Redis.from_url(ensure_infra().redis_url)
    key = f"lp:ratelimit:{scope}:{ip}:{int(datetime.now(UTC).timestamp() // 60)}"
    with client.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, 90)
        count, _ = pipe.execute()
    return int(count) > limit


def _contact_changes(fields: list[dict[str, Any]], clean: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(contact fields, custom field values) the submission carries."""
    contact: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for definition in fields:
        key = definition["key"]
        if key not in clean:
            continue
        target = definition.get("maps_to") or SELF_MAPPED.get(key)
        if not target:
            continue
        if target.startswith("custom_fields."):
            custom[target.split(".", 1)[1]] = clean[key]
        elif target == "full_name":
            first, _, last = str(clean[key]).partition(" ")
            contact.setdefault("first_name", first[:120])
            if last:
                contact.setdefault("last_name", last.strip()[:120])
        else:
            contact[target] = clean[key]
    return contact, custom


def _campaign_for(session: Session, attribution: dict[str, str]) -> uuid.UUID | None:
    """The sub-account's ad campaign a utm_campaign names (first touch attribution)."""
    name = attribution.get("utm_campaign")
    if not name:
        return None
    return session.scalar(select(Campaign.id).where(Campaign.utm_campaign == name, Campaign.deleted_at.is_(None))
                          .order_by(Campaign.start_date.desc()).limit(1))


def identify(session: Session, sub_account_id: uuid.UUID, fields: list[dict[str, Any]], clean: dict[str, Any],
             visit: Visit, *, source: str) -> Contact | None:
    """Match the submitter to a contact by email or phone (creating one when new) and write what they sent:
    names and company only where empty, mapped custom fields, first-touch attribution on a new contact."""
    changes, custom = _contact_changes(fields, clean)
    email, phone = changes.pop("email", None), changes.pop("phone", None)
    if not email and not phone:
        return None
    defaults = {k: v for k, v in changes.items() if k in ("first_name", "last_name", "company_name")}
    contact, created = crm.match_or_create_contact(
        session=session, sub_account_id=sub_account_id, email=email, phone=phone,
        defaults={**defaults, "source": source, "lead_source": source})
    updates: dict[str, Any] = {k: v for k, v in defaults.items() if not getattr(contact, k)}
    if custom:
        updates["custom_fields"] = crm.validate_custom_fields(session=session, sub_account_id=sub_account_id,
                                                              values=custom, require_all=False)
    if updates:
        crm.update_contact(session=session, contact_id=contact.id, changes=updates)
    if created and visit.attribution:
        contact.attribution = {**(contact.attribution or {}), "first_touch": visit.attribution}
        contact.campaign_id = contact.campaign_id or _campaign_for(session, visit.attribution)
    contact.last_activity_at = datetime.now(UTC)
    if visit.session_id:
        # the visitor's earlier page views now belong to the contact (the funnel and journey reports)
        session.execute(update(AnalyticsEvent).where(AnalyticsEvent.session_id == visit.session_id,
                                                     AnalyticsEvent.contact_id.is_(None))
                        .values(contact_id=contact.id))
    session.flush()
    return contact


@dataclass(frozen=True)
class Outcome:
    """What a submission did; `stored` is False for a honeypot hit (answered as a success, kept nowhere)."""

    stored: bool
    submission_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    workflow_executions: tuple[uuid.UUID, ...] = ()


def submit_form(session: Session, form_id: uuid.UUID, data: dict[str, Any], visit: Visit) -> Outcome:
    """Validate and process one submission. Raises InvalidInput (with `errors` per field and the clean values),
    TooManySubmissions, or NotFound for an unknown or inactive form."""
    form = session.get(Form, form_id)
    if form is None or form.deleted_at is not None or not form.is_active:
        raise NotFound("No such form.")
    settings = form.settings or {}
    if str(data.get(settings.get("honeypot") or "website") or "").strip():
        return Outcome(stored=False)
    if _rate_limited(f"form:{form.id}", visit.ip_address, int(settings.get("rate_limit", DEFAULT_RATE_LIMIT))):
        raise TooManySubmissions("Too many submissions from your address; try again in a minute.")
    fields = list(form.fields or [])
    clean, errors = validate(fields, data)
    if errors:
        raise InvalidInput("Some fields need another look.", errors=errors)
    submission = FormSubmission(sub_account_id=form.sub_account_id, form_id=form.id, data=clean,
                                ip_address=(visit.ip_address or "")[:45] or None, user_agent=visit.user_agent,
                                page_url=visit.page_url)
    session.add(submission)
    session.flush()
    contact = identify(session, form.sub_account_id, fields, clean, visit,
                       source=settings.get("source", "website_form"))
    executions: list[uuid.UUID] = []
    if contact is not None:
        submission.contact_id = contact.id
        for tag in settings.get("tags") or []:
            crm.add_tag(session=session, contact_id=contact.id, name=str(tag))
        analytics.record(session, form.sub_account_id, "form_submitted", contact_id=contact.id,
                         properties={"form_id": str(form.id), "form_name": form.name, "page_url": visit.page_url},
                         source="site", session_id=visit.session_id)
        from services import webhooks, workflows

        event = {"form_id": str(form.id), "form_name": form.name, "submission_id": str(submission.id),
                 "page_id": str(form.page_id) if form.page_id else None}
        executions = workflows.fire(session, form.sub_account_id, "form_submitted", contact.id, event)
        webhooks.emit(session, form.sub_account_id, "form.submitted", {**event, "contact_id": str(contact.id),
                                                                       "data": clean})
    submission.is_processed = True
    submission.processed_at = datetime.now(UTC)
    session.flush()
    return Outcome(True, submission.id, contact.id if contact else None, tuple(executions))


# ---------------------------------------------------------------- surveys
# A question: {"key": "budget", "text": "Budget per guest?", "type": "single", "options": ["<$40", "$40+"],
#              "scores": [1, 3], "required": true, "next": {"<$40": "end", "$40+": "menu"}, "default_next": ...}
# types: single, multi, text, email, phone, rating (1..`max`, scored by its value). Without `next` a question
# leads to the one after it; "end" finishes the survey. Branches may only point forward, so every path ends.
QUESTION_TYPES = ("single", "multi", "text", "email", "phone", "rating")


def check_questions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Survey questions, checked when saved: unique keys, known types, options and scores that line up, and
    branches that point to a later question or "end"."""
    keys = [q.get("key") for q in questions]
    position = {k: i for i, k in enumerate(keys)}
    for i, q in enumerate(questions):
        key = q.get("key")
        if not isinstance(key, str) or not key.isidentifier() or keys.count(key) > 1:
            raise InvalidInput(f"Question {i + 1}: a unique key of letters, digits and _ is needed.",
                               field=f"questions[{i}].key")
        if q.get("type", "single") not in QUESTION_TYPES:
            raise InvalidInput(f"Question '{key}': type must be one of {', '.join(QUESTION_TYPES)}.",
                               field=f"questions[{i}].type")
        if q.get("type", "single") in ("single", "multi"):
            options = q.get("options") or []
            if not options:
                raise InvalidInput(f"Question '{key}' needs options.", field=f"questions[{i}].options")
            if "scores" in q and len(q["scores"]) != len(options):
                raise InvalidInput(f"Question '{key}': one score per option.", field=f"questions[{i}].scores")
            unknown = set(q.get("next") or {}) - {str(o) for o in options}
            if unknown:
                raise InvalidInput(f"Question '{key}': branches name options it does not have: "
                                   f"{', '.join(sorted(unknown))}.", field=f"questions[{i}].next")
        targets = [*(q.get("next") or {}).values(), *([q["default_next"]] if q.get("default_next") else [])]
        for target in targets:
            if target != "end" and position.get(target, -1) <= i:
                raise InvalidInput(f"Question '{key}': a branch must lead to a later question or \"end\" "
                                   f"(not '{target}').", field=f"questions[{i}].next")
    return questions


def _next(questions: list[dict[str, Any]], index: int, answer: Any) -> int | None:
    q = questions[index]
    branches = q.get("next") or {}
    target = None
    if isinstance(answer, str) and answer in branches:
        target = branches[answer]
    elif isinstance(answer, list):
        target = next((branches[a] for a in answer if a in branches), None)
    target = target or q.get("default_next")
    if target == "end":
        return None
    if target:
        return next(i for i, other in enumerate(questions) if other["key"] == target)
    return index + 1 if index + 1 < len(questions) else None


def _answer(q: dict[str, Any], raw: Any) -> tuple[Any, Decimal, str | None]:  # noqa: C901
    """(clean answer, score, error) for one question on the visitor's path."""
    kind = q.get("type", "single")
    label = q.get("text") or q["key"]
    values = raw if isinstance(raw, list) else ([] if raw in (None, "") else [raw])
    values = [str(v).strip() for v in values if str(v).strip()]
    if not values:
        return None, Decimal(0), (f"Please answer: {label}" if q.get("required", True) else None)
    options = [str(o) for o in q.get("options") or []]
    scores = [Decimal(str(s)) for s in q.get("scores") or [0] * len(options)]
    if kind in ("single", "multi"):
        if any(v not in options for v in values) or (kind == "single" and len(values) > 1):
            return None, Decimal(0), f"{label}: choose from the options."
        score = sum((scores[options.index(v)] for v in values), Decimal(0))
        return (values[0] if kind == "single" else values), score, None
    if kind == "rating":
        top = int(q.get("max", 5))
        if not values[0].isdigit() or not 1 <= int(values[0]) <= top:
            return None, Decimal(0), f"{label}: choose 1 to {top}."
        return int(values[0]), Decimal(values[0]), None
    definition = {"key": q["key"], "label": label, "type": {"email": "email", "phone": "phone"}.get(kind, "text")}
    value, error = _one(definition, values[0])
    return value, Decimal(0), error


def walk(questions: list[dict[str, Any]], answers: dict[str, Any]) -> tuple[dict[str, Any], Decimal, dict[str, str]]:
    """Follow the branches from the first question with the visitor's answers: (answers on the path, total
    score, errors). Answers to questions off the path are dropped, so a score only counts what was asked."""
    path: dict[str, Any] = {}
    errors: dict[str, str] = {}
    total = Decimal(0)
    index: int | None = 0 if questions else None
    while index is not None:
        q = questions[index]
        value, score, error = _answer(q, answers.get(q["key"]))
        if error:
            errors[q["key"]] = error
            break
        if value is not None:
            path[q["key"]] = value
            total += score
        index = _next(questions, index, value)
    return path, total, errors


def submit_survey(session: Session, survey_id: uuid.UUID, answers: dict[str, Any], visit: Visit) -> Outcome:
    """Score and store one completed survey, linked to a contact when it asked for an email or phone; fires the
    survey_submitted trigger with the score."""
    survey = session.get(Survey, survey_id)
    if survey is None or survey.deleted_at is not None or not survey.is_active:
        raise NotFound("No such survey.")
    scoring = survey.scoring or {}
    if str(answers.get(scoring.get("honeypot") or "website") or "").strip():
        return Outcome(stored=False)
    if _rate_limited(f"survey:{survey.id}", visit.ip_address, int(scoring.get("rate_limit", DEFAULT_RATE_LIMIT))):
        raise TooManySubmissions("Too many submissions from your address; try again in a minute.")
    questions = list(survey.questions or [])
    path, score, errors = walk(questions, answers)
    if errors:
        raise InvalidInput("Some answers need another look.", errors=errors)
    identity = [{"key": q["key"], "type": q.get("type"), "maps_to": {"email": "email", "phone": "phone"}[q["type"]]}
                for q in questions if q.get("type") in ("email", "phone") and q["key"] in path]
    contact = identify(session, survey.sub_account_id, identity, path, visit, source="survey") if identity else None
    response = SurveyResponse(sub_account_id=survey.sub_account_id, survey_id=survey.id,
                              contact_id=contact.id if contact else None, answers=path, score=score,
                              ip_address=(visit.ip_address or "")[:45] or None, user_agent=visit.user_agent,
                              completed_at=datetime.now(UTC))
    session.add(response)
    session.flush()
    executions: list[uuid.UUID] = []
    if contact is not None:
        analytics.record(session, survey.sub_account_id, "survey_submitted", contact_id=contact.id,
                         properties={"survey_id": str(survey.id), "score": float(score)}, source="site",
                         session_id=visit.session_id)
        from services import workflows

        executions = workflows.fire(session, survey.sub_account_id, "survey_submitted", contact.id,
                                    {"survey_id": str(survey.id), "survey_name": survey.name,
                                     "score": float(score), "response_id": str(response.id)})
    return Outcome(True, response.id, contact.id if contact else None, tuple(executions))
