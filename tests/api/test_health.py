"""The service basics a load balancer and a developer rely on."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(app)


def test_liveness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readiness_checks_real_postgres_with_pgvector_and_redis(client: TestClient) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["pgvector"].startswith("0.8")
    assert body["checks"]["redis"]["ok"] is True


def test_readiness_reports_a_dead_redis_as_a_503_problem(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from leadpilot import infra

    real = infra.ensure_infra()
    dead = infra.InfraUrls(real.database_url, "redis://127.0.0.1:1/0", True, True)
    monkeypatch.setattr("api.health.ensure_infra", lambda: dead)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["checks"]["redis"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "LeadPilot API"


def test_unknown_route_is_a_problem_details_404(client: TestClient) -> None:
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "Not Found",
                               "instance": "/v1/nope"}


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert client.get("/healthz", headers={"x-request-id": "abc"}).headers["x-request-id"] == "abc"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
