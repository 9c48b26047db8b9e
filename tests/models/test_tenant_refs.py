"""Every reference between tenant rows is proved by the database: a composite key through the tenant, or (where
a key cannot say it) a trigger. Read from the live schema, so a table added later without either fails here."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.db import TenantScope
from tests.conftest import Demo

pytestmark = pytest.mark.integration

# every single-column key from a table carrying a tenant column to a table carrying one, with the trigger that
# covers it (if any): the schema's own answer to "can this reference cross tenants?"
UNTIED = """
SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, c.confrelid::regclass::text AS target,
       (SELECT string_agg(encode(t.tgargs, 'escape'), ' ') FROM pg_trigger t
        WHERE t.tgrelid = c.conrelid AND t.tgname IN ('tenant_member_refs', 'tenant_agency_refs')) AS covered_by
FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND a.attname NOT IN ('sub_account_id', 'agency_id')
  AND EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = c.conrelid
              AND x.attname IN ('sub_account_id', 'agency_id'))
  AND EXISTS (SELECT 1 FROM pg_attribute y WHERE y.attrelid = c.confrelid
              AND y.attname IN ('sub_account_id', 'agency_id'))
"""


def test_every_reference_between_tenant_tables_is_tied_to_the_tenant(owner_engine: Engine) -> None:
    with owner_engine.connect() as conn:
        rows = conn.execute(text(UNTIED)).all()
    uncovered = sorted(f"{r.tbl}.{r.col} -> {r.target}" for r in rows
                       if r.col not in (r.covered_by or "").split("\\000"))
    assert uncovered == [], uncovered
    assert len(rows) >= 15  # users, roles, custom stages and integrations really are referenced untied


def _refused(session: Session, statement: str, **params: object) -> str:
    savepoint = session.begin_nested()
    try:
        with pytest.raises(IntegrityError) as refused:
            session.execute(text(statement), params)
    finally:
        savepoint.rollback()
    assert refused.value.orig.sqlstate == "23503"  # type: ignore[union-attr]
    return str(refused.value.orig.diag.column_name or refused.value.orig.diag.constraint_name)  # type: ignore[union-attr]


def test_a_tenant_cannot_point_at_another_tenants_rows_by_any_statement(scoped, demo: Demo,  # type: ignore[no-untyped-def]
                                                                          owner_engine: Engine) -> None:
    with owner_engine.connect() as conn:
        one = lambda sql, **p: conn.execute(text(sql), p).scalar()  # noqa: E731
        b_campaign = one("SELECT id FROM campaigns WHERE sub_account_id = :s LIMIT 1", s=demo.b)
        b_stage = one("SELECT id FROM pipeline_stages WHERE sub_account_id = :s LIMIT 1", s=demo.b)
        a_deal = one("SELECT id FROM opportunities WHERE sub_account_id = :s LIMIT 1", s=demo.a)
        a_contact = one("SELECT id FROM contacts WHERE sub_account_id = :s LIMIT 1", s=demo.a)
        bob = one("SELECT id FROM users WHERE email = 'bob@restaurant.com'")
        john = one("SELECT id FROM users WHERE email = 'john@restaurant.com'")
        admin = one("SELECT id FROM users WHERE email = 'admin@digitalmarketing.com'")
    a = scoped(TenantScope(agency_id=demo.agency_id, sub_account_id=demo.a))
    assert _refused(a, "UPDATE contacts SET campaign_id = :v WHERE id = :c", v=b_campaign, c=a_contact) \
        == "fk_contacts_campaign_id_campaigns"
    _refused(a, "UPDATE opportunities SET stage_id = :v WHERE id = :o", v=b_stage, o=a_deal)
    assert _refused(a, "UPDATE contacts SET assigned_user_id = :v WHERE id = :c", v=bob, c=a_contact) \
        == "assigned_user_id"
    assert _refused(a, "INSERT INTO notes (id, sub_account_id, contact_id, body, user_id) "
                       "VALUES (:i, :s, :c, 'x', :u)", i=uuid.uuid4(), s=demo.a, c=a_contact, u=bob) == "user_id"
    # a member of A, and an agency member (who may act in every sub-account), are fine
    a.execute(text("UPDATE contacts SET assigned_user_id = :v WHERE id = :c"), {"v": john, "c": a_contact})
    a.execute(text("UPDATE contacts SET assigned_user_id = :v WHERE id = :c"), {"v": admin, "c": a_contact})
