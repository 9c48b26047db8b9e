"""The FastAPI application: routers, problem-details errors, request logging."""

from __future__ import annotations

import gc
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import health
from api.guard import InputGuard
from api.problems import install_problem_handlers
from api.routers import (
    admin,
    agents,
    analyst,
    auth,
    calendars,
    campaigns,
    crm,
    inbox,
    integrations,
    knowledge,
    pages,
    payments,
    pipelines,
    reporting,
    sites,
    webhooks,
    webhooks_out,
    widget,
    workflows,
)
from leadpilot.logs import configure_logging
from leadpilot.settings import get_settings

log = logging.getLogger("leadpilot.api")

DESCRIPTION = """LeadPilot: an AI-agent-centric agency CRM.

Every error is an RFC 9457 problem-details body (`application/problem+json`) with `type`, `title`,
`status`, `detail` and, where useful, `errors` (validation) or `constraint` (conflicts).

**Authentication**: `Authorization: Bearer lp_<prefix>_<secret>`, an API key created with
`leadpilot api-key create --email <user>` (the token is shown once). A key acts as its user: agency members
reach every sub-account of the agency with their agency role, client users only the sub-accounts they belong
to, with that membership's role; a key can also be pinned to one sub-account. Routes under
`/v1/sub-accounts/{sub_account_id}` run inside that sub-account only (row-level security in the database).
A missing or bad key is 401; a sub-account out of reach is 404; a missing permission is 403 with the
`permission` it needed."""


class AccessLog:
    """One JSON log line per request with its request id (echoed as `x-request-id`). A plain ASGI middleware:
    Starlette's `@app.middleware("http")` wraps every response in extra tasks and streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = next((v.decode() for k, v in scope["headers"] if k == b"x-request-id"), None) or uuid.uuid4().hex
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info("request", extra={"request_id": request_id, "method": scope["method"], "path": scope["path"],
                                           "status": status, "ms": round((time.perf_counter() - started) * 1000, 1)})


_settled: list[int] = []


def settle_heap() -> None:
    """Once per process: load what the hot paths import on first use, then move everything alive now out of
    the garbage collector's sight (`gc.freeze`). A server's modules, routes and models are a quarter of a million
    objects that live as long as it does, and each full collection walked them all again: under the ingest
    load, a 0.2-0.3 s pause a few times a run in each API process, and more than half its collector's CPU."""
    if os.getpid() in _settled:
        return
    import channels.sms  # noqa: F401 - the webhook's own imports, and through them the worker tasks'
    import workers.tasks  # noqa: F401

    gc.collect()
    gc.freeze()
    _settled.append(os.getpid())


def _telemetry() -> TelemetryConfig | None:
    """FastAPI's OpenTelemetry spans, metrics and logs where OpenTelemetry is set up (OTEL_* settings, as
    `opentelemetry-instrument` and the OTLP exporters read them); elsewhere off, so no request pays for looking
    up the global providers only to find none."""
    if any(name.startswith("OTEL_") for name in os.environ) or os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE"):
        return None
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app() -> FastAPI:
    """Build the API application."""
    settings = get_settings()
    configure_logging(settings.log_level)
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # blocking handlers run in a thread pool; as many threads as pooled connections, so none waits on a
        # connection it cannot get and none is opened and closed again per request
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        settle_heap()
        yield

    app = FastAPI(title="LeadPilot API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  telemetry=_telemetry())
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(widget.router)
    app.include_router(pages.router)
    app.include_router(campaigns.tracking)
    app.include_router(sites.public)
    app.include_router(agents.catalogue)
    for module in (auth, admin, inbox, webhooks_out, campaigns, workflows, crm, calendars, pipelines, payments,
                   reporting, knowledge, agents, analyst, sites, integrations):
        app.include_router(module.router)

    app.add_middleware(InputGuard)  # inside the access log, so refused requests are logged too
    app.add_middleware(AccessLog)
    return app


app = create_app()
