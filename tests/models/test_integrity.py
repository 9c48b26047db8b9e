"""Integrity the database enforces on its own: provider retries, contact identity, money that adds up."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from models.conversations import Channel, Conversation, Message
from models.crm import Contact
from models.payments import Invoice, InvoiceLineItem
from tests.conftest import Demo

pytestmark = pytest.mark.integration



def _inbound(conversation: Conversation, provider_id: str) -> dict[str, object]:
    return {
        "id": uuid.uuid4(), "sub_account_id": conversation.sub_account_id, "conversation_id": conversation.id,
        "channel_id": conversation.channel_id, "contact_id": conversation.contact_id, "direction": "inbound",
        "sender_type": "contact", "body": "Do you cater for 40 people?", "status": "received",
        "provider_message_id": provider_id,
    }


def test_a_provider_retry_never_stores_a_message_twice(a) -> None:  # type: ignore[no-untyped-def]
    conversation = a.scalars(select(Conversation).limit(1)).one()
    sid = "SM" + uuid.uuid4().hex

    stored = [
        a.execute(pg_insert(Message).values(_inbound(conversation, sid))
                  .on_conflict_do_nothing().returning(Message.id)).scalar()
        for _ in range(3)
    ]

    assert stored[0] is not None and stored[1:] == [None, None]
    assert a.scalar(select(func.count()).where(Message.provider_message_id == sid)) == 1


def test_duplicate_provider_message_id_on_one_channel_is_refused(a) -> None:  # type: ignore[no-untyped-def]
    conversation = a.scalars(select(Conversation).limit(1)).one()
    sid = "SM" + uuid.uuid4().hex
    a.execute(insert(Message).values(_inbound(conversation, sid)))
    with pytest.raises(IntegrityError, match="uq_messages_channel_provider_id"), a.begin_nested():
        a.execute(insert(Message).values(_inbound(conversation, sid)))


def test_the_same_provider_id_on_another_channel_is_another_message(a) -> None:  # type: ignore[no-untyped-def]
    conversations = a.scalars(select(Conversation).order_by(Conversation.channel_id)).all()
    by_channel = {c.channel_id: c for c in conversations}
    assert len(by_channel) >= 2, "demo needs conversations on two channels"
    first, second = list(by_channel.values())[:2]
    a.execute(insert(Message).values(_inbound(first, "shared-id")))
    a.execute(insert(Message).values(_inbound(second, "shared-id")))


def test_contact_email_is_unique_per_sub_account_case_insensitively(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    existing = a.scalars(select(Contact).where(Contact.email.is_not(None)).limit(1)).one()
    with pytest.raises(IntegrityError, match="uq_contacts_sub_account_email"), a.begin_nested():
        a.add(Contact(agency_id=demo.agency_id, sub_account_id=demo.a, first_name="Dup",
                      email="  " + existing.email.upper() + " "))
        a.flush()


def test_a_soft_deleted_contact_releases_its_email(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    existing = a.scalars(select(Contact).where(Contact.email.is_not(None)).limit(1)).one()
    existing.deleted_at = func.now()
    a.flush()
    a.add(Contact(agency_id=demo.agency_id, sub_account_id=demo.a, first_name="New", email=existing.email))
    a.flush()


def test_contact_phone_must_be_e164(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError, match="phone_e164"), a.begin_nested():
        a.add(Contact(agency_id=demo.agency_id, sub_account_id=demo.a, phone="(718) 555-0100"))
        a.flush()


def test_contact_phone_is_unique_per_sub_account(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    existing = a.scalars(select(Contact).where(Contact.phone.is_not(None)).limit(1)).one()
    with pytest.raises(IntegrityError, match="uq_contacts_sub_account_phone"), a.begin_nested():
        a.add(Contact(agency_id=demo.agency_id, sub_account_id=demo.a, phone=existing.phone))
        a.flush()


def test_contact_agency_must_be_its_sub_accounts_agency(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError, match="fk_contacts_agency_sub_account"), a.begin_nested():
        a.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        a.add(Contact(agency_id=uuid.uuid4(), sub_account_id=demo.a, first_name="Mismatch"))
        a.flush()


def test_invoice_totals_must_add_up(a) -> None:  # type: ignore[no-untyped-def]
    invoice = a.scalars(select(Invoice).limit(1)).one()
    with pytest.raises(IntegrityError, match="total_adds_up"), a.begin_nested():
        invoice.total_amount = invoice.total_amount + Decimal("0.01")
        a.flush()


def test_line_item_amount_is_quantity_times_unit_price(a) -> None:  # type: ignore[no-untyped-def]
    invoice = a.scalars(select(Invoice).limit(1)).one()
    a.add(InvoiceLineItem(sub_account_id=invoice.sub_account_id, invoice_id=invoice.id, description="Extra users",
                          quantity=Decimal("10"), unit_price=Decimal("5.00"), amount=Decimal("50.00")))
    a.flush()
    with pytest.raises(IntegrityError, match="amount_adds_up"), a.begin_nested():
        a.add(InvoiceLineItem(sub_account_id=invoice.sub_account_id, invoice_id=invoice.id, description="Off",
                              quantity=Decimal("3"), unit_price=Decimal("0.10"), amount=Decimal("0.31")))
        a.flush()


def test_an_inbound_address_routes_to_one_channel_only(a, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    sms = a.scalars(select(Channel).where(Channel.channel_type == "sms").limit(1)).one()
    with pytest.raises(IntegrityError, match="uq_channels_type_address"), a.begin_nested():
        a.add(Channel(sub_account_id=demo.a, channel_type="sms", provider="twilio", name="dup", address=sms.address))
        a.flush()
