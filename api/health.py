"""Liveness and readiness: /healthz says the process runs, /readyz that Postgres and Redis answer."""

from __future__ import annotations

import time
from typing import Any

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.problems import problem
from leadpilot.infra import ensure_infra
from models.db import get_app_engine

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _check_database() -> dict[str, Any]:
    started = time.perf_counter()
    with get_app_engine().connect() as conn:
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    return {"ok": version is not None, "pgvector": version, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_redis() -> dict[str, Any]:
    started = time.perf_counter()
    client = redis.Redis.from_url(ensure_infra().redis_url, socket_timeout=2)
    try:
        ok = bool(client.ping())
    finally:
        client.close()
    return {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 1)}


@router.get("/readyz", summary="Readiness: database (with pgvector) and Redis reachable")
def readyz() -> JSONResponse:
    """Ready when the database answers as the application role with pgvector installed, and Redis pings."""
    checks: dict[str, Any] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            checks[name] = check()
        except Exception as exc:  # a dependency being down is the answer, not an error
            checks[name] = {"ok": False, "error": type(exc).__name__}
    if all(c["ok"] for c in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    return problem(503, "A dependency is not ready.", title="Not ready", checks=checks)
