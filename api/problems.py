"""RFC 9457 problem-details responses for every error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from models import metadata
from services.errors import DomainError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5


def problem(status: int, detail: str | None = None, *, title: str | None = None, type_: str = "about:blank",
            instance: str | None = None, **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body: dict[str, Any] = {"type": type_, "title": title or HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _reference_columns() -> dict[str, str]:
    """Foreign-key name -> the referencing column a caller wrote (the last of a composite tenant key)."""
    return {str(fk.name): fk.column_keys[-1] for table in metadata.tables.values()
            for fk in table.foreign_key_constraints if fk.name}


REFERENCE_COLUMNS = _reference_columns()


def dangling_reference(exc: IntegrityError) -> str | None:
    """The column of a write that referenced nothing the caller's tenant holds (a foreign-key violation by an
    insert or update, not a delete of something still referenced), or None."""
    diag = getattr(exc.orig, "diag", None)
    if getattr(exc.orig, "sqlstate", None) != "23503" or diag is None:
        return None
    if not (diag.message_primary or "").startswith("insert or update"):
        return None
    return diag.column_name or REFERENCE_COLUMNS.get(diag.constraint_name or "", diag.constraint_name)


def install_problem_handlers(app: FastAPI) -> None:
    """Map HTTP, validation, domain and integrity errors to problem details in one place."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail) if exc.detail else None, instance=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        return problem(422, "The request does not match the schema.", title="Invalid request",
                       instance=request.url.path, errors=errors)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        response = problem(exc.status, exc.detail, title=exc.title, instance=request.url.path, **exc.extra)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="leadpilot"'
        if exc.status == 429 and "retry_after" in exc.extra:
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        diag = getattr(exc.orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None)
        field = dangling_reference(exc)
        if field is not None:
            # another tenant's id and a random one get this same answer: neither exists for the caller
            return problem(422, f"'{field}' does not refer to anything in this sub-account.", title="Invalid request",
                           instance=request.url.path,
                           errors=[{"loc": ["body", field], "msg": "No such object.", "type": "reference"}])
        return problem(409, "The change conflicts with existing data.", title="Conflict",
                       instance=request.url.path, constraint=constraint)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # the database is down, restarting or out of connections: nothing was written, and asking again in a
        # moment is right (Twilio, Stripe and our own clients retry on a 503)
        log.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
        response = problem(503, "The database is briefly unavailable; try again shortly.",
                           title="Service Unavailable", instance=request.url.path)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem(500, "An unexpected error occurred.", instance=request.url.path)
