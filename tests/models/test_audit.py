"""Creates, updates and soft deletes land in activity_logs with a field diff, the user and the sub-account."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from models.activity import ActivityLog
from models.crm import Contact
from models.db import TenantScope
from tests.conftest import Demo

pytestmark = pytest.mark.integration


@pytest.fixture
def actor(db, demo: Demo) -> uuid.UUID:  # type: ignore[no-untyped-def]
    from models.tenancy import User

    return db.scalars(select(User.id).where(User.email == "john@restaurant.com")).one()


def _trail(session, entity_id: uuid.UUID) -> list[ActivityLog]:  # type: ignore[no-untyped-def]
    return list(session.scalars(select(ActivityLog).where(ActivityLog.entity_id == entity_id)
                                .order_by(ActivityLog.created_at, ActivityLog.action)))


def test_update_writes_old_and_new_values_with_the_acting_user(scoped, demo: Demo, actor: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a, user_id=actor,
                                 ip_address="192.168.1.1", user_agent="Mozilla/5.0"))
    contact = session.scalars(select(Contact).where(Contact.lifecycle_stage == "lead").limit(1)).one()
    old_score = contact.lead_score
    contact.lifecycle_stage, contact.lead_score = "customer", old_score + 20
    session.flush()

    [entry] = [e for e in _trail(session, contact.id) if e.action == "updated"]
    assert entry.changes == {
        "lifecycle_stage": {"old": "lead", "new": "customer"},
        "lead_score": {"old": old_score, "new": old_score + 20},
    }
    assert (entry.user_id, entry.sub_account_id, entry.agency_id) == (actor, demo.a, demo.agency_id)
    assert (entry.entity_type, entry.ip_address, entry.user_agent) == ("contacts", "192.168.1.1", "Mozilla/5.0")


def test_create_soft_delete_and_restore_are_each_recorded(scoped, demo: Demo, actor: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a, user_id=actor))
    contact = Contact(agency_id=demo.agency_id, sub_account_id=demo.a, first_name="Ada", email="ada@example.com")
    session.add(contact)
    session.flush()
    contact.deleted_at = func.now()
    session.flush()
    contact.deleted_at = None
    session.flush()

    trail = _trail(session, contact.id)
    assert [e.action for e in trail] == ["created", "deleted", "restored"]
    assert trail[0].changes["email"] == {"old": None, "new": "ada@example.com"}
    assert set(trail[1].changes) == {"deleted_at"}


def test_an_update_that_changes_nothing_leaves_no_trail(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    contact = session.scalars(select(Contact).limit(1)).one()
    before = len(_trail(session, contact.id))
    contact.first_name = contact.first_name
    session.execute(Contact.__table__.update().where(Contact.id == contact.id).values(lead_score=Contact.lead_score))
    assert len(_trail(session, contact.id)) == before


def test_secrets_never_reach_the_trail(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    from models.tenancy import User

    session = scoped(TenantScope(agency_id=demo.agency_id))
    user = session.scalars(select(User).limit(1)).one()
    user.password_hash, user.name = "$argon2id$new", "Renamed"
    session.flush()
    latest = _trail(session, user.id)[-1]
    assert set(latest.changes) == {"name"}
