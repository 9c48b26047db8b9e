"""A funnel page in a real browser (Debian chromium through Playwright), served by the real API: the visitor
sees the page built from blocks, submits its form (first with a mistake, then right) and becomes a contact with
a stored submission and a started workflow. Script smuggled into the page's HTML, its CSS, a link and a form
field never runs; the survey shows only the questions on the visitor's branch."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.sites import FormSubmission
from models.tenancy import User
from models.workflows import WorkflowExecution
from services.access import issue_api_key
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import Demo

pytestmark = [pytest.mark.browser, pytest.mark.integration]
XSS = '"><img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script>'
PAGE_HTML = ('<h2>Our spring menu</h2><script>window.__xss=3</script><img src="x" onerror="window.__xss=4">'
             '<a id="evil" href="javascript:window.__xss=5">Specials</a><p onmouseover="window.__xss=6">Pasta</p>')
PAGE_CSS = "h2{color:#b03a2e}</style><script>window.__xss=7</script>"


def test_a_visitor_submits_a_form_and_becomes_a_lead(api_url: str, demo: Demo) -> None:
    from playwright.sync_api import expect, sync_playwright

    with owner_session() as session:
        user_id = session.scalar(select(User.id).where(User.email == "admin@digitalmarketing.com"))
    with tenant_session(TenantScope(agency_id=demo.agency_id)) as session:
        _, token = issue_api_key(session=session, user_id=user_id, name="browser-sites")
    api = httpx.Client(base_url=f"{api_url}/v1/sub-accounts/{demo.a}", headers={"Authorization": f"Bearer {token}"})
    slug = f"launch-{uuid.uuid4().hex[:6]}"
    funnel = api.post("/funnels", json={"name": "Launch", "slug": slug, "status": "published"}).json()
    form = api.post("/forms", json={"name": "Lead capture", "settings": {"redirect": "thanks"}, "fields": [
        {"key": "full_name", "label": "Name", "type": "text", "required": True},
        {"key": "email", "label": "Email", "type": "email", "required": True},
        {"key": "message", "label": "Message", "type": "textarea"}]}).json()
    survey = api.post("/surveys", json={"name": "Quick question", "questions": [
        {"key": "visit", "text": "Dinner or a party?", "options": ["Dinner", "Party"], "next": {"Dinner": "end"}},
        {"key": "size", "text": "How many guests?", "options": ["<20", "20+"]}]}).json()
    for body in ({"name": "Landing", "slug": "/", "position": 0, "is_published": True, "html_content": PAGE_HTML,
                  "css_content": PAGE_CSS, "builder_json": {"blocks": [
                      {"type": "hero", "props": {"title": "Spring launch", "cta_text": "See more",
                                                 "cta_href": "javascript:window.__xss=8"}},
                      {"type": "form", "props": {"form_id": form["id"], "title": "Get in touch"}},
                      {"type": "survey", "props": {"survey_id": survey["id"]}}]}},
                 {"name": "Thanks", "slug": "thanks", "position": 1, "is_published": True,
                  "builder_json": {"blocks": [{"type": "text", "props": {"text": "Thanks, talk soon!"}}]}}):
        made = api.post(f"/funnels/{funnel['id']}/pages", json=body)
        assert made.status_code == 201, made.text
    flow = api.post("/workflows", json={
        "name": "Website lead", "triggers": [{"type": "form_submitted", "conditions": {"form_id": form["id"]}}],
        "actions": {"type": "add_tag", "config": {"tag": "website-lead"}}}).json()
    assert api.post(f"/workflows/{flow['id']}/publish").status_code == 200
    email = f"lena-{uuid.uuid4().hex[:6]}@example.com"
    dialogs: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{api_url}/s/restaurant-a/{slug}")
            expect(page.locator("h1")).to_have_text("Spring launch")
            expect(page.locator(".lp-html h2")).to_have_text("Our spring menu")
            page.locator(".lp-html p").hover()
            page.locator("#evil").click()
            page.locator(".lp-hero a").click()
            # the survey shows a question once the answers so far lead to it
            expect(page.locator("fieldset[data-key=size]")).to_be_hidden()
            page.get_by_label("Party").check()
            expect(page.locator("fieldset[data-key=size]")).to_be_visible()
            page.get_by_label("Dinner").check()
            expect(page.locator("fieldset[data-key=size]")).to_be_hidden()

            page.get_by_label("Name").fill(XSS)
            page.get_by_label("Email").fill("lena-at-example")
            page.get_by_label("Message").fill("<script>window.__xss=9</script>Table for 12?")
            page.get_by_role("button", name="Send").click()
            expect(page.locator(".lp-field-error")).to_have_text(["Email: enter a valid email address."])
            expect(page.get_by_label("Name")).to_have_value(XSS)  # given back as text, never as markup
            page.get_by_label("Email").fill(email)
            page.get_by_role("button", name="Send").click()
            expect(page).to_have_url(f"{api_url}/s/restaurant-a/{slug}/thanks")
            expect(page.locator(".lp-text")).to_contain_text("Thanks, talk soon!")
            assert page.evaluate("window.__xss === undefined")
        finally:
            browser.close()
    assert dialogs == []
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        contact = session.scalar(select(Contact).where(Contact.email == email))
        assert contact is not None and contact.first_name == XSS.split(" ")[0]
        submission = session.scalar(select(FormSubmission).where(FormSubmission.contact_id == contact.id))
        assert submission is not None and submission.is_processed
        assert submission.data["message"] == "<script>window.__xss=9</script>Table for 12?"  # stored as sent
        assert submission.user_agent and "Chrome" in submission.user_agent
        assert submission.ip_address == "127.0.0.1"
        execution = session.scalar(select(WorkflowExecution).where(WorkflowExecution.contact_id == contact.id,
                                                                   WorkflowExecution.workflow_id == flow["id"]))
        assert execution is not None and execution.trigger_event["form_id"] == form["id"]
