"""The fault suite's world: a private LeadPilot (its own state folder, so its own embedded Postgres and Redis)
run as the CLI runs it, a local server speaking Twilio's REST protocol for the replies, a load of texts signed
as Twilio signs them, and the reading of the outcome from the database."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from sqlalchemy import Engine, create_engine, text
from twilio.request_validator import RequestValidator

from leadpilot import dev_secrets
from leadpilot.settings import PROJECT_ROOT

ACCOUNT = "AC" + "5" * 32
NUMBER = "+17185550142"  # restaurant A's SMS channel in the demo seed
RESULTS = PROJECT_ROOT / ".leadpilot" / "faults-results.jsonl"
# questions the demo restaurant's agent answers from its FAQ (a reply, never a handoff)
QUESTIONS = ("what time do you open on sundays?", "do you have parking?", "where are you located?",
             "are you open on sundays?", "what are your hours?")
# the environment of the test session that must not leak into the private product
FOREIGN = ("DATABASE_URL", "APP_DATABASE_URL", "REDIS_URL", "LP_TEST_REDIS_BASE", "LEADPILOT_STATE_DIR",
           "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_BASE", "PUBLIC_BASE_URL", "API_PORT",
           "LEADPILOT_DEV_TWILIO_AUTH_TOKEN", "LEADPILOT_DEV_STRIPE_WEBHOOK_SECRET")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], seconds: float, what: str, every: float = 0.2) -> Any:
    """Poll `condition` (errors count as not yet) until it is truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if found := condition():
                return found
        except Exception as exc:  # a dependency still restarting
            last = exc
        time.sleep(every)  # another process does the work: nothing to wait on but its visible result
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what} (last error: {last!r})")


@dataclass(frozen=True)
class Sent:
    """One request the Twilio server took: a message to a lead."""

    at: float  # wall clock
    to: str
    body: str


