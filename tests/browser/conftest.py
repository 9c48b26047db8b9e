"""One real API (uvicorn) and one real worker for the browser tests, as `make run` starts them, and the
flags Debian's chromium runs with here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis

from leadpilot.settings import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
TWILIO_TOKEN = "browser-test-twilio-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], log_name: str, **env: str) -> subprocess.Popen[bytes]:
    log = open(PROJECT_ROOT / ".leadpilot" / "test" / log_name, "ab")  # noqa: SIM115 (the process owns it)
    return subprocess.Popen([sys.executable, "-m", *args], cwd=PROJECT_ROOT, env={**os.environ, **env},
                            start_new_session=True, stdout=log, stderr=log)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def running_app(name: str, queues: str, concurrency: int = 2, **env: str) -> Iterator[str]:
    """The real API (uvicorn) and a real worker of `queues`, as `make run` starts them, with `env` on both;
    logs in .leadpilot/test/<name>-api.log and -worker.log. Yields the API's URL once it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    api = _spawn(["uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)], f"{name}-api.log",
                 PUBLIC_BASE_URL=url, **env)
    worker = _spawn(["celery", "-A", "workers.app", "worker", "-Q", queues, "--pool", "threads",
                     "-c", str(concurrency), "--without-heartbeat", "--without-mingle", "--without-gossip"],
                    f"{name}-worker.log", PUBLIC_BASE_URL=url, **env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the API did not start")
        yield url
    finally:
        _stop(api)
        _stop(worker)


def _purge_queues(*names: str) -> None:
    """Empty Celery's Redis lists of these queues (kombu keeps a queue, and each of its priorities, in a list)."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        for name in names:
            client.delete(name, *client.keys(f"{name}\x06\x16*"))
    finally:
        client.close()


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """The API and a worker of the agent, outbound and default queues; per module, so the worker is gone
    before other tests run (it would take their queued sends)."""
    # tasks an earlier test file of this process left queued (its own turns, on its own database) would take the
    # worker's threads: this module's worker starts on empty queues
    _purge_queues("agent", "outbound", "default")
    with running_app("browser", "agent,outbound,default", TWILIO_AUTH_TOKEN=TWILIO_TOKEN) as url:
        yield url
