"""The FastAPI application: routers, problem-details errors, request logging."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from api import health
from api.problems import install_problem_handlers
from api.routers import analyst, calendars, crm, knowledge, payments, pipelines, reporting, webhooks, widget
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


def create_app() -> FastAPI:
    """Build the API application."""
    settings = get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(title="LeadPilot API", version="0.1.0", description=DESCRIPTION)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(widget.router)
    for module in (crm, calendars, pipelines, payments, reporting, knowledge, analyst):
        app.include_router(module.router)

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
