"""The widget in a real browser (Debian chromium through Playwright): a customer's page embeds
`<script src=".../widget.js" data-key=...>`, the visitor chats, the agent's reply arrives from a real worker,
and after a reload the transcript (and the reply) are still there."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from models.conversations import Channel
from models.db import owner_session
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import Demo

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def customer_site(api_url: str, demo: Demo) -> Iterator[str]:
    """A business's own website on another origin, embedding the widget as its owner would."""
    with owner_session() as session:
        key = session.scalars(select(Channel.address).where(Channel.sub_account_id == demo.a,
                                                             Channel.channel_type == "webchat")).one()
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>Restaurant A</title></head><body>'
            f'<h1>Welcome to Restaurant A</h1><script src="{api_url}/widget.js" data-key="{key}" async></script>'
            f'</body></html>').encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()


def test_a_visitor_chats_reloads_and_sees_the_transcript_and_the_reply(customer_site: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(customer_site)
            page.locator("button.launcher").click()
            expect(page.locator(".head .biz")).to_have_text("Restaurant Location A")
            page.evaluate("""() => {  // notice the reply streaming in, before the stored message replaces it
                const root = document.querySelector('#leadpilot-widget').shadowRoot;
                new MutationObserver(() => { if (root.querySelector('[data-streaming]')) window.sawStream = true; })
                    .observe(root, {childList: true, subtree: true});
            }""")
            page.locator("textarea").fill("what time do you open on sundays?")
            page.locator("textarea").press("Enter")
            mine = page.locator(".msg[data-direction=inbound]")
            expect(mine).to_have_text(["what time do you open on sundays?"])
            reply = page.locator(".msg[data-direction=outbound]")
            expect(reply).to_contain_text(["Sunday 10:00-21:00"], timeout=30_000)  # from the agent, via a worker
            assert page.evaluate("Object.keys(localStorage).some(k => k.endsWith(':token'))")
            assert page.evaluate("window.sawStream === true")

            page.reload()
            expect(page.locator(".panel")).to_have_class("panel open")  # still open after the reload
            expect(page.locator(".msg[data-direction=inbound]")).to_have_text(["what time do you open on sundays?"])
            expect(page.locator(".msg[data-direction=outbound]")).to_contain_text(["Sunday 10:00-21:00"])
            assert page.locator(".msg").count() == 2  # the same conversation, nothing doubled
        finally:
            browser.close()
