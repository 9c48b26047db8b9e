"""CRM against the real database, as the application role scoped to sub-account A."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select

from models.conversations import Conversation
from models.crm import Contact, ContactCustomField, Note
from models.db import TenantScope, tenant_session
from services import crm
from services.errors import InvalidInput, NotFound
from tests.conftest import Demo, app_url_for

pytestmark = pytest.mark.integration



@pytest.mark.parametrize(("raw", "e164"), [("(718) 555-0142", "+17185550142"), ("+1 512.555.0199", "+15125550199"),
                                           ("011 1 718 555 0142", "+17185550142")])
def test_phones_are_normalized_to_e164(raw: str, e164: str) -> None:
    assert crm.normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["12", "not a phone", "+1 555 0000"])
def test_bad_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        crm.normalize_phone(raw)


def test_emails_are_normalized_and_validated() -> None:
    assert crm.normalize_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    with pytest.raises(InvalidInput):
        crm.normalize_email("ada@")


def test_an_inbound_number_written_differently_finds_its_contact(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    existing = a.scalars(select(Contact).where(Contact.phone.like("+1718%")).limit(1)).one()
    national = f"({existing.phone[2:5]}) {existing.phone[5:8]}-{existing.phone[8:]}"
    contact, created = crm.match_or_create_contact(session=a, sub_account_id=demo.a, phone=national)
    assert (contact.id, created) == (existing.id, False)


def test_match_or_create_creates_once_and_fills_missing_identity(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    first, created = crm.match_or_create_contact(session=a, sub_account_id=demo.a, phone="+1 718 555 7777",
                                                 defaults={"first_name": "Nia", "lead_source": "sms"})
    again, created_again = crm.match_or_create_contact(session=a, sub_account_id=demo.a, email="NIA@example.com",
                                                       phone="718-555-7777")
    assert (created, created_again, again.id) == (True, False, first.id)
    assert (again.email, again.first_name, again.lead_source) == ("nia@example.com", "Nia", "sms")


def test_concurrent_inbound_from_a_new_number_makes_one_contact(fresh_db_url: str, demo: Demo) -> None:
    engine = create_engine(app_url_for(fresh_db_url), pool_size=10)
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    barrier, ids = threading.Barrier(8), []

    def inbound() -> None:
        barrier.wait()
        with tenant_session(scope, bind=engine) as session:
            contact, _ = crm.match_or_create_contact(session=session, sub_account_id=demo.a, phone="+17185558888")
            ids.append(contact.id)

    threads = [threading.Thread(target=inbound) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with tenant_session(scope, bind=engine) as session:
        stored = session.scalar(select(func.count()).where(Contact.phone == "+17185558888"))
    engine.dispose()
    assert (len(ids), len(set(ids)), stored) == (8, 1, 1)


def test_custom_fields_are_validated_against_their_definitions(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    contact = crm.create_contact(session=a, sub_account_id=demo.a, fields={
        "first_name": "Leo", "custom_fields": {"party_size": "12", "dietary_preferences": ["vegan", "vegan"],
                                               "event_date": "2026-12-31"}})
    assert contact.custom_fields == {"party_size": 12, "dietary_preferences": ["vegan"], "event_date": "2026-12-31"}
    for bad in ({"party_size": "a dozen"}, {"preferred_contact_time": "midnight"}, {"event_date": "31/12/2026"},
                {"favourite_colour": "blue"}):
        with pytest.raises(InvalidInput):
            crm.update_contact(session=a, contact_id=contact.id, changes={"custom_fields": bad})
    crm.update_contact(session=a, contact_id=contact.id, changes={"custom_fields": {"party_size": None}})
    assert "party_size" not in contact.custom_fields


def test_required_custom_fields_are_enforced_on_create(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    a.execute(ContactCustomField.__table__.update().where(ContactCustomField.key == "party_size")
              .values(is_required=True))
    with pytest.raises(InvalidInput, match="party_size"):
        crm.create_contact(session=a, sub_account_id=demo.a, fields={"first_name": "No size", "custom_fields": {}})


def test_tags_are_case_insensitive_and_idempotent(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    contact = crm.create_contact(session=a, sub_account_id=demo.a, fields={"first_name": "Tia"})
    crm.add_tag(session=a, contact_id=contact.id, name="vip")
    crm.add_tag(session=a, contact_id=contact.id, name="  VIP ")
    crm.add_tag(session=a, contact_id=contact.id, name="Wedding 2027")
    assert crm.contact_tags(session=a, contact_id=contact.id) == ["VIP", "Wedding 2027"]
    assert crm.remove_tag(session=a, contact_id=contact.id, name="wedding 2027") is True
    assert crm.contact_tags(session=a, contact_id=contact.id) == ["VIP"]


def test_search_by_words_tags_stage_and_custom_fields(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    target = crm.create_contact(session=a, sub_account_id=demo.a, fields={
        "first_name": "Zebediah", "last_name": "Quartermaine", "email": "zq@example.org", "phone": "+17185554321",
        "lifecycle_stage": "customer", "custom_fields": {"party_size": 44}})
    crm.add_tag(session=a, contact_id=target.id, name="Catering Lead")
    for query in ("zebed", "Quarter", "zq@exa", "555-4321", "zebediah quartermaine"):
        assert [c.id for c in crm.search_contacts(session=a, query=query).items] == [target.id], query
    found = crm.search_contacts(session=a, tags=["catering lead"], lifecycle_stage="customer",
                                custom={"party_size": 44})
    assert [c.id for c in found.items] == [target.id]
    page = crm.search_contacts(session=a, page=2, page_size=25)
    assert page.total >= 300 and len(page.items) == 25


def test_merge_moves_everything_and_frees_the_duplicate_identity(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    keep = crm.create_contact(session=a, sub_account_id=demo.a, fields={
        "first_name": "Maya", "email": "maya@example.com", "custom_fields": {"party_size": 8}})
    conversation = a.scalars(select(Conversation).limit(1)).one()
    dup = a.get(Contact, conversation.contact_id)
    dup_phone, dup_notes = dup.phone, a.scalar(select(func.count()).where(Note.contact_id == dup.id))
    crm.add_tag(session=a, contact_id=dup.id, name="Dup tag")
    crm.add_note(session=a, contact_id=dup.id, body="Called about a party")

    merged = crm.merge_contacts(session=a, keep_id=keep.id, merge_id=dup.id)

    assert merged.phone == dup_phone and merged.email == "maya@example.com"
    assert merged.custom_fields["party_size"] == 8
    assert a.scalar(select(func.count()).where(Note.contact_id == keep.id)) == dup_notes + 1
    assert a.get(Conversation, conversation.id).contact_id == keep.id
    assert "Dup tag" in crm.contact_tags(session=a, contact_id=keep.id)
    with pytest.raises(NotFound):
        crm.get_contact_or_raise(session=a, contact_id=dup.id)


def test_dnd_per_channel(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    contact = crm.create_contact(session=a, sub_account_id=demo.a, fields={"phone": "+17185550001"})
    crm.set_dnd(session=a, contact_id=contact.id, channel="sms", enabled=True, reason="STOP")
    assert crm.is_dnd(contact, "sms") and not crm.is_dnd(contact, "email")
    crm.set_dnd(session=a, contact_id=contact.id, channel="sms", enabled=False)
    assert not crm.is_dnd(contact, "sms")


def test_task_and_conversion(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    contact = crm.create_contact(session=a, sub_account_id=demo.a, fields={"first_name": "Ivy"})
    task = crm.create_task(session=a, contact_id=contact.id, title="Send menu",
                           due_at=datetime.now(UTC) + timedelta(days=1))
    assert task.status == "open"
    with pytest.raises(InvalidInput):
        crm.create_task(session=a, contact_id=contact.id, title="x", due_at=datetime(2027, 1, 1))
    crm.convert_to_customer(session=a, contact_id=contact.id)
    assert (contact.lifecycle_stage, contact.qualification_status) == ("customer", "qualified")


def test_another_sub_accounts_contact_is_not_found(a, db, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    theirs = db.scalars(select(Contact.id).where(Contact.sub_account_id == demo.b).limit(1)).one()
    with pytest.raises(NotFound):
        crm.update_contact(session=a, contact_id=theirs, changes={"first_name": "Hijacked"})
    with pytest.raises(NotFound):
        crm.merge_contacts(session=a, keep_id=a.scalars(select(Contact.id).limit(1)).one(), merge_id=theirs)
    assert uuid.UUID(str(theirs))
