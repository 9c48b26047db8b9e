"""The staff app's pages, served by the API itself: sign-in and the live inbox. Plain HTML shells whose small
scripts (api/static/app.js) call the REST API with the session cookie and listen on the inbox socket; no
CDN, no build step."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from api.deps import SESSION_COOKIE
from api.routers.widget import STATIC

router = APIRouter(include_in_schema=False)

SHELL = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · LeadPilot</title>
<link rel="stylesheet" href="/static/app.css"></head><body data-page="{page}">{body}
<script src="/static/app.js"></script></body></html>"""

SIGN_IN = """<main class="signin"><h1>LeadPilot</h1><form id="signin">
<label>Email <input name="email" type="email" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<p class="error" role="alert"></p><button type="submit">Sign in</button></form></main>"""

INBOX = """<header class="top"><strong>LeadPilot</strong>
<select id="sub" aria-label="Sub-account"></select><span id="me"></span>
<span id="live" class="live off" title="live updates">live</span>
<button id="signout" class="link">Sign out</button></header>
<div class="inbox"><nav class="views">
<button data-view="needs_human" class="on">Needs human <b id="count-needs_human"></b></button>
<button data-view="mine">Mine</button><button data-view="unassigned">Unassigned</button>
<button data-view="all">All</button><button data-view="resolved">Resolved</button>
<label class="filter">Channel <select id="f-channel"><option value="">any</option><option>sms</option>
<option>email</option><option>webchat</option></select></label>
<label class="filter">Tag <input id="f-tag" placeholder="any"></label>
<label class="filter">Assignee <select id="f-assignee"><option value="">anyone</option></select></label>
<hr><button data-tool="contacts" data-perm="contacts.read">Contacts</button>
<button data-tool="calendar" data-perm="calendars.read">Calendar</button>
<button data-tool="pipeline" data-perm="pipelines.read">Pipeline</button>
<button data-tool="metrics" data-perm="reports.read">Handoff metrics</button>
<button data-tool="analyst" data-perm="reports.read">Ask the analyst</button>
<button data-tool="integrations" data-perm="reports.read">Integrations</button>
<input id="search" type="search" placeholder="Search"></nav>
<ul id="list" class="list" aria-label="Conversations"></ul>
<section id="pane" class="pane"><p class="empty">Pick a conversation.</p></section></div>"""


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/app/inbox")


@router.get("/app/sign-in", response_class=HTMLResponse)
def sign_in_page() -> HTMLResponse:
    return HTMLResponse(SHELL.format(title="Sign in", page="signin", body=SIGN_IN))


@router.get("/app/inbox", response_class=HTMLResponse)
def inbox_page(request: Request) -> Response:
    if not request.cookies.get(SESSION_COOKIE):
        return RedirectResponse("/app/sign-in")
    return HTMLResponse(SHELL.format(title="Inbox", page="inbox", body=INBOX))


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in ("app.js", "app.css"):
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type="application/javascript" if name.endswith(".js") else "text/css",
                        headers={"Cache-Control": "no-cache"})
