"""One gate in front of every route for input no handler should ever see: a NUL byte, a lone UTF-16 surrogate or
bytes that are not UTF-8 in the path, the query string, a header or a JSON / form body (Postgres text cannot
hold a NUL, and a surrogate cannot even be encoded to send it there) is a 422; a body past the route's size
limit is a 413, counted as it streams in, whatever Content-Length claims. Both answers are problem details.

Provider webhooks are acknowledged whatever their text holds (the channels strip what cannot be stored), so
/webhooks/ is spared the content checks, never the size limits."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem
from services.storable import unstorable

MiB = 1024 * 1024
DEFAULT_LIMIT = 1 * MiB
MULTIPART_FRAMING = 64 * 1024


@dataclass(frozen=True)
class Limit:
    """The body a route takes: at most `size` bytes; `buffered` ones are read whole and their text checked."""

    pattern: re.Pattern[str]
    size: int
    buffered: bool = True


# routes that legitimately take big bodies: their own code reads them as streams (and caps them again)
LIMITS = (
    Limit(re.compile(r"^/v1/sub-accounts/[^/]+/knowledge-bases/[^/]+/sources$"), 20 * MiB + MULTIPART_FRAMING,
          buffered=False),  # knowledge/sources.py MAX_SOURCE_BYTES, a file in multipart framing
    Limit(re.compile(r"^/v1/sub-accounts/[^/]+/knowledge-bases/[^/]+/sources/text$"), 20 * MiB),
    Limit(re.compile(r"^/v1/sub-accounts/[^/]+/integrations/[^/]+/import-csv$"), 10 * MiB + MULTIPART_FRAMING,
          buffered=False),  # services/integrations/csv_import.py MAX_BYTES
    Limit(re.compile(r"^/webhooks/email/"), 42 * MiB, buffered=False),  # channels/email.py MAX_RAW_BYTES + framing
)
WEBHOOKS = "/webhooks/"


def limit_for(path: str) -> Limit:
    """The size limit of the route at `path` (1 MiB, checked text, unless it is one of LIMITS)."""
    for limit in LIMITS:
        if limit.pattern.match(path):
            return limit
    return Limit(re.compile(""), DEFAULT_LIMIT)


class Rejected(Exception):
    """A request the guard answers itself."""

    def __init__(self, status: int, detail: str, where: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.where = status, detail, where


def _percent_text(raw: bytes, where: str, *, plus: bool = False) -> None:
    """URL-encoded text (a path, a query string, a form body) must decode to storable UTF-8."""
    data = unquote_to_bytes(raw.replace(b"+", b" ") if plus else raw)
    if b"\x00" in data:
        raise Rejected(422, f"The {where} contains a NUL character.", where)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(422, f"The {where} is not valid UTF-8.", where) from None


def strings_in(value: Any) -> Iterator[str]:
    """Every string of decoded JSON, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def _json_text(body: bytes) -> None:
    """A JSON body must be UTF-8 whose strings (and keys) hold no NUL and no lone surrogate (`\\u0000`,
    `\\ud800`). One that is not JSON at all is left for the route's own validation to refuse."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(422, "The JSON body is not valid UTF-8.", "body") from None
    try:
        data = json.loads(text)
    except ValueError:
        return
    for value in strings_in(data):
        if reason := unstorable(value):
            raise Rejected(422, f"A string in the JSON body contains {reason}.", "body")


def check_head(scope: Scope) -> None:
    """The path, the query string and the header values."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    _percent_text(raw_path.split(b"?", 1)[0], "path")
    if reason := unstorable(scope["path"]):
        raise Rejected(422, f"The path contains {reason}.", "path")
    _percent_text(scope.get("query_string", b""), "query string", plus=True)
    for name, value in scope.get("headers", []):
        if b"\x00" in value:
            raise Rejected(422, f"The {name.decode('latin-1')} header contains a NUL character.", "header")


def check_body(content_type: str, body: bytes) -> None:
    """The text of a JSON or URL-encoded form body (multipart and other bodies are the routes' own)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        _json_text(body)
    elif media == "application/x-www-form-urlencoded":
        _percent_text(body, "form body", plus=True)


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


class InputGuard:
    """Plain ASGI middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        webhook = path.startswith(WEBHOOKS)
        limit = limit_for(path)
        try:
            if not webhook:
                check_head(scope)
            declared = _header(scope, b"content-length")
            if declared.isdigit() and int(declared) > limit.size:
                raise Rejected(413, _too_large(limit.size))
            if limit.buffered:
                body = await _read(receive, limit.size)
                if not webhook:
                    check_body(_header(scope, b"content-type"), body)
        except Rejected as exc:
            await _answer(exc, scope, receive, send)
            return
        if not limit.buffered:
            await self.app(scope, _counting(receive, limit.size), send)
            return
        await self.app(scope, _replay(body, receive), send)


def _too_large(size: int) -> str:
    return f"The request body is larger than this route takes ({size:,} bytes)."


async def _read(receive: Receive, size: int) -> bytes:
    chunks, total = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: nothing for the app to do
            raise Rejected(400, "The client disconnected before sending the body.")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > size:
            raise Rejected(413, _too_large(size))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _counting(receive: Receive, size: int) -> Receive:
    total = 0

    async def counted() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > size:  # an HTTPException passes FastAPI's body parsing and reaches the problem handler
                raise HTTPException(413, _too_large(size))
        return message

    return counted


async def _answer(exc: Rejected, scope: Scope, receive: Receive, send: Send) -> None:
    extra: dict[str, Any] = {}
    if exc.status == 422:
        extra["errors"] = [{"loc": [exc.where or "request"], "msg": exc.detail, "type": "unstorable_text"}]
    title = "Invalid request" if exc.status == 422 else None
    instance = scope["path"] if not unstorable(scope["path"]) else None
    response = problem(exc.status, exc.detail, title=title, instance=instance, **extra)
    await response(scope, receive, send)