class FakeTwilio:
    """Twilio's Messages resource as the REST API serves it (basic auth, form bodies, JSON answers), recording
    every message the product sends."""

    def __init__(self, token: str) -> None:
        self.sent: list[Sent] = []
        self.created: list[dict[str, Any]] = []  # as the Messages list returns them
        self.lock = threading.Lock()
        expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{token}".encode()).decode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (the Messages list: what a cut-off send asks before resending)
                if self.headers.get("Authorization") != expected:
                    return self.answer(401, {"code": 20003, "status": 401, "message": "Authenticate"})
                query = {k: v[0] for k, v in parse_qs(self.path.partition("?")[2]).items()}
                with outer.lock:
                    found = [m for m in reversed(outer.created)
                             if m["to"] == query.get("To", m["to"]) and m["from"] == query.get("From", m["from"])]
                self.answer(200, {"messages": found, "page": 0, "page_size": 50, "start": 0, "end": len(found),
                                  "uri": self.path, "first_page_uri": self.path, "next_page_uri": None,
                                  "previous_page_uri": None})

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                if self.headers.get("Authorization") != expected or not self.path.endswith("/Messages.json"):
                    status, body = 401, {"code": 20003, "status": 401, "message": "Authenticate"}
                else:
                    status, body = 201, {"sid": f"SM{uuid.uuid4().hex}", "status": "queued", "to": form["To"],
                                         "from": form["From"], "body": form["Body"], "account_sid": ACCOUNT,
                                         "date_created": formatdate(usegmt=True)}
                    with outer.lock:
                        outer.sent.append(Sent(time.time(), form["To"], form["Body"]))
                        outer.created.append(body)
                self.answer(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-twilio").start()

    def to(self, phones: set[str]) -> list[Sent]:
        """What was sent to these numbers, in order of arrival."""
        with self.lock:
            return [s for s in self.sent if s.to in phones]

    def close(self) -> None:
        self.server.shutdown()


class Product:
    """A private LeadPilot on the embedded defaults: its state folder, Postgres, Redis and processes."""

    def __init__(self, state: Path, twilio_token: str, twilio_url: str) -> None:
        self.state, self.port = state, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = twilio_token
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("PYTEST")}
        # the development Twilio token of this state folder signs the webhooks; the same credential lets the
        # product's Twilio client reach the local Twilio server (outbound never leaves the machine)
        self.env = {**env, "LEADPILOT_STATE_DIR": str(state), "PUBLIC_BASE_URL": self.base,
                    "API_PORT": str(self.port), "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": twilio_token,
                    "TWILIO_API_BASE": twilio_url, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.engine: Engine | None = None
        self.redis_port: int | None = None

    # --- processes -------------------------------------------------------------------------------------------
    def _log(self, name: str) -> Any:
        return open(self.state / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)

    def cli(self, *args: str, timeout: float = 300) -> None:
        """A `leadpilot` command against this state folder, to its end."""
        subprocess.run([sys.executable, "-m", "leadpilot.cli", *args], cwd=PROJECT_ROOT, env=self.env, check=True,
                       timeout=timeout, stdout=self._log("cli"), stderr=subprocess.STDOUT)

    def embedded_env(self) -> dict[str, str]:
        """The environment of a command that finds the embedded servers itself (`leadpilot run`, `infra up`)."""
        return {k: v for k, v in self.env.items() if k not in ("DATABASE_URL", "REDIS_URL")}

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A long-running process in its own session (so it and its children can be signalled together)."""
        proc = subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, env=env or self.env,
                                start_new_session=True, stdout=self._log(name), stderr=subprocess.STDOUT)
        self.procs[name] = proc
        with (self.state.parent / f"{self.state.name}.pids").open("a") as pids:  # for a run that dies midway
            pids.write(f"{proc.pid}\n")
        return proc

    def start_api(self) -> None:
        self.spawn("api", ["-m", "leadpilot.cli", "serve", "--port", str(self.port)])

    def start_worker(self) -> None:
        self.spawn("worker", ["-m", "leadpilot.cli", "worker"])

    def start_beat(self) -> None:
        self.spawn("beat", ["-m", "celery", "-A", "workers.app", "beat", "-l", "WARNING",
                            "-s", str(self.state / "celerybeat-schedule")])

    def start_run(self) -> None:
        """`leadpilot run`: infra, migrations, the demo (kept), then API + worker + beat under its supervision."""
        self.spawn("run", ["-m", "leadpilot.cli", "run", "--port", str(self.port)], env=self.embedded_env())

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process and everything it started (its session), and reap it."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        proc.wait(timeout=120)

    def terminate(self, name: str, timeout: float = 120) -> float:
        """SIGTERM to the process alone (as a service manager does) and wait for it; seconds it took."""
        proc = self.procs.pop(name)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
        return time.monotonic() - started

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def ready(self, timeout: float = 120) -> None:
        """The API answers /readyz (database and Redis reachable)."""
        wait_for(lambda: httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200, timeout, "the API")

    # --- infrastructure ---------------------------------------------------------------------------------------
    def infra_urls(self) -> tuple[str, str]:
        """Start (or reuse) this folder's embedded servers; their owner database URL and Redis URL."""
        from leadpilot.infra import start_embedded_postgres, start_embedded_redis

        db = start_embedded_postgres(self.state / "pg")
        redis_url = start_embedded_redis(self.state / "redis")
        self.redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        # as `leadpilot run` hands them to its children: a process that had to find the servers itself would
        # start a stopped one again (and so end the fault it is meant to live through)
        self.env.update(DATABASE_URL=db, REDIS_URL=redis_url)
        return db, redis_url

    def stop_redis(self) -> None:
        from leadpilot.infra import stop_embedded_redis

        assert stop_embedded_redis(self.state / "redis")

    def start_redis(self) -> None:
        from leadpilot.infra import start_embedded_redis

        url = start_embedded_redis(self.state / "redis")
        assert url.endswith(f":{self.redis_port}/0"), url  # the port the running processes hold

    def stop_postgres(self) -> None:
        from leadpilot.infra import stop_embedded_postgres

        assert stop_embedded_postgres(self.state / "pg")

    def start_postgres(self) -> None:
        """As an operator would: `leadpilot infra up` (this process's pgserver handle still thinks it runs)."""
        subprocess.run([sys.executable, "-m", "leadpilot.cli", "infra", "up"], cwd=PROJECT_ROOT,
                       env=self.embedded_env(), check=True, timeout=120, stdout=self._log("cli"),
                       stderr=subprocess.STDOUT)

    def redis(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=2)

    def turns_running(self) -> int:
        """Conversations a worker holds the turn lock of (a turn is running there)."""
        return len(self.redis().keys("leadpilot:turn:*"))

    def shutdown(self) -> None:
        from leadpilot.infra import stop_embedded_postgres, stop_embedded_redis

        self.stop_all()
        (self.state.parent / f"{self.state.name}.pids").unlink(missing_ok=True)
        if self.engine is not None:
            self.engine.dispose()
        stop_embedded_redis(self.state / "redis")
        stop_embedded_postgres(self.state / "pg")


def fresh_product(name: str, twilio: Callable[[str], FakeTwilio]) -> tuple[Product, FakeTwilio]:
    """A new state folder (the previous run's servers stopped first), migrated and seeded with the demo."""
    from leadpilot.infra import stop_embedded_postgres, stop_embedded_redis

    state = PROJECT_ROOT / ".leadpilot" / name
    pids = state.parent / f"{name}.pids"
    if pids.exists():  # the sessions an earlier run of this suite started and could not stop (it was killed)
        for pid in {int(line) for line in pids.read_text().split()}:
            with contextlib.suppress(OSError):  # gone already; a pid now someone else's is left alone
                if f"LEADPILOT_STATE_DIR={state}\0".encode() in Path(f"/proc/{pid}/environ").read_bytes():
                    os.killpg(pid, signal.SIGKILL)
        pids.unlink()
    stop_embedded_redis(state / "redis")
    stop_embedded_postgres(state / "pg")
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    token = dev_secrets.load_or_create(state)["twilio_auth_token"]
    fake = twilio(token)
    product = Product(state, token, fake.url)
    db_url, _ = product.infra_urls()
    product.engine = create_engine(db_url, pool_pre_ping=True, pool_size=2)
    product.cli("db", "migrate")
    product.cli("seed-demo")
    return product, fake


# --- load ----------------------------------------------------------------------------------------------------
@dataclass
class Load:
    """Texts from `leads` distinct numbers at `rate` per second, signed as Twilio signs them, each posted until
    the API acknowledges it (2xx) or `give_up_s` after the load stops; as Twilio does, a retry keeps the
    MessageSid."""

    product: Product
    prefix: str  # the leads' numbers: prefix + 2 digits
    leads: int = 30
    rate: float = 4.0
    give_up_s: float = 60.0
    acked: dict[str, tuple[str, float]] = field(default_factory=dict)  # sid -> (phone, wall time of the ack)
    posted: dict[str, str] = field(default_factory=dict)  # every sid tried -> phone
    statuses: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._schedule, daemon=True, name="load")
        self.url = self.product.base + "/webhooks/twilio/sms"
        self.validator = RequestValidator(self.product.token)
        self.stopped_at = 0.0

    def phone(self, n: int) -> str:
        return f"{self.prefix}{n % self.leads:02d}"

    @property
    def phones(self) -> set[str]:
        return {self.phone(n) for n in range(self.leads)}

    def start(self) -> Load:
        self._thread.start()
        return self

    def _schedule(self) -> None:
        n, started = 0, time.monotonic()
        while not self._stop.is_set():
            sid = f"SM{uuid.uuid4().hex}"
            form = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": ACCOUNT,
                    "From": self.phone(n), "To": NUMBER, "Body": QUESTIONS[(n // self.leads) % len(QUESTIONS)],
                    "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
            with self._lock:
                self.posted[sid] = form["From"]
            self._pool.submit(self._deliver, form)
            n += 1
            self._stop.wait(max(0.0, started + n / self.rate - time.monotonic()))

    def _deliver(self, form: dict[str, str]) -> None:
        signature = self.validator.compute_signature(self.url, form)
        with httpx.Client(timeout=15) as client:
            while True:
                try:
                    response = client.post(self.url, data=form, headers={"X-Twilio-Signature": signature})
                    outcome = str(response.status_code)
                except httpx.HTTPError as exc:
                    response, outcome = None, type(exc).__name__
                with self._lock:
                    self.statuses[outcome] += 1
                    if response is not None and response.is_success:
                        self.acked[form["MessageSid"]] = (form["From"], time.time())
                        return
                if self.stopped_at and time.time() > self.stopped_at + self.give_up_s:
                    return
                retry_after = response.headers.get("Retry-After") if response is not None else None
                time.sleep(min(float(retry_after), 2.0) if retry_after else 1.0)  # Twilio-like retry pacing

    def stop(self) -> None:
        """No new texts from now on; the ones not yet acknowledged keep being retried for `give_up_s`."""
        self.stopped_at = time.time()
        self._stop.set()
        self._thread.join()

    def drain(self) -> None:
        self._pool.shutdown(wait=True)


# --- outcome --------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What the database (and the Twilio server) say about a fault's texts."""

    stored: dict[str, int]  # acked sid -> inbound rows with it
    unanswered: list[str]  # acked sids no reply covers yet
    duplicate_replies: list[str]  # inbound message ids with more than one reply
    send_mismatch: dict[str, Any]  # phone -> (replies stored, messages the Twilio server got), when they differ
    failed_replies: list[str]  # replies whose send failed (outcome unknown, dead letter)
    last_reply_at: dict[str, float]  # phone -> when the Twilio server got its last message


def read_outcome(product: Product, load: Load, fake: FakeTwilio) -> Outcome:
    """Every acked text's inbound row, the bot replies of its conversation and the messages the lead got."""
    assert product.engine is not None
    with product.engine.connect() as conn:
        stored = dict.fromkeys(load.acked, 0)
        for sid, count in conn.execute(text(
                "SELECT provider_message_id, count(*) FROM messages WHERE direction = 'inbound' "
                "AND provider_message_id = ANY(:sids) GROUP BY 1"), {"sids": list(load.posted)}):
            if sid in stored:
                stored[sid] = count
            assert count == 1, f"{sid} stored {count} times"  # unacknowledged ones at most once, too
        rows = conn.execute(text(
            "SELECT c.phone, m.id, m.direction, m.provider_message_id, m.created_at, m.body, m.status, "
            "m.metadata ->> 'in_reply_to' AS in_reply_to, m.error_code FROM messages m "
            "JOIN contacts c ON c.id = m.contact_id WHERE c.phone = ANY(:phones) ORDER BY m.created_at"),
            {"phones": sorted(load.phones)}).all()
    by_phone: dict[str, list[Any]] = {}
    for row in rows:
        by_phone.setdefault(row.phone, []).append(row)
    sent = fake.to(load.phones)
    unanswered, duplicates, failed, mismatch = [], [], [], {}
    last_reply_at: dict[str, float] = {}
    for phone, messages in by_phone.items():
        inbound = {str(m.id): m for m in messages if m.direction == "inbound"}
        replies = [m for m in messages if m.direction == "outbound"]
        targets = Counter(m.in_reply_to for m in replies)
        duplicates += [t for t, n in targets.items() if n > 1]
        failed += [str(m.id) for m in replies if m.status not in ("sent", "delivered")]
        # a reply answers everything the lead said since the previous reply's message (a burst is answered once)
        answered_up_to = max((inbound[t].created_at for t in targets if t in inbound), default=None)
        unanswered += [m.provider_message_id for m in inbound.values() if m.provider_message_id in load.acked
                       and (answered_up_to is None or m.created_at > answered_up_to)]
        got = Counter(s.body for s in sent if s.to == phone)
        if got != Counter(m.body for m in replies):  # each reply reached the lead, once
            mismatch[phone] = {"stored": len(replies), "sent": sum(got.values())}
        times = [s.at for s in sent if s.to == phone]
        if times:
            last_reply_at[phone] = max(times)
    return Outcome(stored, unanswered, duplicates, mismatch, failed, last_reply_at)


def settled(product: Product, load: Load, fake: FakeTwilio) -> Outcome | None:
    """The outcome once every acknowledged text is answered and every reply has reached the Twilio server."""
    outcome = read_outcome(product, load, fake)
    return outcome if not outcome.unanswered and not outcome.send_mismatch else None


def percentile(values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


def report(fault: str, load: Load, outcome: Outcome, fault_end: float, **extra: Any) -> dict[str, Any]:
    """The fault's one JSON line (printed, and appended to RESULTS)."""
    leads = {phone for phone, _ in load.acked.values()}
    lags = [max(0.0, outcome.last_reply_at.get(p, float("inf")) - fault_end) for p in leads]
    line = {"fault": fault, "leads": len(leads), "posted": len(load.posted), "acknowledged": len(load.acked),
            "stored_once": all(n == 1 for n in outcome.stored.values()),
            "answered_once": not outcome.unanswered and not outcome.duplicate_replies and not outcome.send_mismatch,
            "p95_after_fault_s": round(percentile(lags, 0.95), 1), "max_after_fault_s": round(max(lags or [0]), 1),
            # replies marked failed (a worker died inside the provider call: never re-sent to Twilio, which
            # cannot dedupe; whether the lead got it is what answered_once says, from the Twilio server)
            "replies_failed": len(outcome.failed_replies), "responses": dict(load.statuses), **extra,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(line), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(line) + "\n")
    return line


def run_fault(product: Product, fake: FakeTwilio, prefix: str, inject: Callable[[Load], dict[str, Any] | None],
              fault: str, *, deadline_s: float = 150.0) -> tuple[dict[str, Any], Outcome]:
    """Load on, `inject` the fault (it returns once the fault has ended, with any figures of its own), load off;
    then wait (bounded) until every acknowledged text is answered, and report."""
    load = Load(product, prefix).start()
    try:
        extra = inject(load) or {}
        fault_end = time.time()
    finally:
        load.stop()
    load.drain()
    try:
        wait_for(lambda: settled(product, load, fake), deadline_s, f"every text of {fault} answered", every=1.0)
        in_time = True
    except AssertionError:  # reported all the same: the figures say what is missing
        in_time = False
    time.sleep(3.0)  # a quiet spell in which a duplicate send (a redelivered task) would show
    outcome = read_outcome(product, load, fake)
    return report(fault, load, outcome, fault_end, settled_in_time=in_time, **extra), outcome


@dataclass
class Stack:
    """Which way the product's processes run now: separately (API, worker, beat) or under `leadpilot run`."""

    product: Product
    mode: str = ""

    def separate(self) -> None:
        if self.mode == "separate":
            return
        self.product.stop_all()
        self.product.start_api()
        self.product.start_worker()
        self.product.start_beat()
        self.product.ready()
        self.mode = "separate"

    def supervised(self) -> None:
        if self.mode == "run":
            return
        self.product.stop_all()
        self.product.start_run()
        self.product.ready(timeout=180)
        self.mode = "run"


def warm(product: Product, fake: FakeTwilio, prefix: str, timeout: float = 120) -> float:
    """One text answered end to end: the worker's processes have loaded their models. Seconds it took."""
    started = time.monotonic()
    load = Load(product, prefix, leads=2, rate=2.0)
    load.start()
    time.sleep(1.0)
    load.stop()
    load.drain()
    wait_for(lambda: settled(product, load, fake), timeout, "the warm-up texts answered", every=0.5)
    return time.monotonic() - started
