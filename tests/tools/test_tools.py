"""Tools as the model calls them: tenant and contact come from the run config, never from arguments."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from models.calendars import Appointment, Calendar
from models.conversations import Handoff
from models.crm import Contact
from services import reporting
from tests.conftest import Demo
from tools import calendars, crm, handoff
from tools import payments as payment_tools
from tools import reporting as reporting_tools
from tools.registry import CAPABILITY_TOOLS, tools_for

pytestmark = pytest.mark.integration
IDENTITY = {"agency_id", "sub_account_id", "contact_id", "conversation_id", "user_id", "config", "db_session"}


def test_no_tool_lets_the_model_name_a_tenant_or_contact() -> None:
    for tools in CAPABILITY_TOOLS.values():
        for t in tools:
            exposed = set(t.tool_call_schema.model_json_schema().get("properties", {}))
            assert not exposed & IDENTITY, (t.name, exposed & IDENTITY)
            assert t.description and all(
                p.get("description") for p in t.tool_call_schema.model_json_schema().get("properties", {}).values()
            ), t.name


def test_registry_maps_capabilities_to_tools() -> None:
    assert [t.name for t in tools_for(["escalate_to_human"])] == ["request_human_handoff"]
    assert "book_appointment" in {t.name for t in tools_for(["book_appointments", "qualify_leads"])}
    with pytest.raises(ValueError, match="teleport"):
        tools_for(["teleport"])


def test_check_then_book_books_the_conversations_contact_in_their_timezone(run) -> None:  # type: ignore[no-untyped-def]
    offer = run(calendars.check_availability, {"from_date": str(date.today() + timedelta(days=7))})
    assert offer["ok"] and offer["timezone"] == "America/Chicago" and offer["slots"]
    slot = offer["slots"][0]
    assert slot["start"].endswith(("-06:00", "-05:00"))
    someone_else = run.session.scalars(select(Contact.id).where(Contact.id != run.conversation.contact_id)
                                       .limit(1)).one()
    # a model that tries to book for somebody else: the extra argument is not part of the schema and is dropped
    booked = run(calendars.book_appointment, {"slot_start": slot["start"], "calendar_id": slot["calendar_id"],
                                              "contact_id": str(someone_else)})
    assert booked["ok"], booked
    appointment = run.session.get(Appointment, uuid.UUID(booked["appointment_id"]))
    assert (appointment.contact_id, appointment.source) == (run.conversation.contact_id, "ai_agent")
    again = run(calendars.book_appointment, {"slot_start": slot["start"], "calendar_id": slot["calendar_id"]})
    assert again["ok"] is False and again["error"]["type"] == "SlotTaken" and again["error"]["alternatives"]


def test_another_sub_accounts_calendar_is_simply_not_there(run, db, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    theirs = db.scalars(select(Calendar.id).where(Calendar.sub_account_id == demo.b).limit(1)).one()
    result = run(calendars.book_appointment, {"slot_start": "2027-01-05T10:00:00-06:00", "calendar_id": str(theirs)})
    assert result == {"ok": False, "error": {"type": "NotFound", "message": "No such calendar."}}


def test_the_lead_cannot_touch_another_leads_appointment(run) -> None:  # type: ignore[no-untyped-def]
    other = run.session.scalars(select(Appointment).where(
        Appointment.contact_id != run.conversation.contact_id, Appointment.status == "scheduled").limit(1)).one()
    result = run(calendars.cancel_appointment, {"appointment_id": str(other.id)})
    assert result["error"]["type"] == "NotFound"
    assert run.session.get(Appointment, other.id).status == "scheduled"


def test_a_missing_capability_is_refused_inside_the_tool(run) -> None:  # type: ignore[no-untyped-def]
    result = run(calendars.list_services, {}, capabilities=["answer_faq"])
    assert result["ok"] is False and result["error"]["type"] == "not_permitted"


def test_a_run_without_a_tenant_touches_nothing(run) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionError):
        run(calendars.list_services, {}, agency_id=None)


def test_qualification_answers_are_validated_and_saved(run) -> None:  # type: ignore[no-untyped-def]
    bad = run(crm.update_contact, {"custom_fields": {"party_size": "lots"}})
    assert bad["ok"] is False and bad["error"]["type"] == "InvalidInput"
    good = run(crm.update_contact, {"custom_fields": {"party_size": "40"}, "qualification_status": "qualified"})
    assert good["ok"] and good["contact"]["custom_fields"]["party_size"] == 40
    tagged = run(crm.add_tag, {"tag": "Catering Lead"})
    assert "Catering Lead" in tagged["tags"]


def test_handoff_opens_once_and_pauses_the_bot(run) -> None:  # type: ignore[no-untyped-def]
    conversation = run.conversation
    open_before = run.session.scalar(select(Handoff).where(Handoff.conversation_id == conversation.id,
                                                           Handoff.resolved_at.is_(None)))
    first = run(handoff.request_human_handoff, {"reason": "human_requested", "summary": "Wants a manager."})
    second = run(handoff.request_human_handoff, {"reason": "human_requested", "summary": "Again."})
    assert first["ok"] and second["already_waiting"] is True and first["handoff_id"] == second["handoff_id"]
    assert first["already_waiting"] is (open_before is not None)


def test_report_metric_returns_the_reporting_services_figure(run, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    result = run(reporting_tools.report_metric, {"metric": "show_rate", "period": "month", "anchor": "2026-10-15"},
                 capabilities=["reporting"])
    expected = reporting.build_report(session=run.session, group_by="agency", tz="America/Chicago", period="month",
                                      anchor=date(2026, 10, 15), metrics=["show_rate"]).groups[0].figures["show_rate"]
    assert result["ok"] and result["value"] == str(expected.value) and result["formula"].startswith("showed")
    ranked = run(reporting_tools.compare_campaigns, {"metric": "roi", "anchor": "2026-10-15"},
                 capabilities=["reporting"])
    values = [r["value"] for r in ranked["campaigns"] if r["value"] is not None]
    assert values == sorted(values, key=lambda v: -float(v))


def test_invoice_then_payment_link_through_the_sandbox(run) -> None:  # type: ignore[no-untyped-def]
    from models.sandbox import SandboxDelivery

    catalogue = run(payment_tools.list_products, {})
    one_time = next(p for p in catalogue["products"] if p["every"] is None)
    invoice = run(payment_tools.create_invoice, {"items": [{"price_id": one_time["price_id"], "quantity": 2}]})
    assert invoice["ok"] and invoice["status"] == "open" and invoice["number"].startswith("INV-")
    assert invoice["total"] == str(Decimal(one_time["amount"]) * 2)
    linked = run(payment_tools.send_payment_link, {"invoice_id": invoice["invoice_id"]})
    again = run(payment_tools.send_payment_link, {})  # the latest invoice, the same link
    assert linked["payment_link"].endswith(f"/sandbox/pay/{invoice['invoice_id']}") and again == linked
    recorded = run.session.scalars(select(SandboxDelivery).where(
        SandboxDelivery.request["invoice_number"].astext == invoice["number"])).all()
    assert len(recorded) == 1 and recorded[0].request["amount"] == int(Decimal(invoice["total"]) * 100)
    assert run(payment_tools.invoice_status, {})["due"] == invoice["total"]


def test_another_leads_invoice_is_not_found(run, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    from models.payments import Invoice

    other = run.session.scalars(select(Invoice).where(Invoice.contact_id != run.conversation.contact_id)
                                .limit(1)).one()
    result = run(payment_tools.invoice_status, {"invoice_id": str(other.id)})
    assert result["error"]["type"] == "NotFound"


def test_a_conversation_without_a_contact_gets_a_structured_refusal(run) -> None:  # type: ignore[no-untyped-def]
    result = run(crm.update_contact, {"first_name": "Ana"}, contact_id=None)
    assert result == {"ok": False, "error": {"type": "NoContact", "message": "This conversation has no contact yet."}}
