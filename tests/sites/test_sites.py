"""Sites end to end over HTTP: a funnel built through the staff API and served at /s/..., forms validated and
turned into a contact + submission + workflow execution in one transaction, honeypot and rate limit, XSS in
page HTML, CSS, links and submitted values neutralized, surveys walked along their branches and scored, the
booking block booking through the calendar service, the pricing block opening a payment link, and page views
tied to the lead they became."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import app
from models.activity import AnalyticsEvent
from models.calendars import Appointment, Calendar
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.payments import Invoice, Price
from models.performance import Campaign
from models.sites import FormSubmission, SurveyResponse
from models.tenancy import User
from models.workflows import WorkflowExecution
from services import sanitize
from services.access import issue_api_key
from services.forms import check_questions, walk
from tests.conftest import Demo

pytestmark = pytest.mark.integration
XSS_HTML = ('<h2>Menu</h2><script>alert("page")</script><img src=x onerror="alert(1)">'
            '<a href="javascript:alert(2)">deal</a><iframe src="https://evil.example"></iframe>'
            '<p style="color:red;position:fixed">Fresh pasta</p>')
XSS_CSS = 'body{color:#222}</style><script>alert(3)</script>.x{background:url(javascript:alert(4))}'


def _key(demo: Demo, email: str) -> dict[str, str]:
    with owner_session() as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
    with tenant_session(TenantScope(agency_id=demo.agency_id)) as session:
        _, token = issue_api_key(session=session, user_id=user_id, name="sites-test")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(app, client=("203.0.113.7", 50000))


@pytest.fixture(scope="module")
def built(demo: Demo, client: TestClient) -> dict[str, str]:
    """A published funnel with a landing page (hero, form, pricing, booking, raw HTML with XSS) and a survey
    page, plus a published workflow on the form."""
    admin = _key(demo, "admin@digitalmarketing.com")
    base = f"/v1/sub-accounts/{demo.a}"
    slug = f"spring-{uuid.uuid4().hex[:6]}"
    funnel = client.post(f"{base}/funnels", headers=admin, json={"name": "Spring", "slug": slug,
                                                                  "status": "published"})
    assert funnel.status_code == 201, funnel.text
    funnel_id = funnel.json()["id"]
    form = client.post(f"{base}/forms", headers=admin, json={
        "name": "Spring inquiry",
        "fields": [{"key": "full_name", "label": "Your name", "type": "text", "required": True},
                   {"key": "email", "type": "email", "required": True},
                   {"key": "phone", "type": "phone"},
                   {"key": "party_size", "type": "number", "min": 1, "max": 200,
                    "maps_to": "custom_fields.party_size"},
                   {"key": "occasion", "type": "select", "options": ["Birthday", "Work"]}],
        "settings": {"redirect": "thanks", "tags": ["Lead - Website"], "rate_limit": 3}})
    assert form.status_code == 201, form.text
    form_id = form.json()["id"]
    survey = client.post(f"{base}/surveys", headers=admin, json={
        "name": "Fit", "questions": [
            {"key": "kind", "text": "What are you planning?", "options": ["Party", "Dinner"], "scores": [5, 1],
             "next": {"Dinner": "end"}},
            {"key": "guests", "text": "How many guests?", "options": ["<20", "20+"], "scores": [1, 3]},
            {"key": "email", "text": "Your email", "type": "email"}]})
    assert survey.status_code == 201, survey.text
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as s:
        calendar_id = s.scalar(select(Calendar.id).where(Calendar.deleted_at.is_(None), Calendar.is_active)
                               .order_by(Calendar.name).limit(1))
        price_id = s.scalar(select(Price.id).where(Price.is_active, Price.deleted_at.is_(None),
                                                   Price.billing_period.is_(None)).limit(1))
        campaign = Campaign(agency_id=demo.agency_id, sub_account_id=demo.a, name="Spring FB",
                            start_date=date.today() - timedelta(days=3), utm_campaign=f"utm-{slug}",
                            campaign_status="active")
        s.add(campaign)
        s.flush()
        campaign_id = str(campaign.id)
    assert calendar_id and price_id
    landing = client.post(f"{base}/funnels/{funnel_id}/pages", headers=admin, json={
        "name": "Landing", "slug": "/", "page_type": "landing", "is_published": True, "position": 0,
        "html_content": XSS_HTML, "css_content": XSS_CSS,
        "builder_json": {"version": "1.0", "blocks": [
            {"type": "hero", "props": {"title": "Spring parties", "cta_text": "Go",
                                       "cta_href": "javascript:alert(5)"}},
            {"type": "form", "props": {"form_id": form_id, "title": "Plan your party"}},
            {"type": "pricing", "props": {"price_id": str(price_id), "features": ["Deposit"]}},
            {"type": "calendar", "props": {"calendar_id": str(calendar_id), "days": 14}}]}})
    assert landing.status_code == 201, landing.text
    for name, page_slug, blocks in (("Thanks", "thanks", [{"type": "text", "props": {"text": "Thank you!"}}]),
                                    ("Survey", "survey", [{"type": "survey",
                                                           "props": {"survey_id": survey.json()["id"]}}])):
        made = client.post(f"{base}/funnels/{funnel_id}/pages", headers=admin, json={
            "name": name, "slug": page_slug, "is_published": True, "position": 1,
            "builder_json": {"blocks": blocks}})
        assert made.status_code == 201, made.text
    flow = client.post(f"{base}/workflows", headers=admin, json={
        "name": "Form follow-up", "triggers": [{"type": "form_submitted", "conditions": {"form_id": form_id}}],
        "actions": {"type": "add_tag", "config": {"tag": "followed-up"}}})
    assert flow.status_code == 201, flow.text
    assert client.post(f"{base}/workflows/{flow.json()['id']}/publish", headers=admin).status_code == 200
    return {"url": f"/s/restaurant-a/{slug}", "form_id": form_id, "survey_id": survey.json()["id"],
            "workflow_id": flow.json()["id"], "calendar_id": str(calendar_id), "price_id": str(price_id),
            "base": base, "funnel_id": funnel_id, "campaign_id": campaign_id, "slug": slug}


def _scope(demo: Demo) -> TenantScope:
    return TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)


def test_page_renders_blocks_sanitized_under_a_strict_policy(built: dict[str, str], client: TestClient) -> None:
    page = client.get(built["url"])
    assert page.status_code == 200
    body = page.text
    assert "Spring parties" in body and "Plan your party" in body and "Fresh pasta" in body
    assert 'name="party_size"' in body and 'type="email"' in body
    # no author script survives: the only scripts are the product's
    assert re.findall(r"<script[^>]*>", body) == ['<script src="/s/_static/site.js" defer>']
    for bad in ("onerror", "javascript:", "<iframe", "alert(", "position:fixed"):
        assert bad not in body, bad
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.cookies.get("lp_vid")
    assert client.get(built["url"] + "/nope").status_code == 404
    assert client.get(f"/s/restaurant-b/{built['slug']}").status_code == 404  # another business's address


def test_sanitizers_directly() -> None:
    assert sanitize.html('<svg onload=alert(1)><b onclick="x()">hi</b>') == "<b>hi</b>"
    assert sanitize.url("  java\tscript:alert(1)") == "#"
    assert sanitize.url("\x01javascript:alert(1)") == "#"
    assert sanitize.url("data:text/html;base64,xx", images=True) == "#"
    assert sanitize.url("/s/a/b/thanks") == "/s/a/b/thanks"
    assert "<" not in sanitize.css("a{color:red}</style><script>alert(1)</script>")
    assert sanitize.css("@import url(x.css); a{color:red;behavior:url(x.htc)}") == "a{color:red}"


def test_a_submission_makes_contact_submission_and_workflow(demo: Demo, built: dict[str, str],
                                                             client: TestClient) -> None:
    client.cookies.clear()
    landing = client.get(built["url"] + f"?utm_campaign=utm-{built['slug']}&utm_source=facebook")
    visitor = landing.cookies["lp_vid"]
    email = f"ana-{uuid.uuid4().hex[:6]}@example.com"
    posted = client.post(f"{built['url']}/_form/{built['form_id']}", follow_redirects=False,
                         headers={"referer": f"http://testserver{built['url']}?utm_campaign=utm-{built['slug']}"
                                             "&utm_source=facebook", "user-agent": "PartyBrowser/1.0"},
                         data={"_page": "", "full_name": "Ana <b>Lima</b>", "email": email.upper(),
                               "phone": "(212) 555-0142", "party_size": "24", "occasion": "Birthday",
                               "website": ""})
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"] == f"{built['url']}/thanks"
    with tenant_session(_scope(demo)) as s:
        contact = s.scalar(select(Contact).where(Contact.email == email))
        assert contact is not None
        assert (contact.first_name, contact.last_name, contact.phone) == ("Ana", "<b>Lima</b>", "+12125550142")
        assert contact.custom_fields["party_size"] == 24
        assert str(contact.campaign_id) == built["campaign_id"]  # first-touch attribution by utm_campaign
        assert contact.attribution["first_touch"]["utm_source"] == "facebook"
        submission = s.scalar(select(FormSubmission).where(FormSubmission.contact_id == contact.id))
        assert submission is not None and submission.is_processed and submission.processed_at
        assert submission.ip_address == "203.0.113.7" and submission.user_agent == "PartyBrowser/1.0"
        assert submission.data["email"].lower() == email and submission.data["party_size"] == 24
        execution = s.scalar(select(WorkflowExecution).where(WorkflowExecution.contact_id == contact.id,
                                                             WorkflowExecution.workflow_id ==
                                                             uuid.UUID(built["workflow_id"])))
        assert execution is not None
        views = s.scalar(select(func.count()).select_from(AnalyticsEvent).where(
            AnalyticsEvent.session_id == visitor, AnalyticsEvent.event_name == "page_viewed",
            AnalyticsEvent.contact_id == contact.id))
        assert views == 1  # the anonymous view now belongs to the lead
    # the same person again: matched, not duplicated
    again = client.post(f"{built['url']}/_form/{built['form_id']}", follow_redirects=False,
                        data={"full_name": "Ana Lima", "email": email, "party_size": "30"})
    assert again.status_code == 303
    with tenant_session(_scope(demo)) as s:
        assert s.scalar(select(func.count()).select_from(Contact).where(Contact.email == email)) == 1
        assert s.scalar(select(func.count()).select_from(FormSubmission).where(
            FormSubmission.form_id == uuid.UUID(built["form_id"]),
            func.lower(FormSubmission.data["email"].astext) == email)) == 2


def test_bad_input_rerenders_with_errors_and_stores_nothing(demo: Demo, built: dict[str, str]) -> None:
    client = TestClient(app, client=("203.0.113.20", 50000))
    with tenant_session(_scope(demo)) as s:
        before = s.scalar(select(func.count()).select_from(FormSubmission))
    payload = '"><script>alert(document.cookie)</script>'
    page = client.post(f"{built['url']}/_form/{built['form_id']}", follow_redirects=False,
                       data={"_page": "", "full_name": payload, "email": "not-an-email", "party_size": "999",
                             "occasion": "Wedding"})
    assert page.status_code == 422
    assert "enter a valid email address" in page.text and "must be at most 200" in page.text
    assert "choose one of the options" in page.text
    assert "<script>alert(document.cookie)" not in page.text
    assert "&#34;&gt;&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in page.text  # kept, as text
    as_json = client.post(f"{built['url']}/_form/{built['form_id']}", json={"email": "x@example.com"})
    assert as_json.status_code == 422
    assert as_json.headers["content-type"].startswith("application/problem+json")
    assert as_json.json()["errors"] == {"full_name": "Your name is required."}
    with tenant_session(_scope(demo)) as s:
        assert s.scalar(select(func.count()).select_from(FormSubmission)) == before


def test_honeypot_and_rate_limit(demo: Demo, built: dict[str, str]) -> None:
    client = TestClient(app, client=("198.51.100.9", 50000))
    url = f"{built['url']}/_form/{built['form_id']}"
    email = f"bot-{uuid.uuid4().hex[:6]}@example.com"
    bot = client.post(url, follow_redirects=False, data={"full_name": "Bot", "email": email,
                                                         "website": "http://spam.example"})
    assert bot.status_code == 303  # looks like success to the bot
    with tenant_session(_scope(demo)) as s:
        assert s.scalar(select(func.count()).select_from(Contact).where(Contact.email == email)) == 0
    codes = [client.post(url, follow_redirects=False, data={"full_name": "Flood", "email": f"f{i}-{email}"}
                         ).status_code for i in range(5)]
    assert codes[:3] == [303, 303, 303] and codes[3:] == [429, 429]  # the form allows 3 a minute per address
    with tenant_session(_scope(demo)) as s:
        assert s.scalar(select(func.count()).select_from(FormSubmission).where(
            FormSubmission.ip_address == "198.51.100.9")) == 3


def test_unknown_or_foreign_form_is_404(demo: Demo, built: dict[str, str], client: TestClient) -> None:
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.b)) as s:
        from models.sites import Form

        foreign = s.scalar(select(Form.id).limit(1))
    assert foreign is not None
    response = client.post(f"{built['url']}/_form/{foreign}", data={"full_name": "X", "email": "x@example.com"})
    assert response.status_code == 404


def test_survey_branches_and_scores(demo: Demo, built: dict[str, str], client: TestClient) -> None:
    questions = [{"key": "kind", "options": ["Party", "Dinner"], "scores": [5, 1], "next": {"Dinner": "end"}},
                 {"key": "guests", "options": ["<20", "20+"], "scores": [1, 3]}]
    assert walk(questions, {"kind": "Dinner", "guests": "20+"})[:2] == ({"kind": "Dinner"}, 1)
    assert walk(questions, {"kind": "Party", "guests": "20+"})[:2] == ({"kind": "Party", "guests": "20+"}, 8)
    assert walk(questions, {"kind": "Party"})[2] == {"guests": "Please answer: guests"}
    with pytest.raises(Exception, match="later question"):
        check_questions([{"key": "a", "options": ["x"], "next": {"x": "a"}}])
    email = f"sv-{uuid.uuid4().hex[:6]}@example.com"
    done = client.post(f"{built['url']}/_survey/{built['survey_id']}", follow_redirects=False,
                       data={"_page": "survey", "kind": "Party", "guests": "20+", "email": email})
    assert done.status_code == 303 and done.headers["location"].endswith("/survey?done=answered")
    dinner = client.post(f"{built['url']}/_survey/{built['survey_id']}", follow_redirects=False,
                         data={"kind": "Dinner", "guests": "20+", "email": "ignored@example.com"})
    assert dinner.status_code == 303
    with tenant_session(_scope(demo)) as s:
        rows = list(s.scalars(select(SurveyResponse).where(SurveyResponse.survey_id == uuid.UUID(built["survey_id"]))
                              .order_by(SurveyResponse.created_at)))
        assert [(r.answers, float(r.score or 0)) for r in rows[-2:]] == [
            ({"kind": "Party", "guests": "20+", "email": email}, 8.0), ({"kind": "Dinner"}, 1.0)]
        assert rows[-2].contact_id is not None and rows[-1].contact_id is None


def test_booking_block_books_through_the_calendar(demo: Demo, built: dict[str, str], client: TestClient) -> None:
    page = client.get(built["url"])
    slots = re.findall(r'name="slot" value="([^"]+)"', page.text)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert slots and nonce
    email = f"bk-{uuid.uuid4().hex[:6]}@example.com"
    form = {"_page": "", "slot": slots[0], "full_name": "Bea Booker", "email": email, "nonce": nonce.group(1)}
    first = client.post(f"{built['url']}/_book/{built['calendar_id']}", data=form, follow_redirects=False)
    assert first.status_code == 303, first.text
    twice = client.post(f"{built['url']}/_book/{built['calendar_id']}", data=form, follow_redirects=False)
    assert twice.status_code == 303  # the same form sent again is the same booking
    taken = client.post(f"{built['url']}/_book/{built['calendar_id']}", follow_redirects=False,
                        data={**form, "email": f"other-{email}", "nonce": "another"})
    assert taken.status_code == 409 and "That time was just taken" in taken.text
    with tenant_session(_scope(demo)) as s:
        booked = list(s.scalars(select(Appointment).join(Contact, Contact.id == Appointment.contact_id)
                                .where(Contact.email == email)))
        assert len(booked) == 1 and booked[0].start_time.isoformat() == slots[0].replace("Z", "+00:00")
        assert booked[0].calendar_id == uuid.UUID(built["calendar_id"])


def test_pricing_block_opens_a_payment_link(demo: Demo, built: dict[str, str], client: TestClient) -> None:
    email = f"buy-{uuid.uuid4().hex[:6]}@example.com"
    bad = client.post(f"{built['url']}/_checkout/{built['price_id']}", data={"email": "nope"},
                      follow_redirects=False)
    assert bad.status_code == 422
    paid = client.post(f"{built['url']}/_checkout/{built['price_id']}", data={"email": email, "full_name": "Pat"},
                       follow_redirects=False)
    assert paid.status_code == 303, paid.text
    with tenant_session(_scope(demo)) as s:
        invoice = s.scalar(select(Invoice).join(Contact, Contact.id == Invoice.contact_id)
                           .where(Contact.email == email))
        price = s.get(Price, uuid.UUID(built["price_id"]))
        assert invoice is not None and price is not None and invoice.total_amount == price.amount
        assert paid.headers["location"] == invoice.payment_link_url


def test_staff_api_checks_what_pages_carry(demo: Demo, built: dict[str, str], client: TestClient) -> None:
    admin = _key(demo, "admin@digitalmarketing.com")
    pages = f"{built['base']}/funnels/{built['funnel_id']}/pages"
    script = client.post(pages, headers=admin, json={"name": "JS", "slug": "js", "js_content": "alert(1)"})
    assert script.status_code == 422 and script.json()["field"] == "js_content"
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.b)) as s:
        from models.sites import Form

        foreign = s.scalar(select(Form.id).limit(1))
    stolen = client.post(pages, headers=admin, json={"name": "X", "slug": "x", "builder_json": {
        "blocks": [{"type": "form", "props": {"form_id": str(foreign)}}]}})
    assert stolen.status_code == 422 and "no such form" in stolen.json()["detail"]
    unknown = client.post(pages, headers=admin, json={"name": "X", "slug": "x", "builder_json": {
        "blocks": [{"type": "marquee", "props": {}}]}})
    assert unknown.status_code == 422
    bad_form = client.post(f"{built['base']}/forms", headers=admin, json={
        "name": "Bad", "fields": [{"key": "a", "type": "select"}]})
    assert bad_form.status_code == 422 and "needs options" in bad_form.json()["detail"]
    staff = _key(demo, "jane@restaurant.com")
    assert client.get(f"{built['base']}/funnels", headers=staff).status_code == 403
    manager_b = _key(demo, "bob@restaurant.com")
    assert client.get(f"{built['base']}/funnels", headers=manager_b).status_code == 404
    survey = client.put(f"{built['base']}/surveys/{built['survey_id']}", headers=admin, json={
        "name": "Fit", "questions": [{"key": "kind", "text": "What are you planning?", "options": ["Party", "Dinner"],
                                      "scores": [5, 1], "next": {"Dinner": "end"}},
                                     {"key": "guests", "options": ["<20", "20+"], "scores": [1, 3]},
                                     {"key": "email", "type": "email"}]})
    assert survey.status_code == 200 and survey.json()["questions"][0]["scores"] == [5, 1]
    assert client.put(f"{built['base']}/forms/{uuid.uuid4()}", headers=admin, json={
        "name": "X", "fields": [{"key": "email", "type": "email"}]}).status_code == 404
    listed = client.get(f"{built['base']}/forms/{built['form_id']}/submissions", headers=admin)
    assert listed.status_code == 200 and listed.json() and listed.json()[0]["ip_address"]


def test_the_demo_funnel_serves_every_block(demo: Demo, client: TestClient) -> None:
    page = client.get("/s/restaurant-a/holiday-parties")
    assert page.status_code == 200
    for part in ("Holiday parties at Restaurant Location A", "Tell us about your party", 'name="party_size"',
                 'name="slot"', "Pay the deposit", "250.00 USD", 'src="/widget.js" data-key="wk_restaurant-a'):
        assert part in page.text, part
    assert client.get("/s/restaurant-a/holiday-parties/menu").status_code == 200
    email = f"demo-{uuid.uuid4().hex[:6]}@example.com"
    sent = client.post(re.search(r'action="([^"]+/_form/[^"]+)"', page.text).group(1),  # type: ignore[union-attr]
                       data={"full_name": "Dee Mo", "email": email, "party_size": "40"}, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/s/restaurant-a/holiday-parties/thank-you"
    with tenant_session(_scope(demo)) as s:
        contact = s.scalar(select(Contact).where(Contact.email == email))
        assert contact is not None and contact.custom_fields["party_size"] == 40
        names = set(s.scalars(select(WorkflowExecution.trigger_event["type"].astext)
                              .where(WorkflowExecution.contact_id == contact.id)))
        assert "form_submitted" in names  # the seed's Form Follow-up
