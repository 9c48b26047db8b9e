"""The webchat widget (`/widget.js`, its websocket, a demo page) and the staff inbox's realtime socket.

Websocket protocol of the widget (`/widget/ws?key=<public key>[&token=<session token>]`), JSON both ways:
  server -> {"type": "hello", "widget": {...}, "session": bool}   the widget's look and pre-chat form
  client -> {"type": "start", "name"?, "email"?}                  begin a session (pre-chat answers)
  server -> {"type": "session", "token": ..., "transcript": [...]} keep the token; resume with it
  client -> {"type": "message", "body": ..., "client_id": ...}    send (resending the same client_id is harmless)
  server -> {"type": "ack", "client_id": ..., "id": ...}
  client -> {"type": "typing"}
  server -> {"type": "message.created" | "message.updated", "message": {...}} | {"type": "typing", "who": ...}
  server -> {"type": "error", "status": 4xx, "detail": ...}
Events reach every API process through Redis, so a reply written by any worker arrives at whichever
process holds the visitor's socket."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import json
import logging
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import SESSION_COOKIE
from api.guard import strings_in
from channels import realtime, webchat
from leadpilot.infra import ensure_infra
from services.access import authenticate
from services.errors import DomainError, InvalidInput, NotFound, TooLarge, Unauthorized
from services.storable import unstorable

router = APIRouter(tags=["webchat"])
log = logging.getLogger("leadpilot.widget")
STATIC = Path(__file__).resolve().parent.parent / "static"


@router.get("/widget.js", summary="The embeddable chat widget script", include_in_schema=True)
async def widget_js() -> FileResponse:
    """`<script src="https://<api>/widget.js" data-key="<widget public key>" async></script>` on any page."""
    return FileResponse(STATIC / "widget.js", media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})


@router.get("/widget/demo", response_class=HTMLResponse, summary="A page with the widget, to try it")
async def widget_demo(key: str = Query(..., description="The widget's public key")) -> HTMLResponse:
    found = await run_in_threadpool(webchat.widget, key)
    safe_key, business = html.escape(key, quote=True), html.escape(found.business)
    return HTMLResponse(f"""<!doctype html><html><head><meta charset="utf-8"><title>{business}</title></head>
