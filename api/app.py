"""The FastAPI application: routers, problem-details errors, request logging."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from api import health
from api.problems import install_problem_handlers
from api.routers import webhooks
from leadpilot.logs import configure_logging
from leadpilot.settings import get_settings

log = logging.getLogger("leadpilot.api")

DESCRIPTION = """LeadPilot: an AI-agent-centric agency CRM.

Every error is an RFC 9457 problem-details body (`application/problem+json`) with `type`, `title`,
`status`, `detail` and, where useful, `errors` (validation) or `constraint` (conflicts)."""


def create_app() -> FastAPI:
    """Build the API application."""
    settings = get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(title="LeadPilot API", version="0.1.0", description=DESCRIPTION)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(webhooks.router)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        log.info("request", extra={
            "request_id": request_id, "method": request.method, "path": request.url.path,
            "status": response.status_code, "ms": round((time.perf_counter() - started) * 1000, 1),
        })
        return response

    return app


app = create_app()
