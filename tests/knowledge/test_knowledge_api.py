"""Knowledge bases over the REST API, committed as a client sees them; a large upload handed to a real Celery
worker whose progress the API shows while it runs."""

from __future__ import annotations

import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient

from api.app import app
from tests.api.test_rest import base, key_for, problem
from tests.conftest import Demo
from workers.app import QUEUES, celery_app

pytestmark = pytest.mark.integration
client = TestClient(app)
FAQ = b"""# Private events

## Can I rent the whole restaurant?
Yes, a full buyout seats 120 guests on Mondays and Tuesdays.

## Is there a room hire fee?
No room fee: a food and drink minimum of $3,000 applies to buyouts.
"""


@pytest.fixture(scope="module")
def admin(demo: Demo) -> dict[str, str]:
    return key_for(demo, "admin@digitalmarketing.com")


def test_create_upload_search_and_delete(admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    url = base(demo.a)
    kb = client.post(f"{url}/knowledge-bases", headers=admin, json={"name": f"Events {uuid.uuid4().hex[:6]}"})
    assert kb.status_code == 201, kb.text
    kb_id = kb.json()["id"]
    assert kb.json()["embedding_model"] == "all-MiniLM-L6-v2" and kb.json()["embedding_dim"] == 384
    files = {"file": ("events.md", FAQ, "text/markdown")}
    first = client.post(f"{url}/knowledge-bases/{kb_id}/sources", headers=admin, files=files,
                        data={"source_type": "markdown"})
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["chunk_count"], first.json()["duplicate"]) == ("ready", 2, False)
    again = client.post(f"{url}/knowledge-bases/{kb_id}/sources", headers=admin, files=files,
                        data={"source_type": "markdown"})
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["id"] == first.json()["id"]
    problem(client.post(f"{url}/knowledge-bases/{kb_id}/sources", headers=admin, files=files,
                        data={"source_type": "pdf"}), 422)

    found = client.get(f"{url}/knowledge/search", headers=admin,
                       params={"q": "how much to book the entire place for a party", "kb": kb_id}).json()
    top = found["hits"][0]
    assert top["question"] == "Is there a room hire fee?" or top["question"] == "Can I rent the whole restaurant?"
    assert found["confident"] and float(top["similarity"]) >= found["min_relevance"] and top["score"]
    chunks = client.get(f"{url}/knowledge-bases/{kb_id}/chunks", headers=admin).json()
    assert chunks["total"] == 2 and {c["question"] for c in chunks["items"]} == {
        "Can I rent the whole restaurant?", "Is there a room hire fee?"}
    added = client.post(f"{url}/knowledge-bases/{kb_id}/qa", headers=admin,
                        json={"question": "Do buyouts include a DJ?", "answer": "We can book one for $400."})
    assert added.status_code == 201
    problem(client.post(f"{url}/knowledge-bases/{kb_id}/qa", headers=admin,
                        json={"question": "Do buyouts include a DJ?", "answer": "We can book one for $400."}), 409)

    gone = client.delete(f"{url}/knowledge-bases/{kb_id}/sources/{first.json()['id']}", headers=admin)
    assert gone.json() == {"chunks_removed": 2}
    assert client.get(f"{url}/knowledge-bases/{kb_id}/chunks", headers=admin).json()["total"] == 1
    assert client.delete(f"{url}/knowledge-bases/{kb_id}", headers=admin).status_code == 204
    problem(client.get(f"{url}/knowledge-bases/{kb_id}", headers=admin), 404)
    problem(client.get(f"{base(demo.b)}/knowledge/search", headers=admin, params={"q": "x", "kb": kb_id}), 404)


def test_staff_search_but_only_managers_of_ai_change_knowledge(demo: Demo) -> None:
    staff = key_for(demo, "jane@restaurant.com")
    url = base(demo.a)
    assert client.get(f"{url}/knowledge/search", headers=staff, params={"q": "brunch"}).json()["hits"]
    body = problem(client.post(f"{url}/knowledge-bases", headers=staff, json={"name": "Nope"}), 403)
    assert body["permission"] == "ai_agents.manage"
    problem(client.get(f"{base(demo.b)}/knowledge/search", headers=staff, params={"q": "brunch"}), 404)


def test_a_large_upload_is_ingested_by_a_worker_with_visible_progress(admin, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    url = base(demo.a)
    kb_id = client.post(f"{url}/knowledge-bases", headers=admin,
                        json={"name": f"Menu archive {uuid.uuid4().hex[:6]}"}).json()["id"]
    text = "\n\n".join(f"Q: What was on the menu of week {i}?\nA: Week {i} featured dish {i * 13} with a "
                       f"{['lemon', 'garlic', 'saffron', 'truffle'][i % 4]} sauce and {i % 9 + 1} sides." * 1
                       for i in range(400))
    assert len(text) > 40_000
    queued = client.post(f"{url}/knowledge-bases/{kb_id}/sources/text", headers=admin,
                         json={"name": "archive.txt", "text": text})
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "pending"
    source = f"{url}/knowledge-bases/{kb_id}/sources/{queued.json()['id']}"
    seen = []
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = client.get(source, headers=admin).json()
            seen.append((state["status"], float(state["progress"])))
            if state["status"] in ("ready", "failed"):
                break
            time.sleep(0.05)
    assert seen[-1] == ("ready", 1.0), seen[-5:]
    assert any(0 < p < 1 for _, p in seen), "progress was visible between batches"
    assert client.get(source, headers=admin).json()["chunk_count"] == 400
    hit = client.get(f"{url}/knowledge/search", headers=admin,
                     params={"q": "what was served in week 217", "kb": kb_id, "k": 3}).json()["hits"]
    assert any(h["question"] == "What was on the menu of week 217?" for h in hit)
