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

import httpx
import pytest

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


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """The real API (uvicorn) and a real worker, as `make run` starts them; per module, so the worker is gone
    before other tests run (it would take their queued sends)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    api = _spawn(["uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)], "browser-api.log",
                 PUBLIC_BASE_URL=url, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    worker = _spawn(["celery", "-A", "workers.app", "worker", "-Q", "agent,outbound,default", "--pool", "threads",
                     "-c", "2", "--without-heartbeat", "--without-mingle", "--without-gossip"], "browser-worker.log",
                    TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
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
