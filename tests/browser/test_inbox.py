"""The live inbox in Debian chromium (Playwright): two staff sign in; a lead texts asking for a person and the
handoff appears on both screens without a reload; one claims it and the other sees the claim at once and
cannot claim too; the reply reaches the sandbox SMS outbox; returned to the AI, the next text gets the AI's
answer on screen."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from models.crm import Contact
from models.db import owner_session
from models.sandbox import SandboxDelivery
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TWILIO_TOKEN

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _text(api_url: str, sender: str, body: str) -> None:
    """The lead texts the business, signed exactly as Twilio signs."""
    url = f"{api_url}/webhooks/twilio/sms"
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "+17185550142", "Body": body, "NumMedia": "0"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    assert httpx.post(url, data=form, headers={"X-Twilio-Signature": signature}).status_code == 200


def _sign_in(browser: Any, api_url: str, email: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{api_url}/app/inbox")  # not signed in: sent to the sign-in page
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "demo1234")
    page.click("button[type=submit]")
    page.wait_for_url("**/app/inbox")
    page.wait_for_selector("#live.on")  # the inbox socket is open
    return page


def test_a_handoff_is_claimed_answered_and_returned_to_the_ai_live(api_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    sender = f"+1415555{uuid.uuid4().int % 9000 + 1000}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            jane = _sign_in(browser, api_url, "jane@restaurant.com")
            john = _sign_in(browser, api_url, "john@restaurant.com")
            _text(api_url, sender, "can I talk to a real person please")
            for page in (jane, john):  # appears without a reload, in the needs-human view
                item = page.locator(".conv", has_text=sender)
                expect(item).to_be_visible(timeout=30_000)
                expect(item.locator(".handoff")).to_contain_text("human requested")
                item.click()
                expect(page.locator(".handoff-box button.claim")).to_be_visible()

            jane.locator(".handoff-box button.claim").click()
            expect(jane.locator(".claimed-by")).to_have_text("Claimed by you")
            expect(john.locator(".claimed-by")).to_contain_text("Jane", timeout=5_000)  # live, no reload
            expect(john.locator(".handoff-box button.claim")).to_have_count(0)
            conversation = john.locator("#pane").get_attribute("data-id")
            status = john.evaluate("""async (url) => (await fetch(url, {method: 'POST'})).status""",
                                   f"/v1/sub-accounts/{_sub_a()}/inbox/conversations/{conversation}/claim")
            assert status == 409  # and the server refuses a second claim outright

            tag = f"vip {uuid.uuid4().hex[:6]}"  # its own tag: other tests commit "VIP" tags and tag workflows in A
            jane.fill(".card input.add-tag", tag)  # tag the lead from the contact card
            jane.press(".card input.add-tag", "Enter")
            expect(jane.locator(".card .tag", has_text=tag)).to_be_visible(timeout=15_000)
            jane.click("button.book")  # book for the lead from the contact card: the next free times
            jane.locator(".slots button.slot").first.click()
            expect(jane.locator(".card", has_text="Booked:")).to_be_visible(timeout=10_000)

            jane.fill("textarea.reply-text", "Hi, this is Jane from the restaurant. How can I help?")
            jane.click("button.send-reply")
            reply = jane.locator(".msg.user", has_text="this is Jane")
            expect(reply).to_be_visible()
            expect(reply).to_have_attribute("data-status", "sent", timeout=20_000)  # the worker sent it
            assert _delivered(sender, "this is Jane")

            jane.click("button.return-ai")
            expect(jane.locator(".status")).to_contain_text("AI autopilot", timeout=20_000)
            _text(api_url, sender, "what time do you open on sundays?")
            expect(jane.locator(".msg.bot", has_text="Sunday 10:00-21:00")).to_be_visible(timeout=30_000)
        finally:
            browser.close()


def _sub_a() -> str:
    from models.tenancy import SubAccount

    with owner_session() as session:
        return str(session.scalars(select(SubAccount.id).where(SubAccount.slug == "restaurant-a")).one())


def _delivered(phone: str, text: str) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with owner_session() as session:
            found = session.scalars(select(SandboxDelivery).where(
                SandboxDelivery.provider == "twilio", SandboxDelivery.request["to"].astext == phone)).all()
            assert session.scalars(select(Contact).where(Contact.phone == phone)).one()
        if any(text in d.request["body"] for d in found):
            return True
        time.sleep(0.2)
    return False


def test_contacts_calendar_pipeline_and_the_analyst_in_the_app(api_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _sign_in(browser, api_url, "john@restaurant.com")
            page.click("button[data-tool=contacts]")
            expect(page.locator(".contacts .status")).to_contain_text("contacts")
            page.fill(".contact-search", "a")
            page.locator(".contacts tr.clickable").first.click()
            expect(page.locator(".contact-card h3")).to_be_visible()
            page.click("button[data-tool=calendar]")
            expect(page.locator(".week .day")).to_have_count(7)
            page.click("button[data-tool=pipeline]")
            expect(page.locator(".board .stage").first).to_be_visible()
            page.click("button[data-tool=analyst]")
            page.fill("input[name=question]", "what was our show rate last month vs the month before?")
            page.click(".ask button")
            expect(page.locator(".answer .answer-text")).to_contain_text("Show rate", timeout=30_000)
            expect(page.locator(".answer table.figures")).to_be_visible()
            expect(page.locator(".answer img.chart")).to_be_visible()
        finally:
            browser.close()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:  # Client Staff: no reports, no pipelines; the app does not offer them
            page = _sign_in(browser, api_url, "jane@restaurant.com")
            expect(page.locator("button[data-tool=contacts]")).to_be_visible()
            expect(page.locator("button[data-tool=analyst]")).to_be_hidden()
            expect(page.locator("button[data-tool=pipeline]")).to_be_hidden()
        finally:
            browser.close()
