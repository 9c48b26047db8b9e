"""Every operation of the OpenAPI document, fuzzed in-process with schemathesis (positive and negative data), as
the agency admin and as a client user of sub-account A, with the real ids of both demo sub-accounts in the path
so the cases reach the handlers: no input is a server error. On a private copy of the database (it writes)."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import Engine, create_engine, text

from api.app import app
from leadpilot.settings import get_settings
from tests.api.test_rest import key_for
from tests.conftest import Demo

pytestmark = pytest.mark.integration
# per operation, caller and generation mode: about two minutes on two cores. LP_FUZZ_EXAMPLES=30 LP_FUZZ_RANDOM=1
# explore further (new data each run) than CI's fixed, derandomized cases
EXAMPLES = int(os.environ.get("LP_FUZZ_EXAMPLES", "6"))
CALLERS = ("admin@digitalmarketing.com", "john@restaurant.com")
# path parameter -> the table whose ids it names (the others, enums and keys, are generated)
TABLES = {
    "sub_account_id": "sub_accounts", "integration_id": "integrations", "conversation_id": "conversations",
    "message_id": "messages", "canned_id": "canned_responses", "webhook_id": "webhooks",
    "campaign_id": "message_campaigns", "workflow_id": "workflows", "contact_id": "contacts",
    "calendar_id": "calendars", "appointment_id": "appointments", "pipeline_id": "pipelines",
    "opportunity_id": "opportunities", "product_id": "products", "invoice_id": "invoices",
    "transaction_id": "transactions", "subscription_id": "subscriptions", "template_id": "report_templates",
    "kb_id": "knowledge_bases", "source_id": "knowledge_sources", "training_id": "training_data",
    "funnel_id": "funnels", "page_id": "pages", "form_id": "forms", "survey_id": "surveys",
    "agent_id": "ai_agents",
}


def _real_ids(engine: Engine, sub_account_id: uuid.UUID) -> dict[str, str]:
    """Path parameter -> a live id of that kind in one sub-account (and a user, a delivery, a team of it)."""
    ids: dict[str, str] = {"sub_account_id": str(sub_account_id)}
    with engine.connect() as conn:
        for param, table in TABLES.items():
            if table == "sub_accounts":
                continue
            columns = set(conn.execute(text("SELECT column_name FROM information_schema.columns "
                                            "WHERE table_name = :t"), {"t": table}).scalars())
            live = " AND deleted_at IS NULL" if "deleted_at" in columns else ""
            found = conn.execute(text(f"SELECT id FROM {table} WHERE sub_account_id = :s{live} "
                                      "ORDER BY created_at LIMIT 1"), {"s": sub_account_id}).scalar()
            if found is not None:
                ids[param] = str(found)
        extra = {
            "user_id": "SELECT user_id FROM user_sub_account_memberships WHERE sub_account_id = :s LIMIT 1",
            "delivery_id": "SELECT delivery_id FROM webhook_logs WHERE sub_account_id = :s LIMIT 1",
            "team_key": "SELECT team_key FROM calendars WHERE sub_account_id = :s AND team_key IS NOT NULL LIMIT 1",
        }
        for param, query in extra.items():
            found = conn.execute(text(query), {"s": sub_account_id}).scalar()
            if found is not None:
                ids[param] = str(found)
    return ids


@dataclass
class Tally:
    """What the fuzz did and the server errors it met."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    operations: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def fuzz_schema(private_app_database: str) -> Iterator[Any]:
    """The app's own OpenAPI document, with a Stripe signing secret set so the Stripe webhook verifies (and refuses)
    what the fuzz sends rather than answering 503 for a missing configuration."""
    settings = get_settings()
    saved, settings.stripe_webhook_secret = settings.stripe_webhook_secret, "whsec_fuzz"
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        settings.stripe_webhook_secret = saved


def _fuzz(operation: Any, headers: dict[str, str], id_sets: list[dict[str, str] | None], mode: GenerationMode,
          caller: str, tally: Tally) -> None:
    names = {p.name for p in operation.path_parameters}

    def with_ids(ids: dict[str, str] | None) -> Any:
        fixed = {k: v for k, v in (ids or {}).items() if k in names}
        return operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)

    @settings(max_examples=EXAMPLES, derandomize=not os.environ.get("LP_FUZZ_RANDOM"), database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(id_sets).flatmap(with_ids))
    def run(case: Any) -> None:
        tally.cases[caller] += 1
        try:
            # the caller's key replaces whatever the schema's bearer scheme made up
            case.headers = {**(case.headers or {}), **headers}
            response = case.call(timeout=120)  # the first knowledge base loads the embedding model
        except Exception as exc:  # the in-process transport re-raises what the app answered with a 500
            status, said = 500, f"{type(exc).__name__}: {exc}"
        else:
            status, said = response.status_code, response.content.decode("utf-8", "replace")
        tally.statuses[status] += 1
        if status >= 500:
            tally.errors.append(f"{operation.label} [{caller}, {mode.value}] -> {status}: "
                                f"{case.as_curl_command(headers={'Authorization': '[key]'})} :: {said[:300]}")

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): the positive cases covered it
        assert mode is GenerationMode.NEGATIVE, operation.label


def test_no_operation_answers_with_a_server_error(fuzz_schema: Any, private_app_database: str, demo: Demo) -> None:
    engine = create_engine(private_app_database)
    id_sets: list[dict[str, str] | None] = [_real_ids(engine, demo.a), _real_ids(engine, demo.b), None]
    engine.dispose()
    tally = Tally()
    started = time.perf_counter()
    # deletes last: until then the real ids in the paths name live rows
    operations = sorted((result.ok() for result in fuzz_schema.get_all_operations()),
                        key=lambda op: op.method.lower() == "delete")
    keys = {caller: key_for(demo, caller) for caller in CALLERS}
    for operation in operations:
        tally.operations.add(operation.label)
        for caller, headers in keys.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, headers, id_sets, mode, caller, tally)
    elapsed = time.perf_counter() - started
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    print(f"\nfuzz: {len(tally.operations)} operations, cases {dict(tally.cases)}, "
          f"{server_errors} server errors, statuses {dict(sorted(tally.statuses.items()))}, {elapsed:.0f} s")
    assert len(tally.operations) >= 140
    assert server_errors == 0, "\n".join(tally.errors)
