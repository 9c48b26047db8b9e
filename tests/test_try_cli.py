"""Trying the product as a newcomer: `leadpilot run`'s development webhook secrets (made once, never over a real
credential) and `leadpilot sms send` / `leadpilot stripe event` posting requests signed as Twilio and Stripe sign
them to a real uvicorn server, with the agent's reply from a real worker."""

from __future__ import annotations

import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import stripe
import uvicorn
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import app as api
from leadpilot import dev_secrets
from leadpilot.cli import app
from leadpilot.settings import Settings, get_settings
from leadpilot.try_cli import stripe_signature
from models.activity import Integration
from models.db import owner_session
from models.performance import FinancialRecord
from tests.conftest import Demo

NUMBER_A = "+17185550142"  # restaurant A's SMS channel in the demo seed


def test_dev_secrets_are_made_once_and_never_stand_in_for_real_ones(tmp_path: Path) -> None:
    blank = Settings(leadpilot_state_dir=tmp_path, twilio_auth_token=None, stripe_webhook_secret=None)
    env = dev_secrets.child_env(blank)
    assert set(env) == {"LEADPILOT_DEV_TWILIO_AUTH_TOKEN", "LEADPILOT_DEV_STRIPE_WEBHOOK_SECRET"}
    assert dev_secrets.child_env(blank) == env  # the same on every `leadpilot run`
    assert stat.S_IMODE(dev_secrets.path(tmp_path).stat().st_mode) == 0o600
    real = Settings(leadpilot_state_dir=tmp_path, twilio_auth_token="real-token", stripe_webhook_secret=None,
                    leadpilot_dev_twilio_auth_token=env["LEADPILOT_DEV_TWILIO_AUTH_TOKEN"])
    assert dev_secrets.child_env(real) == {"LEADPILOT_DEV_STRIPE_WEBHOOK_SECRET":
                                           env["LEADPILOT_DEV_STRIPE_WEBHOOK_SECRET"]}
    assert real.twilio_webhook_token == "real-token"  # even were a dev one passed in
    assert dev_secrets.signing_secrets(real)["twilio_auth_token"] == "real-token"


def test_the_stripe_header_is_the_one_stripe_verifies() -> None:
    payload, secret, now = '{"id": "evt_1"}', "whsec_x", int(time.time())
    stripe.WebhookSignature.verify_header(payload, stripe_signature(payload, secret, now), secret, tolerance=300)
    assert stripe_signature(payload, secret, now) == stripe.WebhookSignature.generate_signature_header(
        payload, secret, now)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API on a real uvicorn server, configured as `leadpilot run` configures it when no Twilio or Stripe
    credential is set; the CLI in this process reads the same state folder."""
    settings = get_settings()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(settings, "leadpilot_state_dir", tmp_path)
    for name in ("twilio_auth_token", "stripe_webhook_secret"):
        monkeypatch.setattr(settings, name, None)
    for name, value in dev_secrets.child_env(settings).items():
        monkeypatch.setattr(settings, name.lower(), value)
    monkeypatch.setattr(settings, "public_base_url", url)
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # uvicorn says when it listens only through this flag
    assert server.started, "uvicorn did not start"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.integration
def test_sms_send_posts_a_signed_text_and_prints_the_agents_reply(served: str) -> None:
    from celery.contrib.testing.worker import start_worker

    from workers.app import QUEUES, celery_app

    sender = f"+1312555{uuid.uuid4().int % 9000 + 1000}"
    with start_worker(celery_app, pool="solo", perform_ping_check=False, queues=list(QUEUES)):
        result = CliRunner().invoke(app, ["sms", "send", "--from", sender, "--to", NUMBER_A, "--wait", "60",
                                          "what time do you open on sundays?"])
    output = " ".join(result.output.split())
    assert result.exit_code == 0, output
    assert f"{sender} -> {NUMBER_A}" in output and "Sunday 10:00-21:00" in output


@pytest.mark.integration
def test_sms_send_signed_with_another_token_is_refused(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev_secrets, "signing_secrets", lambda _: {"twilio_auth_token": "a-stale-token"})
    result = CliRunner().invoke(app, ["sms", "send", "--from", "+13125550100", "--to", NUMBER_A, "hi"])
    assert result.exit_code == 1 and "403" in result.output


@pytest.mark.integration
def test_stripe_event_posts_a_signed_event_the_api_applies(served: str, demo: Demo) -> None:
    with owner_session() as session:
        account = session.scalars(select(Integration.connection_id).where(
            Integration.sub_account_id == demo.a, Integration.provider_name == "stripe",
            Integration.deleted_at.is_(None))).one()
    pi = f"pi_{uuid.uuid4().hex[:24]}"
    result = CliRunner().invoke(app, ["stripe", "event", "payment_intent.succeeded", "--account", account,
                                      "--amount", "1999", "--email", f"cli-{uuid.uuid4().hex[:8]}@example.com",
                                      "--payment-intent", pi])
    assert result.exit_code == 0, result.output
    assert '"status": "processed"' in result.output
    with owner_session() as session:
        record = session.scalars(select(FinancialRecord).where(
            FinancialRecord.reference_number == f"stripe:{pi}")).one()
    assert (record.sub_account_id, record.amount) == (demo.a, Decimal("19.99"))
