"""The AI agent API: an agent made from each vertical preset in a brand-new sub-account reads back as configured
(custom fields, services with synonyms, pipeline, FAQ, intents and questions in English and Spanish); explicit
settings override a preset; bad configurations are 422 problem details; another tenant's agent is a 404."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from api.app import app
from models.ai import KnowledgeBase, TrainingData
from models.calendars import Service
from models.crm import ContactCustomField
from models.db import TenantScope, owner_session, tenant_session
from models.pipelines import Pipeline, PipelineStage
from models.tenancy import SubAccount
from services.agent_presets import presets
from tests.api.test_rest import key_for
from tests.conftest import Demo

pytestmark = pytest.mark.integration
client = TestClient(app, raise_server_exceptions=False)
PRESETS = ("restaurant", "dental_clinic", "home_services", "real_estate", "med_spa")


@pytest.fixture(scope="module")
def admin(demo: Demo) -> dict[str, str]:
    return key_for(demo, "admin@digitalmarketing.com")


@pytest.fixture
def fresh(demo: Demo) -> Iterator[uuid.UUID]:
    """A new, empty client of the demo agency (removed again afterwards, with everything it owns)."""
    with owner_session() as session:
        sub = SubAccount(agency_id=demo.agency_id, name="New client", slug=f"new-client-{uuid.uuid4().hex[:8]}",
                         timezone="America/Denver")
        session.add(sub)
        session.flush()
        sub_id = sub.id
    yield sub_id
    with owner_session() as session:
        session.execute(delete(SubAccount).where(SubAccount.id == sub_id))


def _url(sub_id: uuid.UUID, agent_id: Any = None) -> str:
    return f"/v1/sub-accounts/{sub_id}/ai-agents" + (f"/{agent_id}" if agent_id else "")


def test_presets_are_listed_for_any_signed_in_caller(demo: Demo, admin: dict[str, str]) -> None:
    response = client.get("/v1/ai-agent-presets", headers=key_for(demo, "jane@restaurant.com"))

    assert response.status_code == 200
    listed = {p["name"]: p for p in response.json()}
    assert set(PRESETS) <= set(listed)
    assert all(p["vertical"] and p["summary"] and p["languages"] == ["en", "es"] for p in listed.values())
    assert client.get("/v1/ai-agent-presets").status_code == 401


def test_every_preset_has_what_a_vertical_needs_in_english_and_spanish() -> None:
    for name in PRESETS:
        preset = presets()[name]
        assert len(preset.intents) >= 4 and len(preset.services) >= 3 and len(preset.faq) >= 8, name
        assert all(len(i.examples["en"]) >= 6 and len(i.examples["es"]) >= 6 for i in preset.intents), name
        assert all(q.translations.get("es") for q in preset.qualification_questions), name
        assert all(h.translations.get("es") for h in preset.handoff.values() if h.message), name
        assert all(s.synonyms for s in preset.services), name
        assert {q.ask for q in preset.qualification_questions} == {"on_enquiry", "before_booking"}, name


@pytest.mark.parametrize("name", PRESETS)
def test_an_agent_from_each_preset_in_a_fresh_sub_account(name: str, fresh: uuid.UUID, demo: Demo,
                                                          admin: dict[str, str]) -> None:
    preset = presets()[name]
    created = client.post(_url(fresh), headers=admin, json={"preset": name})

    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["name"] == preset.agent.name and agent["languages"] == ["en", "es"]
    assert [i["name"] for i in agent["intents"]] == [i.name for i in preset.intents]
    assert all(len(i["examples"]) >= 12 for i in agent["intents"])
    assert all(set(q) >= {"field", "question", "translations", "ask"} and q["translations"]["es"]
               for q in agent["qualification_questions"])
    assert agent["pipeline_settings"] == {"on_qualified": preset.pipeline.on_qualified,
                                          "on_booked": preset.pipeline.on_booked}
    assert agent["handoff_settings"]["human_requested"]["translations"]["es"]
    applied = agent["preset_applied"]
    assert applied["pipeline_created"] == preset.pipeline.name and applied["faq_entries"] == len(preset.faq)

    read = client.get(_url(fresh, agent["id"]), headers=admin)
    assert read.status_code == 200
    assert {k: v for k, v in read.json().items() if k != "updated_at"} == {
        k: v for k, v in agent.items() if k not in ("preset_applied", "updated_at")}
    assert [a["id"] for a in client.get(_url(fresh), headers=admin).json()] == [agent["id"]]
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=fresh)) as s:
        fields = set(s.scalars(select(ContactCustomField.key)))
        services = {n: syn for n, syn in s.execute(select(Service.name, Service.synonyms))}
        stages = list(s.scalars(select(PipelineStage.name).join(Pipeline, Pipeline.id == PipelineStage.pipeline_id)
                                .where(Pipeline.is_default).order_by(PipelineStage.position)))
        faq = s.scalars(select(TrainingData.question).join(KnowledgeBase).where(
            KnowledgeBase.ai_agent_id == uuid.UUID(agent["id"]))).all()
    assert fields == {f.key for f in preset.custom_fields}
    assert services == {s.name: s.synonyms for s in preset.services}
    assert stages == [s.name for s in preset.pipeline.stages]
    assert sorted(faq) == sorted(e.question for e in preset.faq)


def test_explicit_settings_override_the_preset_and_a_second_agent_reuses_what_exists(
        fresh: uuid.UUID, admin: dict[str, str]) -> None:
    first = client.post(_url(fresh), headers=admin, json={"preset": "dental_clinic"}).json()
    body = {"preset": "dental_clinic", "name": "Dana", "languages": ["es", "en"], "with_faq": False,
            "qualification_questions": [{"field": "insurance_provider", "question": "¿Tiene seguro dental?",
                                         "translations": {"en": "Do you have dental insurance?"},
                                         "ask": "before_booking"}]}
    second = client.post(_url(fresh), headers=admin, json=body)

    assert second.status_code == 201, second.text
    agent = second.json()
    assert agent["name"] == "Dana" and agent["languages"] == ["es", "en"]
    assert agent["qualification_questions"] == body["qualification_questions"]
    assert agent["intents"] == first["intents"]
    applied = agent["preset_applied"]
    assert applied["custom_fields_created"] == [] and applied["services_created"] == []
    assert applied["pipeline_created"] is None and applied["knowledge_base_id"] is None


def test_a_full_explicit_configuration_without_a_preset(fresh: uuid.UUID, admin: dict[str, str]) -> None:
    client.post(_url(fresh), headers=admin, json={"preset": "home_services", "with_faq": False})
    body = {"name": "Rosa", "languages": ["es"], "capabilities": ["answer_faq", "book_appointments"],
            "intents": [{"name": "fuga", "action": "handoff", "handoff_reason": "urgent",
                         "examples": ["tengo una fuga", "se rompió un tubo"]},
                        {"name": "presupuesto", "action": "qualify", "service": "in-home estimate",
                         "examples": ["¿me das presupuesto?"]}],
            "qualification_questions": [{"field": "job_type", "question": "¿Qué necesita arreglar?"}],
            "pipeline_settings": {"on_qualified": "Qualified"},
            "handoff_settings": {"urgent": {"message": "Le llamamos enseguida.", "create_task": True}}}
    created = client.post(_url(fresh), headers=admin, json=body)

    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["preset_applied"] is None and agent["languages"] == ["es"]
    assert agent["qualification_questions"] == [{"field": "job_type", "question": "¿Qué necesita arreglar?",
                                                 "translations": {}, "ask": "on_enquiry"}]
    assert agent["intents"][0] == body["intents"][0]
    assert agent["handoff_settings"]["urgent"] == {"message": "Le llamamos enseguida.", "translations": {},
                                                   "tags": [], "create_task": True}

    changed = client.patch(_url(fresh, agent["id"]), headers=admin, json={"languages": ["es", "en"],
                                                                          "is_active": False})
    assert changed.status_code == 200 and changed.json()["languages"] == ["es", "en"]
    assert changed.json()["is_active"] is False and changed.json()["intents"] == agent["intents"]
    assert client.delete(_url(fresh, agent["id"]), headers=admin).status_code == 204
    assert client.get(_url(fresh, agent["id"]), headers=admin).status_code == 404


BAD = {
    "question naming an unknown field": ({"qualification_questions": [{"field": "shoe_size", "question": "Size?"}]},
                                         ["body", "qualification_questions", 0, "field"]),
    "intent with no examples": ({"intents": [{"name": "x", "action": "answer", "examples": []}]},
                                ["body", "intents", 0, "examples"]),
    "unknown action": ({"intents": [{"name": "x", "action": "dance", "examples": ["hi"]}]},
                       ["body", "intents", 0, "action"]),
    "unknown language": ({"languages": ["en", "xx"]}, ["body", "languages"]),
    "translation in an unknown language": (
        {"qualification_questions": [{"field": "job_type", "question": "Job?", "translations": {"zz": "?"}}]},
        ["body", "qualification_questions", 0, "translations"]),
    "pipeline stage that does not exist": ({"pipeline_settings": {"on_booked": "Nowhere"}},
                                           ["body", "pipeline_settings", "on_booked"]),
    "intent naming an unknown service": ({"intents": [{"name": "x", "action": "book", "service": "Haircut",
                                                       "examples": ["a cut please"]}]},
                                         ["body", "intents", 0, "service"]),
    "unknown key": ({"colour": "blue"}, ["body", "colour"]),
    "unknown preset": ({"preset": "bakery"}, ["body", "preset"]),
    "handoff reason that does not exist": ({"handoff_settings": {"bored": {"message": "bye"}}},
                                           ["body", "handoff_settings", "bored"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configurations_are_422_problem_details(case: str, fresh: uuid.UUID, admin: dict[str, str]) -> None:
    client.post(_url(fresh), headers=admin, json={"preset": "home_services", "with_faq": False})
    change, loc = BAD[case]
    response = client.post(_url(fresh), headers=admin, json={"name": "Bad", **change})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    locs = [e["loc"][:len(loc)] for e in response.json()["errors"]]
    assert loc in locs, locs
    if case not in ("unknown key", "unknown preset"):  # the same refusal when changing an existing agent
        agent_id = client.get(_url(fresh), headers=admin).json()[0]["id"]
        patched = client.patch(_url(fresh, agent_id), headers=admin, json=change)
        assert patched.status_code == 422, patched.text


def test_another_tenants_agent_is_not_found(fresh: uuid.UUID, demo: Demo, admin: dict[str, str]) -> None:
    agent_id = client.post(_url(fresh), headers=admin, json={"preset": "med_spa", "with_faq": False}).json()["id"]
    manager_b = key_for(demo, "bob@restaurant.com")

    # the id under a sub-account the caller may use, and the sub-account itself for a caller who may not
    for method in ("GET", "PATCH", "DELETE"):
        assert client.request(method, _url(demo.b, agent_id), headers=admin, json={}).status_code == 404
        assert client.request(method, _url(fresh, agent_id), headers=manager_b, json={}).status_code == 404
    assert client.get(_url(fresh, agent_id), headers=admin).status_code == 200