<body style="font-family:system-ui;margin:3rem"><h1>{business}</h1>
<p>This page embeds the LeadPilot chat widget: open it from the button in the corner.</p>
<script src="/widget.js" data-key="{safe_key}" async></script></body></html>""")


async def _subscribe(channels: list[str]) -> Any:
    """A Redis subscription, live before anything is read from the database (so nothing falls in between)."""
    client = aioredis.Redis.from_url(ensure_infra().redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(*channels)
    return pubsub


async def _pump(socket: WebSocket, pubsub: Any, filter_: Any = None) -> None:
    """Forward every event of the subscription to the socket until it closes."""
    try:
        async for item in pubsub.listen():
            if item.get("type") != "message":
                continue
            event = json.loads(item["data"])
            if filter_ is None or filter_(event):
                await socket.send_text(json.dumps(event))
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()


async def _error(socket: WebSocket, exc: DomainError) -> None:
    await socket.send_json({"type": "error", "status": exc.status, "title": exc.title, "detail": exc.detail})


# a message is at most webchat.MAX_BODY characters; its frame, with the client id and JSON escapes, far less
MAX_FRAME_CHARS = 16_000


async def _frame(socket: WebSocket) -> dict[str, Any]:
    """The client's next frame as a JSON object. A frame that is not one (not JSON, not text, too long, holding a
    NUL or a lone surrogate) is a DomainError the caller answers with an error frame, keeping the socket open."""
    message = await socket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    raw = message.get("text")
    if raw is None:
        try:
            raw = (message.get("bytes") or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("Frames are JSON text in UTF-8.") from None
    if len(raw) > MAX_FRAME_CHARS:
        raise TooLarge(f"A frame is at most {MAX_FRAME_CHARS:,} characters.")
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidInput("Frames are JSON objects, such as {\"type\": \"ping\"}.") from None
    if not isinstance(data, dict):
        raise InvalidInput("Frames are JSON objects, such as {\"type\": \"ping\"}.")
    for text in strings_in(data):
        if reason := unstorable(text):
            raise InvalidInput(f"The frame contains {reason}.")
    return data


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"'{name}' is text.", field=name)
    return value


@router.websocket("/widget/ws")
async def widget_socket(socket: WebSocket, key: str, token: str | None = None) -> None:
    """One visitor's chat (see the module docstring for the protocol)."""
    await socket.accept()
    relay: asyncio.Task[None] | None = None
    try:
        try:
            found = await run_in_threadpool(webchat.widget, key)
            visitor = await run_in_threadpool(webchat.resume, key, token) if token else None
        except DomainError as exc:
            if token and not isinstance(exc, NotFound):  # a stale or foreign token: start over
                found, visitor = await run_in_threadpool(webchat.widget, key), None
            else:
                await _error(socket, exc)
                await socket.close(code=4404 if isinstance(exc, NotFound) else 4403)
                return
        await socket.send_json({"type": "hello", "widget": found.public(), "session": visitor is not None})

        def own(event: dict[str, Any]) -> bool:  # the lead's own typing is not echoed back to them
            return not (event.get("type") == "typing" and event.get("who") == "contact")

        async def begin(current: webchat.Visitor) -> asyncio.Task[None]:
            pubsub = await _subscribe([realtime.conversation_channel(current.conversation_id)])
            task = asyncio.create_task(_pump(socket, pubsub, own))
            transcript = await run_in_threadpool(webchat.transcript, current)
            await socket.send_json({"type": "transcript", "messages": transcript})
            return task

        if visitor is not None:
            relay = await begin(visitor)
        while True:
            try:
                data = await _frame(socket)
                kind = data.get("type")
                if kind == "start" and visitor is None:
                    new_token, visitor = await run_in_threadpool(
                        functools.partial(webchat.start, key, name=_text(data, "name"), email=_text(data, "email")))
                    await socket.send_json({"type": "session", "token": new_token})
                    relay = await begin(visitor)
                elif kind == "message" and visitor is not None:
                    ack = await run_in_threadpool(webchat.say, visitor, str(data.get("body") or ""),
                                                  str(data.get("client_id") or uuid.uuid4().hex))
                    await socket.send_json({"type": "ack", **ack})
                elif kind == "typing" and visitor is not None:
                    await run_in_threadpool(realtime.typing, visitor.widget.sub_account_id,
                                            visitor.conversation_id, "contact", bool(data.get("on", True)))
                elif kind == "page_view" and visitor is not None:
                    await run_in_threadpool(webchat.page_view, visitor, str(data.get("url") or "")[:2000],
                                            str(data.get("referrer") or "")[:2000] or None)
                elif kind == "ping":
                    await socket.send_json({"type": "pong"})
            except DomainError as exc:
                await _error(socket, exc)
    except WebSocketDisconnect:
        pass
    finally:
        if relay is not None:
            relay.cancel()


@router.websocket("/v1/ws/inbox")
async def inbox_socket(socket: WebSocket, sub_account_id: uuid.UUID, access_token: str | None = None) -> None:
    """A staff inbox's live feed of one sub-account: every new message, status change and typing signal.
    Authenticated with an API key (`Authorization: Bearer` or `?access_token=`) or the app's session cookie,
    needing
    `conversations.read` in that sub-account."""
    header = socket.headers.get("authorization", "")
    secret = access_token or (header[7:] if header.lower().startswith("bearer ") else "")
    try:
        if not secret and (cookie := socket.cookies.get(SESSION_COOKIE)):
            # the app's session cookie: only from our own pages (no cross-site websocket hijacking)
            origin = socket.headers.get("origin")
            if origin and urlsplit(origin).netloc != socket.headers.get("host", ""):
                raise Unauthorized("This socket only opens from the LeadPilot app.")
            secret = cookie
        who = await run_in_threadpool(authenticate, secret)
        if "conversations.read" not in who.permissions_in(sub_account_id):
            raise NotFound("No such sub-account.")
    except DomainError as exc:
        await socket.close(code=4401 if exc.status == 401 else 4404, reason=exc.detail[:120] if exc.detail else None)
        return
    await socket.accept()
    relay = asyncio.create_task(_pump(socket, await _subscribe([realtime.sub_channel(sub_account_id)])))
    try:
        while True:
            try:
                data = await _frame(socket)
            except DomainError as exc:
                await _error(socket, exc)
                continue
            if data.get("type") == "ping":
                await socket.send_json({"type": "pong"})
    except WebSocketDisconnect:
        pass
    finally:
        relay.cancel()
