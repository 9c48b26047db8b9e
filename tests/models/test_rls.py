"""Row-level security: a transaction scoped to sub-account A never reads, updates or deletes B's rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from models.db import TenantScope, apply_scope
from tests.conftest import Demo

pytestmark = pytest.mark.integration


def _tenant_tables(owner_engine) -> list[str]:  # type: ignore[no-untyped-def]
    with owner_engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'sub_account_id' AND table_name <> 'provider_events' ORDER BY table_name"
        )).scalars())


def _owner_counts(owner_engine, tables: list[str], sub_account_id: uuid.UUID) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with owner_engine.connect() as conn:
        count = "SELECT count(*) FROM {} WHERE sub_account_id = :s"
        return {t: conn.execute(text(count.format(t)), {"s": sub_account_id}).scalar_one() for t in tables}


def test_scope_a_reads_updates_and_deletes_nothing_of_b(owner_engine, scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    tables = _tenant_tables(owner_engine)
    before_b = _owner_counts(owner_engine, tables, demo.b)
    owned_by_a = _owner_counts(owner_engine, tables, demo.a)
    assert all(before_b.values()), f"demo data missing for B in {[t for t, n in before_b.items() if not n]}"

    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    for table in tables:
        visible = dict(session.execute(text(
            f"SELECT sub_account_id, count(*) FROM {table} GROUP BY sub_account_id"
        )).all())
        if table == "roles":
            visible.pop(None)  # system and agency-wide roles belong to no sub-account and are shared on purpose
        assert visible == ({demo.a: owned_by_a[table]} if owned_by_a[table] else {}), table

        writable = session.execute(text("SELECT has_table_privilege(current_user, :t, 'UPDATE, DELETE')"),
                                   {"t": table}).scalar()
        if not writable:  # e.g. activity_logs: the application may not edit the trail at all
            continue
        params = {"b": demo.b}
        updated = session.execute(text(f"UPDATE {table} SET sub_account_id = sub_account_id WHERE sub_account_id = :b"),
                                  params).rowcount
        hijacked = session.execute(text(f"UPDATE {table} SET sub_account_id = :b WHERE sub_account_id = :b"),
                                   params).rowcount
        deleted = session.execute(text(f"DELETE FROM {table} WHERE sub_account_id = :b"), params).rowcount
        assert (updated, hijacked, deleted) == (0, 0, 0), table

    assert _owner_counts(owner_engine, tables, demo.b) == before_b


def test_a_cannot_write_a_row_into_b(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    with pytest.raises(ProgrammingError, match="row-level security"):
        session.execute(text("INSERT INTO tags (id, sub_account_id, name) VALUES (gen_random_uuid(), :b, 'x')"),
                        {"b": demo.b})


def test_a_cannot_move_its_own_row_into_b(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    with pytest.raises(ProgrammingError, match="row-level security"):
        session.execute(text(
            "UPDATE contacts SET sub_account_id = :b, agency_id = agency_id WHERE id = "
            "(SELECT id FROM contacts LIMIT 1)"
        ), {"b": demo.b})


def test_no_tenant_bound_sees_nothing(app_engine, owner_engine) -> None:  # type: ignore[no-untyped-def]
    tables = _tenant_tables(owner_engine) + ["agencies", "users", "custom_stages"]
    with app_engine.connect() as conn:
        seen = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
        shared_roles = conn.execute(text("SELECT bool_and(is_system AND agency_id IS NULL) FROM roles")).scalar()
    assert shared_roles is True
    seen.pop("roles")
    assert set(seen.values()) == {0}


def test_a_sub_account_of_another_agency_cannot_be_borrowed(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """Binding B's id under a foreign agency id yields nothing: the pair must match."""
    session = scoped(TenantScope(agency_id=uuid.uuid4(), sub_account_id=demo.b))
    assert session.execute(text("SELECT count(*) FROM contacts")).scalar_one() == 0


def test_agency_scope_sees_all_its_sub_accounts_and_only_them(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id))
    seen = set(session.execute(text("SELECT DISTINCT sub_account_id FROM contacts")).scalars())
    assert seen == {demo.a, demo.b}
    agencies = session.execute(text("SELECT id FROM agencies")).scalars().all()
    assert agencies == [demo.agency_id]


def test_client_scope_sees_agency_wide_rows_only_from_agency_view(owner_engine, scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    """Agency roll-up metrics (sub_account_id NULL) are for agency staff, not for a client's scope."""
    agency_wide = "SELECT count(*) FROM performance_metrics WHERE sub_account_id IS NULL"
    with owner_engine.connect() as conn:
        exists = conn.execute(text(agency_wide)).scalar_one()
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    leaked = session.execute(text(agency_wide)).scalar_one()
    apply_scope(session, TenantScope(agency_id=demo.agency_id))
    agency_view = session.execute(text(agency_wide)).scalar_one()
    assert (leaked, agency_view) == (0, exists) and exists > 0


def test_activity_log_is_read_only_for_the_application(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    session = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    with pytest.raises(ProgrammingError, match="permission denied"):
        session.execute(text("DELETE FROM activity_logs"))


def test_agency_admin_creates_a_sub_account_but_a_client_scope_cannot(scoped, demo: Demo) -> None:  # type: ignore[no-untyped-def]
    from models.tenancy import SubAccount

    session = scoped(TenantScope(agency_id=demo.agency_id))
    created = SubAccount(agency_id=demo.agency_id, name="New client", slug=f"new-{uuid.uuid4().hex[:6]}")
    session.add(created)
    session.flush()
    assert created.account_status == "active"  # server defaults came back through RETURNING
    apply_scope(session, TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    with pytest.raises(ProgrammingError, match="row-level security"), session.begin_nested():
        session.add(SubAccount(agency_id=demo.agency_id, name="Sneaky", slug=f"sneaky-{uuid.uuid4().hex[:6]}"))
        session.flush()
