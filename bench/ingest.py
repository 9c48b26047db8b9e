"""Sustained inbound SMS: Twilio webhooks per second, each signed, verified, stored and queued, from 64 concurrent
clients for 30 s against the real server, with nothing lost or stored twice; then speed to lead.

ours:      `POST /webhooks/twilio/sms` of the real app (`api.app:app`) served by uvicorn on the scratch database
           and a private embedded Redis: every request carries Twilio's signature (made with twilio's own
           `RequestValidator.compute_signature`), is verified, stored with its contact, conversation and outbox
           event in one transaction and handed to Celery (`agent_turn_event.delay`, into Redis). Afterwards the
           database is checked against every acknowledged MessageSid: `lost` = acknowledged but not stored,
           `duplicated` = stored more than once (also after re-posting a sample of acknowledged requests, as
           Twilio's retries do), `missing_outbox` = stored without its `agent.turn` event, `queued` = tasks
           waiting in Redis. Speed to lead (`reply_*`): a Celery worker (local model) runs, new leads text in at
           a modest rate, and each is timed from just before its POST to the reply's `sandbox_deliveries` row
           (the outbound send handed to the transport), by the host clock; `reply_db_*` times the same from the
           inbound message's `created_at` (both ends by the database clock); `reply_stored_*` to the stored
           reply message, which exists whether or not the outbound transport does.
baseline:  a bare FastAPI app (below) whose POST route reads the same form and returns 200: the ceiling of
           uvicorn + FastAPI on this machine, served with the same worker count, hit by the same load generator
           for the same time, in the same run.
floor:     the least any design can do that stores each webhook in a transaction of its own before answering:
           FastAPI, the same Twilio signature check, one `INSERT ... ON CONFLICT DO NOTHING` of the message into
           a one-table (one statement = one transaction, autocommit) through psycopg's async pool, then 200; no
           contact, conversation, outbox or queue. Same server, load and time, in the same run (`floor.*`).
           `floor_batched.*`: the same with group commit (the rows waiting while a batch commits go in the next
           batch's one statement), the least a design that shares transactions between webhooks can do.
           `floor_full.*` (a lean design rather than a strict floor: ours has spent less Postgres time than it in
           some runs): group commit of what the issue asks of every inbound text and nothing else, on the
           product's own tables (indexes, constraints, triggers, row-level security as the application role,
           each sub-account's scope set): the contact matched by phone or created, the lead's latest conversation
           on the channel or a new one, the message once per MessageSid, its agent turn as a pending outbox row;
           one statement per sub-account of a batch (FLOOR_FULL), no ORM, no counters, analytics, workflows or
           hand-off. Its leads are other phone numbers than ours', so ours meets no contact it created.

`cpu_ms` (each phase): CPU time (user + system, from /proc) per acknowledged request in the timed window, of the
server's processes, of Postgres (every postgres process on the machine) and of the load generator, and how many
cores all of them kept busy: where each design's time goes, read in the same run.

The load generator (aiohttp on uvloop, bodies signed before the timed window) runs in its own process, on the
same machine: on a 2-core box it takes a share of the CPU from the server and Postgres, for ours and the
baseline alike. Prints one JSON line (see CONVENTIONS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time as clock
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request, Response  # module level: the bare app's annotations resolve here

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATE = ROOT / ".leadpilot" / "bench"
PATH = "/webhooks/twilio/sms"
ACCOUNT_SID = "AC" + "0" * 32
TOKEN = "bench-ingest-auth-token"
AREA_CODES = ("201", "212", "213", "305", "312", "404", "415", "503", "512", "602", "617", "702", "713", "718",
              "773", "832", "917", "972")
TEXTS = ("Hi, do you have a table for 4 tonight around 7?", "What time do you close on Sundays?",
         "Do you do catering for about 40 people?", "Is there parking near you?",
         "Can I book a birthday dinner for next Friday?", "Do you have gluten free options?",
         "hey are you open on the 4th of july", "How much is the lunch special?",
         "Can I order for pickup at 6:30?", "Do you take reservations for large groups?",
         "Is the patio open today?", "Looking to host a rehearsal dinner, 25 guests, what are the options?")


def bare_app() -> FastAPI:
    """The baseline: FastAPI reading the same form and answering 200 (uvicorn --factory)."""
    app = FastAPI()

    @app.post(PATH)
    async def sms(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).multi_items()}
        return Response(str(len(form)), media_type="text/plain")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


FLOOR_TABLE = "bench_ingest_floor"
# floor_full: for every webhook of a batch, what the issue asks of an inbound text and nothing more, on the
# product's own tables (their indexes, constraints, triggers and row-level security), in one statement per
# sub-account of the batch: the contact matched by phone or created, the lead's latest conversation on the
# channel or a new one, the message once per MessageSid, its agent turn as a pending outbox row
FLOOR_FULL = (
    "WITH u AS (SELECT * FROM unnest(%(sids)b::varchar[], %(phones)b::varchar[], %(channels)b::uuid[], "
    "%(bodies)b::text[], %(created)b::timestamptz[]) AS u(sid, phone, channel_id, body, created_at)), "
    "p AS (SELECT DISTINCT phone FROM u), "
    "known AS (SELECT c.phone, c.id FROM p JOIN contacts AS c ON c.sub_account_id = %(sub)b AND c.phone = p.phone "
    "AND c.deleted_at IS NULL), "
    "added AS (INSERT INTO contacts (sub_account_id, agency_id, phone, source, initial_contact_date) "
    "SELECT %(sub)b, %(agency)b, p.phone, 'sms', now() FROM p WHERE NOT EXISTS (SELECT FROM known "
    "WHERE known.phone = p.phone) ON CONFLICT (sub_account_id, phone) WHERE deleted_at IS NULL AND phone IS NOT NULL "
    "DO UPDATE SET phone = excluded.phone RETURNING phone, id), "  # a concurrent batch's new contact: theirs
    "c AS (SELECT * FROM known UNION ALL SELECT * FROM added), "
    "pairs AS (SELECT DISTINCT u.channel_id, c.id AS contact_id FROM u JOIN c ON c.phone = u.phone), "
    "latest AS (SELECT pairs.channel_id, pairs.contact_id, v.id FROM pairs CROSS JOIN LATERAL (SELECT id "
    "FROM conversations WHERE sub_account_id = %(sub)b AND contact_id = pairs.contact_id AND channel_id = "
    "pairs.channel_id AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1) AS v), "
    "opened AS (INSERT INTO conversations (sub_account_id, channel_id, contact_id) SELECT %(sub)b, channel_id, "
    "contact_id FROM pairs WHERE NOT EXISTS (SELECT FROM latest WHERE latest.channel_id = pairs.channel_id AND "
    "latest.contact_id = pairs.contact_id) RETURNING channel_id, contact_id, id), "
    "v AS (SELECT * FROM latest UNION ALL SELECT * FROM opened), "
    "m AS (INSERT INTO messages (sub_account_id, conversation_id, channel_id, contact_id, direction, sender_type, "
    "body, status, provider_message_id, idempotency_key, created_at) SELECT %(sub)b, v.id, u.channel_id, c.id, "
    "'inbound', 'contact', u.body, 'received', u.sid, 'twilio:' || u.sid, u.created_at FROM u "
    "JOIN c ON c.phone = u.phone JOIN v ON v.channel_id = u.channel_id AND v.contact_id = c.id "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, conversation_id, created_at) "
    "INSERT INTO outbox_events (sub_account_id, topic, aggregate_type, aggregate_id, payload, dedupe_key, "
    "available_at) SELECT %(sub)b, 'agent.turn', 'message', m.id, jsonb_build_object('conversation_id', "
    "m.conversation_id, 'message_id', m.id), 'agent.turn:' || m.id, m.created_at FROM m")


def floor_app() -> FastAPI:
    """The floors (uvicorn --factory): verify as ours does, store, answer. BENCH_FLOOR_KIND `single`: one
    one-table insert per webhook; `batched`: the same rows by group commit; `full`: group commit of FLOOR_FULL,
    as the application role (row-level security) with each sub-account's scope set, as ours does."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from datetime import UTC, datetime

    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool
    from twilio.request_validator import RequestValidator

    from channels.sms import TwilioParams
    from models.db import TenantScope

    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    url = os.environ["PUBLIC_BASE_URL"] + PATH
    kind = os.environ["BENCH_FLOOR_KIND"]
    pool = AsyncConnectionPool(os.environ["BENCH_FLOOR_APP_DSN" if kind == "full" else "BENCH_FLOOR_DSN"],
                               min_size=4, max_size=16, open=False, kwargs={"autocommit": kind != "full"})
    routes: dict[str, tuple[uuid.UUID, str, str]] = {}  # To -> (channel, sub-account, agency), as ours caches them

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with await AsyncConnection.connect(os.environ["BENCH_FLOOR_DSN"]) as conn:
            for address, channel_id, sub_account_id, agency_id in await (await conn.execute(
                    "SELECT c.address, c.id, c.sub_account_id, s.agency_id FROM channels AS c JOIN sub_accounts AS s "
                    "ON s.id = c.sub_account_id WHERE c.channel_type = 'sms' AND c.is_active")).fetchall():
                routes[address] = (channel_id, str(sub_account_id), str(agency_id))
        await pool.open()
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)
    waiting: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
    flushing: list[bool] = [False]

    async def write_rows(batch: list[tuple[Any, ...]]) -> None:
        async with pool.connection() as conn:
            await conn.execute(f"INSERT INTO {FLOOR_TABLE} (sid, sender, receiver, body) SELECT * FROM "
                               "unnest(%s::text[], %s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
                               [list(column) for column in zip(*batch, strict=True)])

    async def write_full(batch: list[tuple[Any, ...]]) -> None:
        """One transaction; per sub-account (in a fixed order: no deadlock), its scope, then FLOOR_FULL with the
        texts in MessageSid order (two batches never lock the same rows in opposite orders)."""
        groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for row in batch:
            groups.setdefault((row[4], row[5]), []).append(row)
        async with pool.connection() as conn, conn.transaction():
            for (sub, agency), rows in sorted(groups.items()):
                scope = TenantScope(agency_id=uuid.UUID(agency), sub_account_id=uuid.UUID(sub)).settings()
                await conn.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(scope)),
                                   [x for pair in scope.items() for x in pair])
                sids, phones, channels, bodies, created = (list(column) for column in zip(
                    *(row[:4] + (row[6],) for row in sorted(rows)), strict=True))
                await conn.execute(FLOOR_FULL, {"sub": uuid.UUID(sub), "agency": uuid.UUID(agency), "sids": sids,
                                                "phones": phones, "channels": channels, "bodies": bodies,
                                                "created": created})

    async def flush() -> None:
        """Group commit: every row waiting when the previous batch is done goes in the next batch (one
        transaction); each request is answered once its row is committed."""
        while waiting:
            batch = waiting[:]
            del waiting[:]
            try:
                await (write_full if kind == "full" else write_rows)([row for row, _ in batch])
                for _, done in batch:
                    done.set_result(None)
            except Exception as exc:  # noqa: BLE001 - every waiter learns of it
                for _, done in batch:
                    done.set_exception(exc)
        flushing[0] = False

    @app.post(PATH)
    async def sms(request: Request) -> Response:
        # the form read and handed to the validator as ours does
        form = TwilioParams(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            return Response(status_code=403)
        if kind == "full":
            channel_id, sub_account_id, agency_id = routes[form["To"]]
            row: tuple[Any, ...] = (form["MessageSid"], form["From"], channel_id, form["Body"], sub_account_id,
                                    agency_id, datetime.now(UTC))
        else:
            row = (form["MessageSid"], form["From"], form["To"], form["Body"])
        if kind != "single":
            done = asyncio.get_running_loop().create_future()
            waiting.append((row, done))
            if not flushing[0]:
                flushing[0] = True
                asyncio.get_running_loop().create_task(flush())
            await done
        else:
            async with pool.connection() as conn:
                await conn.execute(f"INSERT INTO {FLOOR_TABLE} (sid, sender, receiver, body) VALUES (%s, %s, %s, %s) "
                                   "ON CONFLICT DO NOTHING", row)
        return Response("<Response/>", media_type="text/xml")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# ---------------------------------------------------------------------------------------------------- requests

def phone_numbers(count: int, rng: random.Random, taken: set[str]) -> list[str]:
    """`count` distinct, valid US numbers in E.164 (phonenumbers' test, as the CRM applies it), none in `taken`."""
    import phonenumbers

    found: dict[str, None] = {}
    while len(found) < count:
        exchange = rng.randrange(200, 1000)
        if exchange % 100 == 11 or exchange == 555:
            continue
        number = f"+1{rng.choice(AREA_CODES)}{exchange}{rng.randrange(10000):04d}"
        if number not in taken and number not in found and phonenumbers.is_valid_number(phonenumbers.parse(number)):
            found[number] = None
    return list(found)


def sid(nonce: str, index: int) -> str:
    """The MessageSid of request `index`: SM + 32 hex, unique per run."""
    return "SM" + hashlib.md5(f"{nonce}:{index}".encode()).hexdigest()


def signed(spec: dict[str, Any], index: int, validator: Any) -> tuple[bytes, str]:
    """Request `index` as Twilio would post it: the form (Twilio's usual fields) and its X-Twilio-Signature."""
    tos, froms = spec["to"], spec["from"]
    message_sid = sid(spec["nonce"], index)
    params = {
        "ToCountry": "US", "ToState": "NY", "SmsMessageSid": message_sid, "NumMedia": "0", "ToCity": "",
        "FromZip": "", "SmsSid": message_sid, "FromState": "", "SmsStatus": "received", "FromCity": "",
        "Body": TEXTS[index % len(TEXTS)], "FromCountry": "US", "To": tos[index % len(tos)], "ToZip": "",
        "NumSegments": "1", "MessageSid": message_sid, "AccountSid": ACCOUNT_SID,
        "From": froms[index % len(froms)], "ApiVersion": "2010-04-01",
    }
    return urlencode(params).encode(), validator.compute_signature(spec["url"], params)


def headers(signature: str) -> dict[str, str]:
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1"}


# ------------------------------------------------------------------------------------------------ load generator

def loader(spec_path: str) -> None:
    """The load generator process: sign every request first, then `clients` connections post as fast as answers
    come back, for `warmup` s (not timed) and `seconds` s (timed). Writes what it saw to spec["out"]."""
    import aiohttp
    import uvloop
    from twilio.request_validator import RequestValidator

    spec = json.loads(Path(spec_path).read_text())
    validator = RequestValidator(spec["token"])
    requests = [signed(spec, i, validator) for i in range(spec["count"])]
    cyclic = spec["cyclic"]  # the baseline may repeat bodies; ours needs every MessageSid new

    async def run() -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(total=60)
        ok: list[int] = []
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        state: dict[str, Any] = {"next": 0, "exhausted": False, "timed_ok": 0, "last": 0.0}
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async def client(until: float, timed: bool) -> None:
                while clock.perf_counter() < until:
                    index = state["next"]
                    if index >= len(requests) and not cyclic:
                        state["exhausted"] = True
                        return
                    state["next"] += 1
                    body, signature = requests[index % len(requests)]
                    started = clock.perf_counter()
                    try:
                        async with session.post(spec["url"], data=body, headers=headers(signature)) as response:
                            await response.read()
                            status = str(response.status)
                    except Exception as exc:  # a refused or dropped request is a result, not a crash
                        status = type(exc).__name__
                    done = clock.perf_counter()
                    statuses[status] += 1
                    if status.startswith("2"):
                        ok.append(index)
                        if timed:
                            latencies.append((done - started) * 1000)
                            state["timed_ok"] += 1
                    state["last"] = done

            warm_until = clock.perf_counter() + spec["warmup"]
            await asyncio.gather(*(client(warm_until, False) for _ in range(spec["clients"])))
            warm_statuses = dict(statuses)
            statuses.clear()
            started, window_from = clock.perf_counter(), clock.time()
            await asyncio.gather(*(client(started + spec["seconds"], True) for _ in range(spec["clients"])))
            elapsed = state["last"] - started
        return {"ok": ok, "latencies_ms": latencies, "statuses": dict(statuses), "warm_statuses": warm_statuses,
                "timed_ok": state["timed_ok"], "elapsed_s": elapsed, "exhausted": state["exhausted"],
                "posted": state["next"], "window": [window_from, window_from + elapsed]}

    result = uvloop.run(run())
    Path(spec["out"]).write_text(json.dumps(result))


def load(spec: dict[str, Any], workdir: Path, server: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """Run the load generator in its own process and return its findings; with `server`, also the CPU time
    (user + system) the server's processes, Postgres and the load generator spent per acknowledged request
    in the timed window (`cpu_ms`), sampled from /proc every 0.25 s."""
    import threading

    spec_path, out = workdir / "spec.json", workdir / "out.json"
    out.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({**spec, "out": str(out)}))
    process = subprocess.Popen([sys.executable, __file__, "--loader", str(spec_path)], cwd=ROOT)
    samples: list[tuple[float, dict[str, float]]] = []
    if server is not None:
        def sample() -> None:
            while process.poll() is None:
                samples.append((clock.time(), cpu_by_role(server.pid, process.pid)))
                clock.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    if process.wait() != 0:
        raise RuntimeError(f"the load generator exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    if server is not None:
        sampler.join()
        start, end = result["window"]
        inside = [s for s in samples if start <= s[0] <= end]
        if len(inside) >= 2 and result["timed_ok"]:
            first, last = inside[0], inside[-1]
            # requests acknowledged between the two samples, at the window's mean rate
            handled = result["timed_ok"] * (last[0] - first[0]) / (end - start)
            result["cpu_ms"] = {role: round((last[1].get(role, 0.0) - first[1].get(role, 0.0)) / handled * 1000, 3)
                                for role in ("server", "postgres", "loader")}
            result["cpu_ms"]["total"] = round(sum(result["cpu_ms"].values()), 3)
            busy = sum(last[1].values()) - sum(first[1].values())
            result["cpu_ms"]["cores_busy"] = round(busy / (last[0] - first[0]), 2)
    return result


def cpu_by_role(server_pid: int, loader_pid: int) -> dict[str, float]:
    """CPU seconds so far of the server (the uvicorn process group), Postgres (every process named postgres on
    the machine: the run's server, and any other, idle, one) and the load generator."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"server": 0.0, "postgres": 0.0, "loader": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, _, rest = f.read().rpartition(")")
            fields = rest.split()
            name = head.partition("(")[2]
            seconds = (int(fields[11]) + int(fields[12])) / tick
            pgid = int(fields[2])
        except (OSError, ValueError, IndexError):
            continue
        pid = int(entry)
        if pid == loader_pid:
            used["loader"] += seconds
        elif pgid == server_pid:  # `start` gives the server its own session, so its group id is its pid
            used["server"] += seconds
        elif name == "postgres":
            used["postgres"] += seconds
    return used


# ---------------------------------------------------------------------------------------------------- processes

def plain_dsn(url: str) -> str:
    """A SQLAlchemy URL as libpq takes it."""
    from sqlalchemy import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A subprocess in its own process group (so everything it forks is stopped with it), output to `log`."""
    with log.open("wb") as sink:  # one run's output, kept for a look afterwards
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after 15 s."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def serve(app: str, port: int, workers: int, env: dict[str, str], log: Path, procs: list[subprocess.Popen[bytes]],
          factory: bool = False) -> None:
    """uvicorn (uvloop + httptools, as installed) on `port`, added to `procs`; returns once /healthz answers."""
    import httpx

    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--no-access-log", "--log-level", "warning"] + (["--factory"] if factory else [])
    process = start(cmd, env, log)
    procs.append(process)
    deadline = clock.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn {app} exited ({process.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if clock.monotonic() > deadline:
            raise RuntimeError(f"uvicorn {app} did not come up; see {log}")
        clock.sleep(0.2)


# -------------------------------------------------------------------------------------------------- the checks

def setup() -> tuple[list[str], set[str]]:
    """Seed the demo agency; the addresses of its SMS channels and every phone number already taken."""
    from sqlalchemy import select

    from models.conversations import Channel
    from models.crm import Contact
    from models.db import owner_session
    from services.demo_agency import seed_demo

    with owner_session() as session:
        seed_demo(session=session)
        channels = list(session.scalars(select(Channel).where(Channel.channel_type == "sms", Channel.is_active)))
        for channel in channels:
            assert not (channel.config or {}).get("auth_token"), "the bench signs with TWILIO_AUTH_TOKEN"
        taken = {p for p in session.scalars(select(Contact.phone)) if p}
    return sorted(c.address for c in channels), taken


def stored(engine: Any, sids: list[str]) -> dict[str, Any]:
    """What the database holds for these MessageSids (owner connection, no RLS)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        counts = dict(conn.execute(text(
            "SELECT provider_message_id, count(*) FROM messages WHERE direction = 'inbound' "
            "AND provider_message_id = ANY(:sids) GROUP BY 1"), {"sids": sids}).all())
        no_event = conn.execute(text(
            "SELECT count(*) FROM messages m WHERE m.direction = 'inbound' AND m.provider_message_id = ANY(:sids) "
            "AND NOT EXISTS (SELECT 1 FROM outbox_events o WHERE o.topic = 'agent.turn' AND o.aggregate_id = m.id)"),
            {"sids": sids}).scalar_one()
        totals = conn.execute(text(
            "SELECT (SELECT count(*) FROM messages WHERE direction = 'inbound'), "
            "(SELECT count(*) FROM outbox_events WHERE topic = 'agent.turn'), "
            "(SELECT count(*) FROM contacts), (SELECT count(*) FROM conversations)")).one()
    return {"counts": counts, "missing_outbox": int(no_event), "inbound": totals[0], "events": totals[1],
            "contacts": totals[2], "conversations": totals[3]}


def queued(redis_url: str) -> int:
    """Agent turns waiting on the agent queue (kombu keeps a queue as a Redis list, one per priority): one per
    `agent_turn_event` message, and as many as it carries per `agent_turn_events` message (a batch's turns)."""
    import base64

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        turns = 0
        for key in client.scan_iter(match="agent*"):
            if client.type(key) != b"list":
                continue
            for raw in client.lrange(key, 0, -1):
                message = json.loads(raw)
                args = json.loads(base64.b64decode(message["body"]))[0]
                turns += len(args[0]) if message["headers"]["task"] == "workers.agent_turn_events" else 1
        return turns
    finally:
        client.close()


def drop_queue(redis_url: str) -> None:
    """Forget the throughput phase's queued turns, so the worker of the next phase starts on an empty queue."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for key in list(client.scan_iter(match="agent*")):
            if client.type(key) == b"list":
                client.delete(key)
    finally:
        client.close()


def forged(url: str, spec: dict[str, Any], engine: Any) -> dict[str, Any]:
    """A request signed with another token must be refused, and store nothing."""
    import httpx
    from twilio.request_validator import RequestValidator

    index = spec["count"] + 1  # a MessageSid the load never used
    body, signature = signed(spec, index, RequestValidator(spec["token"] + "-forged"))
    status = httpx.post(url, content=body, headers=headers(signature), timeout=30).status_code
    return {"forged_status": status, "forged_stored": len(stored(engine, [sid(spec["nonce"], index)])["counts"])}


def repost(url: str, spec: dict[str, Any], indices: list[int]) -> Counter[str]:
    """Post these already-acknowledged requests again, byte for byte, as Twilio's retries do."""
    import httpx
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(spec["token"])
    statuses: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client:
        for index in indices:
            body, signature = signed(spec, index, validator)
            statuses[str(client.post(url, content=body, headers=headers(signature)).status_code)] += 1
    return statuses


# ------------------------------------------------------------------------------------------------ speed to lead

def post_at_rate(url: str, spec: dict[str, Any], rate: float) -> list[tuple[float, int]]:
    """Post requests 0..count-1 of `spec`, `rate` a second; (host clock just before the POST, status) each."""
    import httpx
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(spec["token"])
    requests = [signed(spec, i, validator) for i in range(spec["count"])]

    async def run() -> list[tuple[float, int]]:
        async with httpx.AsyncClient(timeout=30) as client:
            origin = clock.perf_counter()

            async def one(index: int) -> tuple[float, int]:
                await asyncio.sleep(max(0.0, origin + index / rate - clock.perf_counter()))
                body, signature = requests[index]
                sent = clock.time()
                response = await client.post(url, content=body, headers=headers(signature))
                return sent, response.status_code

            return list(await asyncio.gather(*(one(i) for i in range(len(requests)))))

    return asyncio.run(run())


def replies(engine: Any, spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per lead (its From number): epoch seconds of its inbound message, stored reply and first Twilio delivery."""
    from sqlalchemy import text

    sids = [sid(spec["nonce"], i) for i in range(spec["count"])]
    by_sid = {s: spec["from"][i % len(spec["from"])] for i, s in enumerate(sids)}
    leads: dict[str, dict[str, Any]] = {number: {} for number in by_sid.values()}
    with engine.connect() as conn:
        for provider_sid, inbound_at, reply_at, decision in conn.execute(text(
                "SELECT m.provider_message_id, extract(epoch FROM m.created_at), extract(epoch FROM r.created_at), "
                "r.metadata->>'decision' FROM messages m LEFT JOIN messages r "
                "ON r.idempotency_key = 'ai-reply:' || m.id::text "
                "WHERE m.direction = 'inbound' AND m.provider_message_id = ANY(:sids)"), {"sids": sids}):
            leads[by_sid[provider_sid]].update(inbound_at=float(inbound_at), decision=decision,
                                               reply_at=float(reply_at) if reply_at is not None else None)
        for to, delivered_at in conn.execute(text(
                "SELECT request->>'to', min(extract(epoch FROM created_at)) FROM sandbox_deliveries "
                "WHERE provider = 'twilio' AND operation = 'messages.create' AND request->>'to' = ANY(:numbers) "
                "GROUP BY 1"), {"numbers": list(leads)}):
            leads[to]["delivered_at"] = float(delivered_at)
    return leads


def wait_for(engine: Any, spec: dict[str, Any], key: str, timeout: float, idle: float) -> dict[str, dict[str, Any]]:
    """Poll until every lead has `key`, nothing new arrived for `idle` s, or `timeout` s passed."""
    deadline, seen, changed = clock.monotonic() + timeout, -1, clock.monotonic()
    while True:
        leads = replies(engine, spec)
        have = sum(1 for lead in leads.values() if lead.get(key) is not None)
        if have != seen:
            seen, changed = have, clock.monotonic()
        if have == len(leads) or clock.monotonic() > deadline or clock.monotonic() - changed > idle:
            return leads
        clock.sleep(0.25)


def speed_to_lead(args: argparse.Namespace, url: str, engine: Any, spec: dict[str, Any], env: dict[str, str],
                  procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """Start a worker, warm it with a few leads (the local model loads), then time `args.replies` new leads, each
    texting once, `args.reply_rate` a second."""
    from bench._db import percentile
    from workers.app import celery_app

    # no Twilio credentials for the worker: its sends go to the sandbox transport, which records them
    worker_env = {k: v for k, v in env.items() if not k.startswith("TWILIO_")}
    cmd = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "agent,outbound,default", "--pool",
           "threads", "-c", str(args.worker_concurrency), "--without-heartbeat", "--without-gossip", "--without-mingle",
           "-l", "WARNING"]
    procs.append(start(cmd, worker_env, STATE / "ingest-worker.log"))
    celery_app.send_task("workers.ping").get(timeout=180)
    warm = {**spec, "nonce": spec["nonce"] + "-warm", "from": spec["from"][:args.reply_warmup],
            "count": args.reply_warmup}
    post_at_rate(url, warm, 1.0)
    warmed = wait_for(engine, warm, "reply_at", timeout=300, idle=300)
    if not any(lead.get("reply_at") for lead in warmed.values()):
        return {"reply_p95_ms": None, "reply_note": "the worker stored no reply to the warm-up leads in 300 s; "
                                                    f"see {STATE / 'ingest-worker.log'}"}
    warmed = wait_for(engine, warm, "delivered_at", timeout=20, idle=20)
    transport = any(lead.get("delivered_at") for lead in warmed.values())

    timed = {**spec, "from": spec["from"][args.reply_warmup:], "count": args.replies}
    sends = post_at_rate(url, timed, args.reply_rate)
    leads = wait_for(engine, timed, "delivered_at" if transport else "reply_at", timeout=180, idle=45)
    if not transport:  # the last chance for a transport that records late
        leads = wait_for(engine, timed, "delivered_at", timeout=5, idle=5)
    samples: dict[str, list[float]] = {"reply": [], "reply_db": [], "reply_stored": [], "reply_stored_db": []}
    decisions: Counter[str] = Counter()
    for index, (sent, _) in enumerate(sends):
        lead = leads[timed["from"][index % len(timed["from"])]]
        decisions[lead.get("decision") or "none"] += 1
        for name, end, begin in (("reply", "delivered_at", None), ("reply_db", "delivered_at", "inbound_at"),
                                 ("reply_stored", "reply_at", None), ("reply_stored_db", "reply_at", "inbound_at")):
            start_at = sent if begin is None else lead.get(begin)
            if lead.get(end) is not None and start_at is not None:
                samples[name].append((lead[end] - start_at) * 1000)
    result: dict[str, Any] = {}
    for name, values in samples.items():
        result[f"{name}_p50_ms"] = percentile(values, 50) if values else None
        result[f"{name}_p95_ms"] = percentile(values, 95) if values else None
    result.update(replies=len(samples["reply"]), replies_stored=len(samples["reply_stored"]), leads=len(sends),
                  lead_statuses=dict(Counter(str(status) for _, status in sends)), reply_decisions=dict(decisions))
    if not samples["reply"]:
        result["reply_note"] = (
            "no outbound send reached the transport: no sandbox_deliveries row (provider twilio, messages.create) "
            "for any lead within 20 s of the warm-up replies being stored or after the timed leads; the reply_stored_* "
            "figures time the agent's stored reply instead (the outbound send path is not there yet)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections of the load generator")
    parser.add_argument("--seconds", type=float, default=30, help="timed window of each load phase")
    parser.add_argument("--warmup", type=float, default=3, help="untimed load before each window (pools, caches)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes, ours and the baseline")
    parser.add_argument("--senders", type=int, default=3000, help="distinct From numbers of the load")
    parser.add_argument("--max-rate", type=int, default=2500,
                        help="requests signed ahead per second of load (ours stops early should it outrun them)")
    parser.add_argument("--retries", type=int, default=200, help="acknowledged requests posted again afterwards")
    parser.add_argument("--replies", type=int, default=100, help="new leads timed to their reply (0: skip)")
    parser.add_argument("--reply-rate", type=float, default=5, help="new leads a second")
    parser.add_argument("--reply-warmup", type=int, default=3, help="leads answered before timing (model load)")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="Celery worker threads")
    parser.add_argument("--loader", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loader:
        loader(args.loader)
        return

    from sqlalchemy import create_engine, pool

    from bench._db import percentile, scratch_database
    from leadpilot.infra import start_embedded_redis, stop_embedded_redis
    from leadpilot.settings import get_settings

    STATE.mkdir(parents=True, exist_ok=True)
    redis_url = start_embedded_redis(STATE / "redis")  # a private Redis: its agent queue holds this run only
    os.environ["REDIS_URL"] = redis_url
    get_settings.cache_clear()
    procs: list[subprocess.Popen[bytes]] = []
    began = clock.monotonic()
    try:
        with scratch_database("lp_bench_ingest") as (owner_url, app_url), tempfile.TemporaryDirectory() as tmp:
            os.environ["DATABASE_URL"] = owner_url
            get_settings.cache_clear()
            engine = create_engine(owner_url, poolclass=pool.NullPool)
            try:
                to_numbers, taken = setup()
                numbers = phone_numbers(args.senders * 2 + args.reply_warmup + args.replies, random.Random(7), taken)
                floor_senders = numbers[-args.senders:]  # floor_full's leads: none of them texts ours
                env = {**os.environ, "DATABASE_URL": owner_url, "REDIS_URL": redis_url, "TWILIO_AUTH_TOKEN": TOKEN,
                       "LEADPILOT_STATE_DIR": str(STATE)}
                nonce = os.urandom(8).hex()
                load_spec = {"token": TOKEN, "to": to_numbers, "from": numbers[:args.senders],
                             "clients": args.clients, "seconds": args.seconds, "warmup": args.warmup}

                port = free_port()
                serve("bench.ingest:bare_app", port, args.workers, env, STATE / "ingest-baseline.log", procs,
                      factory=True)
                base = load({**load_spec, "url": f"http://127.0.0.1:{port}{PATH}", "nonce": nonce + "-base",
                             "count": 10_000, "cyclic": True}, Path(tmp), procs[-1])
                stop(procs.pop())

                with engine.begin() as conn:
                    conn.exec_driver_sql(f"CREATE TABLE {FLOOR_TABLE} (sid text PRIMARY KEY, sender text, "
                                         "receiver text, body text)")
                floors: dict[str, dict[str, Any]] = {}
                for kind in ("single", "batched", "full"):
                    port = free_port()
                    floor_env = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "BENCH_FLOOR_KIND": kind,
                                 "BENCH_FLOOR_DSN": plain_dsn(owner_url), "BENCH_FLOOR_APP_DSN": plain_dsn(app_url)}
                    serve("bench.ingest:floor_app", port, args.workers, floor_env, STATE / f"ingest-floor-{kind}.log",
                          procs, factory=True)
                    floor_spec = {**load_spec, "url": f"http://127.0.0.1:{port}{PATH}", "cyclic": False,
                                  "nonce": f"{nonce}-floor-{kind}",
                                  "count": int(args.max_rate * (args.seconds + args.warmup))}
                    if kind == "full":
                        floor_spec["from"] = floor_senders
                    floors[kind] = load(floor_spec, Path(tmp), procs[-1])
                    stop(procs.pop())
                    sids = [sid(floor_spec["nonce"], i) for i in floors[kind]["ok"]]
                    counted = ("SELECT count(*) FROM messages WHERE provider_message_id = ANY(%(sids)s)"
                               if kind == "full" else f"SELECT count(*) FROM {FLOOR_TABLE} WHERE sid = ANY(%(sids)s)")
                    with engine.connect() as conn:
                        floors[kind]["stored"] = conn.exec_driver_sql(counted, {"sids": sids}).scalar()

                port = free_port()
                env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"  # what Twilio calls, so what it signs
                url = env["PUBLIC_BASE_URL"] + PATH
                serve("api.app:app", port, args.workers, env, STATE / "ingest-ours.log", procs)
                before = stored(engine, [])
                spec = {**load_spec, "url": url, "nonce": nonce, "cyclic": False,
                        "count": int(args.max_rate * (args.seconds + args.warmup))}
                ours = load(spec, Path(tmp), procs[-1])

                acknowledged = [sid(nonce, i) for i in ours["ok"]]
                found = stored(engine, acknowledged)
                waiting = queued(redis_url)
                sample = random.Random(11).sample(ours["ok"], min(args.retries, len(ours["ok"])))
                retried = repost(url, spec, sample)
                after = stored(engine, acknowledged)
                refused = forged(url, spec, engine)
                with engine.connect() as conn:
                    max_connections = conn.exec_driver_sql("SHOW max_connections").scalar()
                lost = sum(1 for s in acknowledged if s not in after["counts"])
                duplicated = sum(1 for count in after["counts"].values() if count > 1)
                drop_queue(redis_url)
                reply = speed_to_lead(args, url, engine, {**spec, "from": numbers[args.senders:],
                                                          "nonce": nonce + "-lead"}, env, procs) \
                    if args.replies else {}
            finally:
                for process in reversed(procs):
                    stop(process)
                procs.clear()
                engine.dispose()
                from models.db import get_app_engine, get_owner_engine

                get_app_engine().dispose()
                get_owner_engine().dispose()
    finally:
        for process in procs:
            stop(process)
        stop_embedded_redis(STATE / "redis")

    ours_per_s = ours["timed_ok"] / ours["elapsed_s"]
    base_per_s = base["timed_ok"] / base["elapsed_s"]
    errors = {k: v for k, v in ours["statuses"].items() if not k.startswith("2")}
    print(json.dumps({
        "bench": "ingest",
        "ours": {"per_s": round(ours_per_s, 1), "p50_ms": percentile(ours["latencies_ms"], 50),
                 "p95_ms": percentile(ours["latencies_ms"], 95), "p99_ms": percentile(ours["latencies_ms"], 99),
                 "ceiling_share": round(ours_per_s / base_per_s, 3), "acknowledged": len(acknowledged),
                 "errors": sum(errors.values()), "lost": lost, "duplicated": duplicated,
                 "missing_outbox": after["missing_outbox"], "queued": waiting,
                 "unqueued": found["events"] - before["events"] - waiting, "retries_posted": len(sample),
                 "retries_acknowledged": sum(v for k, v in retried.items() if k.startswith("2")),
                 "retries_stored_new": after["inbound"] - found["inbound"],
                 "retries_events_new": after["events"] - found["events"], "cpu_ms": ours.get("cpu_ms"), **refused,
                 **reply},
        "baseline": {"per_s": round(base_per_s, 1), "p50_ms": percentile(base["latencies_ms"], 50),
                     "p95_ms": percentile(base["latencies_ms"], 95), "p99_ms": percentile(base["latencies_ms"], 99),
                     "cpu_ms": base.get("cpu_ms")},
        **{{"single": "floor", "batched": "floor_batched", "full": "floor_full"}[kind]: {
            "per_s": round(run["timed_ok"] / run["elapsed_s"], 1), "p50_ms": percentile(run["latencies_ms"], 50),
            "p95_ms": percentile(run["latencies_ms"], 95),
            "ceiling_share": round(run["timed_ok"] / run["elapsed_s"] / base_per_s, 3),
            "acknowledged": len(run["ok"]), "stored": run["stored"],
            "errors": sum(v for k, v in run["statuses"].items() if not k.startswith("2")), "cpu_ms": run.get("cpu_ms")}
            for kind, run in floors.items()},
        "params": {"clients": args.clients, "seconds": args.seconds, "warmup_s": args.warmup,
                   "uvicorn_workers": args.workers, "cores": os.cpu_count(), "senders": args.senders,
                   "channels": len(to_numbers), "ours_statuses": ours["statuses"], "ours_exhausted": ours["exhausted"],
                   "baseline_statuses": base["statuses"], "retries": args.retries, "leads": args.replies,
                   "lead_rate_per_s": args.reply_rate, "worker": f"celery threads x{args.worker_concurrency}",
                   "model": "local policy model", "loader": "aiohttp + uvloop, own process, same machine",
                   "server": "uvicorn (uvloop, httptools)",
                   "db_max_connections": int(max_connections or 0), "baseline": "bare FastAPI POST reading the form",
                   "run_s": round(clock.monotonic() - began, 1)},
    }))


if __name__ == "__main__":
    main()
