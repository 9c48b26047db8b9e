"""A local server speaking the Meta Marketing API's insights protocol, for the tests: the ad account's insights
edge with cursor paging (`paging.cursors` and a full `paging.next` URL carrying the token, as Graph sends it),
Graph error bodies (`{"error": {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}}`),
and scripted answers (throttling, an expired token) served before the real pages."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

VERSION = "v21.0"


def graph_error(code: int, message: str, *, subcode: int | None = None, transient: bool = False) -> dict[str, Any]:
    """A Graph API error body."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "is_transient": transient,
                             "fbtrace_id": "AbCdEfGh123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


THROTTLED = graph_error(17, "(#17) User request limit reached", subcode=2446079, transient=True)
EXPIRED = graph_error(190, "Error validating access token: Session has expired on Tuesday, 24-Nov-26 09:00:00 PST.",
                      subcode=463)


class MetaGraph(ThreadingHTTPServer):
    """`rows` are served `page_size` at a time to requests bearing `token` for ad account `account`."""

    def __init__(self, *, account: str, token: str, page_size: int = 2) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.account, self.token, self.page_size = account, token, page_size
        self.rows: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, Any], dict[str, str]]] = []  # answered first, in order
        self.requests: list[dict[str, str]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def path(self) -> str:
        return f"/{VERSION}/act_{self.account}/insights"


def _cursor(index: int) -> str:
    return base64.b64encode(str(index).encode()).decode().replace("=", "Z")


def _index(cursor: str) -> int:
    return int(base64.b64decode(cursor.replace("Z", "=")).decode())


class _Handler(BaseHTTPRequestHandler):
    server: MetaGraph

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        server = self.server
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        server.requests.append({"path": url.path, **query})
        if url.path != server.path:
            self._send(400, graph_error(100, "Unsupported get request. Object does not exist"))
            return
        if server.script:
            self._send(*server.script.pop(0))
            return
        if query.get("access_token") != server.token:
            self._send(400, graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
            return
        start = _index(query["after"]) + 1 if "after" in query else 0
        page = server.rows[start:start + server.page_size]
        body: dict[str, Any] = {"data": page}
        if page:
            body["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(start + len(page) - 1)}}
            if start + len(page) < len(server.rows):
                following = {k: v for k, v in query.items() if k != "after"}
                following["after"] = _cursor(start + len(page) - 1)
                body["paging"]["next"] = f"{server.base}{url.path}?{urlencode(following)}"
        self._send(200, body, {"x-business-use-case-usage": json.dumps({server.account: [
            {"type": "ads_insights", "call_count": 3, "total_cputime": 1, "total_time": 2,
             "estimated_time_to_regain_access": 0}]})})
