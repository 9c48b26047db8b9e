"""Analytics events: recorded where leads act (the widget's page views, messages, bookings), the seed's
contact journey, and an ordered conversion funnel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import app
from channels import webchat
from models.activity import AnalyticsEvent
from models.calendars import Calendar
from models.conversations import Channel
from models.db import TenantScope, owner_session, tenant_session
from services import analytics
from services.availability import available_slots
from services.calendars import BookingRequest, book_appointment
from tests.api.test_rest import key_for
from tests.conftest import Demo

pytestmark = pytest.mark.integration


def test_a_visitors_journey_is_recorded_where_it_happens(demo: Demo) -> None:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    with owner_session() as session:
        key = session.scalars(select(Channel.address).where(Channel.sub_account_id == demo.a,
                                                                    Channel.channel_type == "webchat")).one()
    client = TestClient(app)
    with client.websocket_connect(f"/widget/ws?key={key}") as socket:
        socket.receive_json()
        socket.send_json({"type": "start", "email": f"journey-{uuid.uuid4().hex[:6]}@example.com"})
        token = socket.receive_json()["token"]
        socket.receive_json()  # transcript
        socket.send_json({"type": "page_view", "url": "https://restaurant.example/menu", "referrer": "https://g.co"})
        socket.send_json({"type": "message", "body": "Can I book a table?", "client_id": "j1"})
        while socket.receive_json()["type"] != "ack":
            pass
    visitor = webchat.resume(key, token)
    with tenant_session(scope) as session:
        calendar = session.scalars(select(Calendar).order_by(Calendar.created_at)).first()
        slot = available_slots(session=session, calendar_id=calendar.id, start=datetime.now(UTC).date(),
                               end=(datetime.now(UTC) + timedelta(days=14)).date())[0]
        book_appointment(session=session, request=BookingRequest(calendar_id=calendar.id,
                                                                 contact_id=visitor.contact_id, start=slot.start))
    manager = key_for(demo, "john@restaurant.com")
    steps = client.get(f"/v1/sub-accounts/{demo.a}/contacts/{visitor.contact_id}/journey", headers=manager).json()
    assert [s["event"] for s in steps] == ["page_viewed", "message_received", "appointment_booked"]
    assert steps[0]["properties"]["page_url"] == "https://restaurant.example/menu"


def test_the_funnel_counts_each_step_after_the_one_before(demo: Demo) -> None:
    scope = TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a)
    t0 = datetime(2019, 3, 1, 12, tzinfo=UTC)  # a window no other test writes into
    with tenant_session(scope) as session:
        from models.crm import Contact

        people = [Contact(sub_account_id=demo.a, agency_id=demo.agency_id, first_name=f"F{i}",
                          email=f"funnel{i}-{uuid.uuid4().hex[:6]}@example.com") for i in range(4)]
        session.add_all(people)
        session.flush()
        plan = {0: ["page_viewed", "message_received", "appointment_booked"], 1: ["page_viewed", "message_received"],
                2: ["page_viewed"], 3: ["message_received", "page_viewed"]}  # 3 messaged before viewing: not counted
        for i, events in plan.items():
            for n, name in enumerate(events):
                session.add(AnalyticsEvent(sub_account_id=demo.a, contact_id=people[i].id, event_name=name,
                                           created_at=t0 + timedelta(minutes=10 * n)))
        session.flush()
        result = analytics.funnel(session=session, steps=["page_viewed", "message_received", "appointment_booked"],
                                  start=t0 - timedelta(hours=1), end=t0 + timedelta(days=1))
    assert [(s["contacts"], s["from_previous"]) for s in result["steps"]] == [(4, None), (2, 0.5), (1, 0.5)]
    assert result["steps"][2]["from_first"] == 0.25
