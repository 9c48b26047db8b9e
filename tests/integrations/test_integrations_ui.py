"""The Integrations tool of the staff app in Debian chromium, against the real API (uvicorn) and a real worker
pulling from the local Meta server: each connection shows its status badge, last sync and last error; "Retry
sync" queues a sync the worker runs, and the row turns Up to date."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from models.activity import Integration
from models.db import TenantScope, owner_session, tenant_session
from models.performance import FinancialRecord
from services.integrations import connections
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, running_app
from tests.conftest import Demo
from tests.integrations.meta_graph import VERSION, MetaGraph

pytestmark = [pytest.mark.browser, pytest.mark.integration]
TOKEN = "EAAGui" + uuid.uuid4().hex
NAME = "Test Meta UI"


@pytest.fixture(scope="module")
def graph() -> Iterator[MetaGraph]:
    server = MetaGraph(account=str(10**12 + uuid.uuid4().int % 10**12), token=TOKEN)
    day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    server.rows = [{"campaign_id": "120200000000001", "campaign_name": "Brunch - Lead Ads", "spend": "41.25",
                    "account_currency": "USD", "date_start": day, "date_stop": day}]
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def api_url(graph: MetaGraph) -> Iterator[str]:
    """The API and a worker of the default queue (where syncs run), both talking to the local Meta server."""
    with running_app("integrations", "default", 1, META_GRAPH_BASE=graph.base) as url:
        yield url


@pytest.fixture
def integrations(demo: Demo, graph: MetaGraph) -> Iterator[dict[str, uuid.UUID]]:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with tenant_session(scope) as session:
        fresh = connections.create_integration(session=session, sub_account_id=demo.a, provider="meta",
                                               name=f"{NAME} fresh", connection_id=graph.account,
                                               api_version=VERSION, access_token=TOKEN)
        broken = connections.create_integration(session=session, sub_account_id=demo.a, provider="meta",
                                                name=f"{NAME} broken", connection_id="999" + graph.account,
                                                access_token="old-token")
        broken.authentication_status, broken.data_sync_status = "expired", "failed"
        broken.last_error = "Meta rejected the access token; reconnect the integration with a new one."
        ids = {"fresh": fresh.id, "broken": broken.id}
    yield ids
    with owner_session() as session:
        session.execute(delete(FinancialRecord).where(FinancialRecord.integration_source_id.in_(ids.values())))
        session.execute(delete(Integration).where(Integration.id.in_(ids.values())))


def test_the_integrations_tool_shows_statuses_and_retries_a_sync(api_url: str, integrations: dict[str, uuid.UUID],
                                                                 graph: MetaGraph) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(f"{api_url}/app/sign-in")
            page.fill("input[name=email]", "john@restaurant.com")
            page.fill("input[name=password]", "demo1234")
            page.click("button[type=submit]")
            page.wait_for_url("**/app/inbox")
            page.wait_for_selector("#live.on")  # the app has loaded the sub-account
            page.click("button[data-tool=integrations]")
            fresh = page.locator(f"tr[data-id='{integrations['fresh']}']")
            broken = page.locator(f"tr[data-id='{integrations['broken']}']")
            expect(fresh.locator(".sync-badge")).to_have_text("Never synced")
            expect(fresh.locator(".last-sync")).to_have_text("never")
            expect(broken.locator(".sync-badge")).to_have_text("Failed")
            expect(broken.locator(".last-error")).to_contain_text("reconnect the integration")
            expect(broken.locator("button.retry-sync")).to_be_disabled()  # an expired token: reconnect first
            fresh.locator("button.retry-sync").click()
            expect(page.locator(".tool.integrations .sync-note")).to_contain_text("queued")
            expect(fresh.locator(".sync-badge")).to_have_text("Up to date", timeout=60_000)
            expect(fresh.locator(".last-sync")).not_to_have_text("never")
            expect(fresh.locator(".last-error")).to_have_text("-")
        finally:
            browser.close()
    with owner_session() as session:
        amounts = list(session.scalars(select(FinancialRecord.amount).where(
            FinancialRecord.integration_source_id == integrations["fresh"])))
    assert [str(a) for a in amounts] == ["41.25"] and graph.requests[0]["access_token"] == TOKEN
