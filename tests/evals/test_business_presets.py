"""The eval harness builds a scenario's business from a preset and the new optional keys (service synonyms,
agent intents and languages, question translations and when to ask) and stores them as the agent API does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from evals.harness.business import Built, build
from evals.harness.scenario import BusinessFixture
from models.ai import AIAgent
from models.calendars import Service
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import SubAccount
from services.agent_config import stored
from services.agent_presets import presets
from tests.conftest import Demo

pytestmark = pytest.mark.integration


@pytest.fixture
def built() -> Iterator[list[Built]]:
    made: list[Built] = []
    yield made
    with owner_session() as session:
        session.execute(delete(SubAccount).where(SubAccount.id.in_([b.sub_account_id for b in made])))


def _agent(b: Built) -> AIAgent:
    with tenant_session(TenantScope(agency_id=b.agency_id, sub_account_id=b.sub_account_id)) as session:
        agent = session.get(AIAgent, b.agent_id)
        assert agent is not None
        session.expunge(agent)
        return agent


def test_a_business_from_a_preset_has_the_agent_the_api_makes(built: list[Built], demo: Demo) -> None:
    spec = BusinessFixture.model_validate({"name": "Clínica Sonrisa", "vertical": "dental clinic",
                                           "preset": "dental_clinic", "language": "es",
                                           "agent": {"name": "Lucía", "languages": ["es", "en"]}})
    built.append(build(spec, "digital-marketing-co"))
    agent = _agent(built[0])
    expected = stored(presets()["dental_clinic"].agent_settings())

    assert agent.name == "Lucía" and agent.languages == ["es", "en"]
    assert agent.intents == expected["intents"]
    assert agent.qualification_questions == expected["qualification_questions"]
    assert agent.pipeline_settings == expected["pipeline_settings"]


def test_the_new_optional_keys_are_stored_as_the_api_stores_them(built: list[Built]) -> None:
    spec = BusinessFixture.model_validate({
        "name": "Bondi Plumbing", "vertical": "plumbing",
        "services": [{"name": "Blocked drain", "duration_minutes": 60, "synonyms": ["clogged drain", "desagüe"]}],
        "agent": {"languages": ["en", "es"],
                  "intents": [{"name": "burst_pipe", "action": "handoff", "handoff_reason": "urgent",
                               "examples": ["a pipe burst", "se reventó un tubo"]}],
                  "qualification_questions": [{"key": "suburb", "question": "Which suburb?",
                                               "translations": {"es": "¿Qué barrio?"}, "ask": "before_booking"}]}})
    built.append(build(spec, "digital-marketing-co"))
    b = built[0]
    agent = _agent(b)
    with tenant_session(TenantScope(agency_id=b.agency_id, sub_account_id=b.sub_account_id)) as session:
        synonyms = session.scalar(select(Service.synonyms).where(Service.name == "Blocked drain"))

    assert synonyms == ["clogged drain", "desagüe"]
    assert agent.languages == ["en", "es"]
    assert agent.intents == [{"name": "burst_pipe", "action": "handoff", "handoff_reason": "urgent",
                              "examples": ["a pipe burst", "se reventó un tubo"]}]
    assert agent.qualification_questions == [{"field": "suburb", "key": "suburb", "question": "Which suburb?",
                                              "translations": {"es": "¿Qué barrio?"}, "ask": "before_booking"}]


def test_an_unknown_preset_or_language_is_refused() -> None:
    with pytest.raises(ValueError, match="no preset"):
        BusinessFixture.model_validate({"name": "X", "vertical": "bakery", "preset": "bakery"})
    with pytest.raises(ValueError, match="ISO 639-1"):
        BusinessFixture.model_validate({"name": "X", "vertical": "bakery", "agent": {"languages": ["xx"]}})
