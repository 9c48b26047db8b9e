"""The fault test: a real worker process is killed (SIGKILL) in the middle of an agent turn; after a new worker
starts, the lead gets exactly one reply, handed to the transport exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from twilio.request_validator import RequestValidator

from api.app import app
from leadpilot.settings import PROJECT_ROOT, get_settings
from models.conversations import Conversation, Message
from models.crm import Contact
from models.db import owner_session, owner_url
from models.sandbox import SandboxDelivery

pytestmark = pytest.mark.integration
TOKEN = "fault-test-twilio-token"


def _worker() -> subprocess.Popen[bytes]:
    env = {**os.environ, "CELERY_VISIBILITY_TIMEOUT": "3", "TWILIO_AUTH_TOKEN": TOKEN}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "agent,outbound,default",
         "--pool", "solo", "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
        cwd=PROJECT_ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=open(PROJECT_ROOT / ".leadpilot" / "test" / "fault-worker.log", "ab"))  # noqa: SIM115


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_turn_still_gives_exactly_one_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "twilio_auth_token", TOKEN)
    sender = f"+1646555{uuid.uuid4().int % 9000 + 1000}"
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "+17185550142", "Body": "what time do you open on sundays?", "NumMedia": "0"}
    url = get_settings().public_base_url.rstrip("/") + "/webhooks/twilio/sms"
    from agents.checkpoint import checkpointer

    checkpointer()  # the checkpoint tables exist before the test holds a lock (their setup waits for all)
    blocker = create_engine(owner_url()).connect()
    worker = _worker()
    try:
        signature = RequestValidator(TOKEN).compute_signature(url, form)
        assert TestClient(app).post("/webhooks/twilio/sms", data=form,
                                    headers={"X-Twilio-Signature": signature}).status_code == 200
        with owner_session() as session:
            conversation = session.scalars(select(Conversation).join(Contact, Contact.id == Conversation.contact_id)
                                           .where(Contact.phone == sender)).one()
            inbound = session.scalars(select(Message).where(Message.provider_message_id == form["MessageSid"])).one()
        # hold the row the turn's last write needs: the graph runs and checkpoints, then the turn waits there,
        # with its reply written but not committed
        blocker.begin()
        blocker.execute(text("SELECT 1 FROM conversation_ai_configs WHERE conversation_id = :c FOR UPDATE"),
                        {"c": conversation.id})
        # a fresh pg_stat_activity snapshot per look (autocommit: one transaction per query)
        with create_engine(owner_url(), isolation_level="AUTOCOMMIT").connect() as watcher:
            _wait(lambda: watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'UPDATE conversation_ai_configs%'")).scalar(), 60, "the turn to reach its last write")
        _kill(worker)
        blocker.rollback()
        with owner_session() as session:
            assert session.scalars(select(Message).where(
                Message.idempotency_key == f"ai-reply:{inbound.id}")).first() is None
            checkpoints = session.execute(text("SELECT count(*) FROM langgraph.checkpoints WHERE thread_id = :t"),
                                          {"t": str(conversation.id)}).scalar()
        assert checkpoints > 0  # the dead worker's progress is kept

        worker = _worker()  # the broker hands the unacknowledged turn to the new worker

        def sent() -> list[SandboxDelivery]:
            with owner_session() as session:
                return list(session.scalars(select(SandboxDelivery).where(
                    SandboxDelivery.request["to"].astext == sender)))

        _wait(sent, 90, "the reply to reach the transport")
        time.sleep(4.0)  # long enough for any duplicate (another redelivery, a second send) to show up
        with owner_session() as session:
            replies = session.scalars(select(Message).where(Message.conversation_id == conversation.id,
                                                            Message.direction == "outbound")).all()
        deliveries = sent()
        assert len(replies) == 1 and "Sunday 10:00-21:00" in replies[0].body and replies[0].status == "sent"
        assert len(deliveries) == 1 and deliveries[0].request["message_id"] == str(replies[0].id)
    finally:
        blocker.close()
        if worker.poll() is None:
            _kill(worker)
