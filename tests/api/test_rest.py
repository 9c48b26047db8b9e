"""The REST API end to end: API-key auth, per-sub-account permissions, and every domain's routes writing
through the services into the real database (committed, as a client would see it)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import app
from models.calendars import AvailabilityRule, Calendar
from models.crm import Contact
from models.db import TenantScope, owner_session, tenant_session
from models.tenancy import User
from services.access import issue_api_key, revoke_api_key
from tests.conftest import Demo

pytestmark = pytest.mark.integration
client = TestClient(app)


def key_for(demo: Demo, email: str, *, pinned: uuid.UUID | None = None) -> dict[str, str]:
    with owner_session() as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
    with tenant_session(TenantScope(agency_id=demo.agency_id)) as session:
        _, token = issue_api_key(session=session, user_id=user_id, name="test", sub_account_id=pinned)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def keys(demo: Demo) -> dict[str, dict[str, str]]:
    return {
        "admin": key_for(demo, "admin@digitalmarketing.com"),
        "agency_user": key_for(demo, "sam@digitalmarketing.com"),
        "manager_a": key_for(demo, "john@restaurant.com"),
        "staff_a": key_for(demo, "jane@restaurant.com"),
        "manager_b": key_for(demo, "bob@restaurant.com"),
        "admin_pinned_a": key_for(demo, "admin@digitalmarketing.com", pinned=demo.a),
    }


def base(sub: uuid.UUID) -> str:
    return f"/v1/sub-accounts/{sub}"


def problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


# ------------------------------------------------------------------ authentication and authorization

def test_no_key_a_malformed_key_and_a_revoked_key_are_401(demo: Demo) -> None:
    assert "Bearer" in client.get(f"{base(demo.a)}/contacts").headers["www-authenticate"]
    problem(client.get(f"{base(demo.a)}/contacts"), 401)
    problem(client.get(f"{base(demo.a)}/contacts", headers={"Authorization": "Bearer nope"}), 401)
    headers = key_for(demo, "john@restaurant.com")
    assert client.get(f"{base(demo.a)}/contacts", headers=headers).status_code == 200
    forged = headers["Authorization"][:-4] + "AAAA"
    problem(client.get(f"{base(demo.a)}/contacts", headers={"Authorization": forged}), 401)
    prefix = headers["Authorization"].split("_")[1]
    with owner_session() as session:
        from models.tenancy import ApiKey

        key_id = session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix))
    with tenant_session(TenantScope(agency_id=demo.agency_id)) as session:
        revoke_api_key(session=session, key_id=key_id)
    problem(client.get(f"{base(demo.a)}/contacts", headers=headers), 401)


def test_client_users_reach_only_their_sub_account(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    assert client.get(f"{base(demo.a)}/contacts", headers=keys["manager_a"]).status_code == 200
    problem(client.get(f"{base(demo.b)}/contacts", headers=keys["manager_a"]), 404)
    problem(client.get(f"{base(uuid.uuid4())}/contacts", headers=keys["manager_a"]), 404)
    problem(client.get(f"{base(demo.a)}/contacts", headers=keys["manager_b"]), 404)
    problem(client.get(f"{base(demo.b)}/contacts", headers=keys["admin_pinned_a"]), 404)
    assert client.get(f"{base(demo.b)}/contacts", headers=keys["admin"]).status_code == 200
    assert client.get(f"{base(demo.b)}/contacts", headers=keys["agency_user"]).status_code == 200


def test_a_missing_permission_is_403_with_the_permission_named(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    body = problem(client.get(f"{base(demo.a)}/products", headers=keys["staff_a"]), 403)
    assert body["permission"] == "payments.read"
    body = problem(client.get("/v1/agency/reports", headers=keys["manager_a"]), 403)
    assert body["permission"] == "reports.read"
    problem(client.get("/v1/agency/reports", headers=keys["admin_pinned_a"]), 403)
    problem(client.post(f"{base(demo.a)}/custom-fields/contact", headers=keys["agency_user"],
                        json={"key": "x", "name": "X", "field_type": "text"}), 403)


def test_staff_edit_contacts_but_only_managers_delete_or_merge_them(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    made = [client.post(f"{base(demo.a)}/contacts", headers=keys["staff_a"],
                        json={"first_name": "Del", "email": f"del-{uuid.uuid4().hex[:8]}@example.com"}) for _ in "ab"]
    first, second = (m.json()["id"] for m in made)
    assert client.patch(f"{base(demo.a)}/contacts/{first}", headers=keys["staff_a"],
                        json={"last_name": "Edited"}).status_code == 200
    assert problem(client.delete(f"{base(demo.a)}/contacts/{first}", headers=keys["staff_a"]),
                   403)["permission"] == "contacts.delete"
    assert problem(client.post(f"{base(demo.a)}/contacts/{first}/merge", headers=keys["staff_a"],
                               json={"merge_id": second}), 403)["permission"] == "contacts.delete"
    assert client.get(f"{base(demo.a)}/contacts/{first}", headers=keys["staff_a"]).status_code == 200
    assert client.delete(f"{base(demo.a)}/contacts/{first}", headers=keys["manager_a"]).status_code == 204


def test_every_sub_account_route_refuses_a_user_of_another_sub_account(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """A sweep over the whole API: B's manager gets 404 on each of A's routes, whatever the method."""
    tried = 0
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/v1/sub-accounts/{sub_account_id}"):
            continue
        url = path.replace("{sub_account_id}", str(demo.a))
        while "{" in url:
            start = url.index("{")
            url = url[:start] + str(uuid.uuid4()) + url[url.index("}") + 1:]
        for method in operations:
            response = client.request(method.upper(), url, headers=keys["manager_b"], json={})
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["detail"] == "No such sub-account."
            tried += 1
    assert tried >= 40


# ------------------------------------------------------------------ CRM

def test_contacts_and_custom_fields_through_the_api(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    h, url = keys["admin"], base(demo.a)
    field = f"diet_{uuid.uuid4().hex[:6]}"
    created = client.post(f"{url}/custom-fields/contact", headers=h, json={
        "key": field, "name": "Diet", "field_type": "select", "options": ["vegan", "none"]})
    assert created.status_code == 201, created.text
    problem(client.post(f"{url}/custom-fields/contact", headers=h, json={
        "key": field, "name": "Again", "field_type": "text"}), 409)
    problem(client.post(f"{url}/custom-fields/contact", headers=h, json={
        "key": "mood", "name": "Mood", "field_type": "select"}), 422)

    email = f"Ada.{uuid.uuid4().hex[:6]}@Example.com"
    phone = f"(212) 555-{uuid.uuid4().int % 9000 + 1000}"
    bad = client.post(f"{url}/contacts", headers=h, json={"first_name": "Ada", "email": email,
                                                         "custom_fields": {field: "paleo"}})
    problem(bad, 422)
    with owner_session() as session:  # nothing half-written
        assert session.scalar(select(func.count()).where(Contact.email == email)) == 0
    made = client.post(f"{url}/contacts", headers=h, json={
        "first_name": "Ada", "email": email, "phone": phone, "custom_fields": {field: "vegan"}})
    assert made.status_code == 201, made.text
    contact = made.json()
    assert contact["email"] == email.lower() and contact["phone"].startswith("+1212555")
    problem(client.post(f"{url}/contacts", headers=h, json={"first_name": "Twin", "email": email}), 409)

    cid = contact["id"]
    assert client.post(f"{url}/contacts/{cid}/tags", headers=h, json={"name": "VIP"}).json()["tags"] == ["VIP"]
    found = client.get(f"{url}/contacts", headers=h, params={"tag": "VIP", "custom_field": f"{field}:vegan"}).json()
    assert [c["id"] for c in found["items"]] == [cid]
    assert client.post(f"{url}/contacts/{cid}/notes", headers=h, json={"body": "Allergic to nuts"}).status_code == 201
    task = client.post(f"{url}/contacts/{cid}/tasks", headers=h, json={"title": "Call back", "priority": "high"})
    assert task.status_code == 201 and task.json()["priority"] == "high"
    assert client.put(f"{url}/contacts/{cid}/dnd/sms", headers=h, json={"enabled": True}).status_code == 200
    problem(client.put(f"{url}/contacts/{cid}/dnd/pigeon", headers=h, json={"enabled": True}), 422)

    # an option still held cannot go; retiring the field clears the values
    problem(client.patch(f"{url}/custom-fields/contact/{field}", headers=h, json={"options": ["none"]}), 409)
    assert client.delete(f"{url}/custom-fields/contact/{field}", headers=h).json() == {"cleared": 1}
    assert field not in client.get(f"{url}/contacts/{cid}", headers=h).json()["custom_fields"]

    assert client.post(f"{url}/contacts/{cid}/convert", headers=h).json()["lifecycle_stage"] == "customer"
    assert client.delete(f"{url}/contacts/{cid}", headers=h).status_code == 204
    problem(client.get(f"{url}/contacts/{cid}", headers=h), 404)
    problem(client.get(f"{base(demo.b)}/contacts/{cid}", headers=h), 404)  # the id is A's, asked in B


def test_opportunities_validate_custom_fields_and_move(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    h, url = keys["admin"], base(demo.a)
    field = f"size_{uuid.uuid4().hex[:6]}"
    assert client.post(f"{url}/custom-fields/opportunity", headers=h, json={
        "key": field, "name": "Party size", "field_type": "number", "is_required": True}).status_code == 201
    pipeline = client.get(f"{url}/pipelines", headers=h).json()[0]
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.deleted_at.is_(None)).limit(1))
    new = {"pipeline_id": pipeline["id"], "contact_id": str(contact_id), "name": "Wedding", "monetary_value": "4200.50"}
    body = problem(client.post(f"{url}/opportunities", headers=h, json=new), 422)
    assert field in body["detail"]
    problem(client.post(f"{url}/opportunities", headers=h, json={**new, "custom_fields": {field: "many"}}), 422)
    made = client.post(f"{url}/opportunities", headers=h, json={**new, "custom_fields": {field: "120"}})
    assert made.status_code == 201, made.text
    assert made.json()["custom_fields"] == {field: 120} and made.json()["monetary_value"] == "4200.50"
    moved = client.post(f"{url}/opportunities/{made.json()['id']}/move", headers=h,
                        json={"to_stage_id": pipeline["stages"][1]["id"]})
    assert moved.json()["stage_id"] == pipeline["stages"][1]["id"]
    forecast = client.get(f"{url}/pipelines/{pipeline['id']}/forecast", headers=h).json()
    assert Decimal(forecast["weighted_total"]) > 0
    client.delete(f"{url}/custom-fields/opportunity/{field}", headers=h)


# ------------------------------------------------------------------ calendars

def test_slots_booking_race_loser_and_lifecycle(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    h, url = keys["manager_a"], base(demo.a)
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        calendar_id = session.scalar(select(Calendar.id).join(AvailabilityRule).where(
            AvailabilityRule.rule_type == "weekly").order_by(Calendar.id).limit(1))
        contact_id = session.scalar(select(Contact.id).where(Contact.deleted_at.is_(None)).limit(1))
    first = date.today() + timedelta(days=3)
    slots = client.get(f"{url}/calendars/{calendar_id}/slots", headers=h, params={
        "start": first.isoformat(), "end": (first + timedelta(days=10)).isoformat(),
        "timezone": "Europe/Berlin"}).json()["slots"]
    assert slots and all(s["start"].endswith(("+01:00", "+02:00")) for s in slots)
    pick = slots[-1]["start"]
    book = {"calendar_id": str(calendar_id), "contact_id": str(contact_id), "start": pick, "timezone": "Europe/Berlin"}
    made = client.post(f"{url}/appointments", headers=h, json=book)
    assert made.status_code == 201, made.text
    taken = problem(client.post(f"{url}/appointments", headers=h, json=book), 409)
    assert taken["alternatives"] and pick not in taken["alternatives"]
    problem(client.post(f"{url}/appointments", headers=h, json={**book, "start": "2026-13-01T10:00"}), 422)
    appointment = made.json()["id"]
    assert client.post(f"{url}/appointments/{appointment}/status", headers=h,
                       json={"status": "confirmed"}).json()["status"] == "confirmed"
    moved = client.post(f"{url}/appointments/{appointment}/reschedule", headers=h,
                        json={"new_start": taken["alternatives"][0]})
    assert moved.status_code == 201, moved.text
    assert client.get(f"{url}/appointments/{appointment}", headers=h).json()["status"] == "rescheduled"
    ics = client.get(f"{url}/calendars/{calendar_id}/export.ics", headers=h)
    assert ics.headers["content-type"].startswith("text/calendar") and b"BEGIN:VEVENT" in ics.content


# ------------------------------------------------------------------ payments and reporting

def test_invoice_totals_are_exact_and_the_payment_link_is_stable(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    h, url = keys["manager_a"], base(demo.a)
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.deleted_at.is_(None)).limit(1))
    invoice = client.post(f"{url}/invoices", headers=h, json={
        "contact_id": str(contact_id), "tax_rate": "0.08875", "discount": "10.00",
        "lines": [{"description": "Tasting menu", "quantity": "3", "unit_price": "89.99"},
                  {"description": "Wine pairing", "quantity": "2", "unit_price": "45.50"}]})
    assert invoice.status_code == 201, invoice.text
    body = invoice.json()
    # 269.97 + 91.00 = 360.97; tax 8.875% = 32.04; total 360.97 + 32.04 - 10.00
    assert (body["subtotal"], body["tax_amount"], body["total_amount"]) == ("360.97", "32.04", "383.01")
    assert body["invoice_number"].startswith(f"INV-{date.today().year}-") and len(body["items"]) == 2
    problem(client.post(f"{url}/invoices", headers=h, json={"contact_id": str(contact_id), "lines": [
        {"description": "Free text without a price"}]}), 422)
    link = client.post(f"{url}/invoices/{body['id']}/payment-link", headers=h).json()["url"]
    assert link == client.post(f"{url}/invoices/{body['id']}/payment-link", headers=h).json()["url"]


def test_reports_carry_formulas_baselines_and_the_docs_publish_them(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    report = client.get(f"{base(demo.a)}/reports", headers=keys["manager_a"],
                        params={"period": "month", "anchor": "2026-10-15"}).json()
    assert report["timezone"] == "America/New_York" and report["formulas"]["roi"].startswith("(revenue")
    figures = [g["figures"]["show_rate"] for g in report["groups"] if g["figures"]["show_rate"]["value"]]
    assert figures and all(set(f) == {"metric", "value", "baseline", "trend"} for f in figures)
    agency = client.get("/v1/agency/reports", headers=keys["admin"], params={"group_by": "sub_account",
                                                                          "anchor": "2026-10-15"}).json()
    assert {g["key"] for g in agency["groups"]} == {str(demo.a), str(demo.b)}
    docs = client.get("/openapi.json").json()
    described = docs["paths"]["/v1/sub-accounts/{sub_account_id}/reports"]["get"]["description"]
    assert "(revenue - refunds - ad spend) / ad spend" in described and "cost_per_acquisition" in described


def test_refunds_through_the_sandbox_gateway_never_exceed_the_payment(keys, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    from services import payments

    h, url = keys["admin"], base(demo.a)
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)) as session:
        contact_id = session.scalar(select(Contact.id).where(Contact.deleted_at.is_(None)).limit(1))
        invoice = payments.create_invoice(session=session, contact_id=contact_id,
                                          lines=[payments.Line("Deposit", Decimal(1), Decimal("120.00"))])
        payment = payments.record_payment(session=session, invoice_id=invoice.id, amount=Decimal("120.00"),
                                          gateway="sandbox", gateway_transaction_id=f"pi_{uuid.uuid4().hex}")
    made = client.post(f"{url}/transactions/{payment.id}/refund", headers=h, json={"amount": "20.00"})
    assert made.status_code == 201, made.text
    assert made.json()["gateway_transaction_id"].startswith("re_sandbox_")
    problem(client.post(f"{url}/transactions/{payment.id}/refund", headers=h, json={"amount": "100.01"}), 422)
    assert client.post(f"{url}/transactions/{payment.id}/refund", headers=h, json={}).json()["amount"] == "100.00"


def test_another_sub_accounts_pipeline_and_webhook_are_not_found(demo: Demo, keys: dict[str, dict[str, str]]) -> None:
    """Reports and logs of another tenant's pipeline or endpoint answer like a random id, not 200 and empty."""
    from models.pipelines import Pipeline
    from services import webhooks

    with owner_session() as session:
        theirs = session.scalars(select(Pipeline.id).where(Pipeline.sub_account_id == demo.b,
                                                           Pipeline.deleted_at.is_(None)).limit(1)).one()
        ours = session.scalars(select(Pipeline.id).where(Pipeline.sub_account_id == demo.a,
                                                         Pipeline.deleted_at.is_(None)).limit(1)).one()
    with tenant_session(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.b)) as session:
        hook, _ = webhooks.create_webhook(session=session, sub_account_id=demo.b, url="https://b.example/hook",
                                          events=["*"])
        hook_id = hook.id
    for who in ("admin", "manager_a"):
        h = keys[who]
        for path in (f"pipelines/{theirs}/forecast", f"pipelines/{theirs}/time-in-stage", f"pipelines/{theirs}/board",
                     f"pipelines/{uuid.uuid4()}/forecast", f"webhooks/{hook_id}/logs", f"webhooks/{uuid.uuid4()}/logs"):
            problem(client.get(f"{base(demo.a)}/{path}", headers=h), 404)
        problem(client.post(f"{base(demo.a)}/webhooks/{hook_id}/enable", headers=h), 404)
        assert client.get(f"{base(demo.a)}/pipelines/{ours}/forecast", headers=h).status_code == 200
    assert client.get(f"{base(demo.b)}/webhooks/{hook_id}/logs", headers=keys["manager_b"]).json() == []
