"""Errors of every kind come back as problem details, mapped in one place."""

from __future__ import annotations

import socket
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import create_engine, pool, text

from api.problems import install_problem_handlers
from services.errors import Conflict, NotFound

pytestmark = pytest.mark.integration


class Payload(BaseModel):
    email: str
    party_size: int


@pytest.fixture(scope="module")
def client(owner_engine) -> TestClient:  # type: ignore[no-untyped-def]
    probe = FastAPI()
    install_problem_handlers(probe)

    @probe.post("/things")
    def create(payload: Payload) -> dict[str, str]:
        return {"ok": "yes"}

    @probe.get("/things/{thing_id}")
    def read(thing_id: uuid.UUID) -> None:
        raise NotFound(f"No thing {thing_id}.")

    @probe.post("/slots")
    def book() -> None:
        raise Conflict("That slot was just taken.", alternatives=["2027-03-01T15:30:00Z"])

    @probe.post("/duplicate-channel")
    def duplicate() -> None:
        with owner_engine.begin() as conn:
            address = conn.execute(text("SELECT address FROM channels WHERE channel_type = 'sms' LIMIT 1")).scalar()
            sub = conn.execute(text("SELECT sub_account_id FROM channels LIMIT 1")).scalar()
            conn.execute(text("INSERT INTO channels (id, sub_account_id, channel_type, provider, name, address) "
                              "VALUES (gen_random_uuid(), :s, 'sms', 'twilio', 'dup', :a)"), {"s": sub, "a": address})

    @probe.get("/database-down")
    def database_down() -> None:
        # a real refused connection: a port nothing listens on
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        engine = create_engine(f"postgresql+psycopg://u:p@127.0.0.1:{dead}/x", poolclass=pool.NullPool)
        with engine.connect():
            pass

    @probe.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    return TestClient(probe, raise_server_exceptions=False)


def test_schema_violations_list_each_field(client: TestClient) -> None:
    response = client.post("/things", json={"email": "a@b.co", "party_size": "many"})
    body = response.json()
    assert (response.status_code, body["title"]) == (422, "Invalid request")
    assert body["errors"][0]["loc"] == ["body", "party_size"]


def test_domain_errors_keep_their_status_and_extra_fields(client: TestClient) -> None:
    assert client.get(f"/things/{uuid.uuid4()}").json()["status"] == 404
    body = client.post("/slots").json()
    assert (body["status"], body["alternatives"]) == (409, ["2027-03-01T15:30:00Z"])


def test_integrity_errors_name_the_constraint(client: TestClient) -> None:
    body = client.post("/duplicate-channel").json()
    assert (body["status"], body["constraint"]) == (409, "uq_channels_type_address")


def test_a_database_outage_is_503_with_retry_after(client: TestClient) -> None:
    response = client.get("/database-down")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "127.0.0.1" not in response.text


def test_unexpected_errors_do_not_leak_internals(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text
