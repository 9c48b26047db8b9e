"""The demo agency: big enough to feel real, deterministic, and covering every tenant table."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from models.migrate import upgrade
from tests import dbutil
from tests.conftest import Demo

pytestmark = pytest.mark.integration

FINGERPRINTS = {
    "contacts": "SELECT md5(string_agg(id::text || coalesce(email, '') || coalesce(phone, ''), ',' ORDER BY id)) "
                "FROM contacts",
    "appointments": "SELECT md5(string_agg(id::text || start_time::text || status, ',' ORDER BY id)) FROM appointments",
    "sales_calls": "SELECT md5(string_agg(id::text || scheduled_date_time::text || call_outcome, ',' ORDER BY id)) "
                   "FROM sales_calls",
    "financial_records": "SELECT md5(string_agg(id::text || amount::text, ',' ORDER BY id)) FROM financial_records",
}


def _fingerprints(url: str) -> dict[str, str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        result = {name: conn.execute(text(sql)).scalar_one() for name, sql in FINGERPRINTS.items()}
    engine.dispose()
    return result


def test_same_seed_gives_the_same_agency(server_url: str) -> None:
    from services.demo_agency import seed_demo

    url = dbutil.create_database(server_url, "lp_demo_determinism")
    try:
        upgrade(url)
        engine = create_engine(url, poolclass=pool.NullPool)
        with Session(engine) as session, session.begin():
            seed_demo(session=session, seed=dbutil.DEMO_SEED, as_of=dbutil.DEMO_AS_OF)
        engine.dispose()
        # the template, not this session's copy: other tests commit into the copy
        assert _fingerprints(url) == _fingerprints(dbutil.url_for(server_url, dbutil.TEMPLATE_DB))
    finally:
        dbutil.drop_database(server_url, "lp_demo_determinism")


def test_demo_is_the_size_the_product_promises(db: Session, demo: Demo) -> None:
    count = lambda sql: db.execute(text(sql)).scalar_one()  # noqa: E731
    # the two restaurants with their history, and the dental clinic just onboarded from its preset
    assert count("SELECT count(*) FROM sub_accounts") == 3
    assert count("SELECT count(*) FROM contacts") >= 500
    assert count("SELECT count(*) FROM contacts c WHERE custom_fields <> '{}' "
                 "AND EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id)") >= 100
    assert count(f"SELECT count(*) FROM pipelines WHERE sub_account_id = '{demo.a}'") == 2
    assert count("SELECT count(*) FROM opportunity_stage_history") > 0
    assert count("SELECT count(*) FROM availability_rules WHERE rule_type = 'override' AND NOT is_active") >= 2
    months = count("SELECT count(DISTINCT date_trunc('month', start_time)) FROM appointments")
    assert months >= 6
    assert count("SELECT count(DISTINCT date_trunc('month', scheduled_date_time)) FROM sales_calls") >= 6
    for kind in ("ad_spend", "payment", "refund"):
        assert count(f"SELECT count(*) FROM financial_records WHERE transaction_type = '{kind}'") > 0, kind
    providers = set(db.execute(text(
        "SELECT DISTINCT i.provider_name FROM financial_records f JOIN integrations i ON i.id = f.integration_source_id"
    )).scalars())
    assert {"meta", "stripe", "whop"} <= providers
    # the restaurants' knowledge; the clinic's starter FAQ (10 entries) is checked by the clinic's own test
    assert count("SELECT min(n) FROM (SELECT count(*) AS n FROM training_data WHERE sub_account_id IN "
                 f"('{demo.a}', '{demo.b}') GROUP BY sub_account_id) s") >= 30
    assert count("SELECT count(DISTINCT sub_account_id) FROM ai_agents") == 3
    roles = set(db.execute(text("SELECT DISTINCT r.role_type FROM users u JOIN roles r ON r.id = u.role_id")).scalars())
    assert roles == {"admin", "agency_user", "client_user"}


def test_show_and_close_rates_are_realistic(db: Session) -> None:
    shown, due, closed = db.execute(text(
        "SELECT count(*) FILTER (WHERE call_outcome IN ('completed', 'closed')), "
        "count(*) FILTER (WHERE call_outcome <> 'scheduled'), count(*) FILTER (WHERE call_outcome = 'closed') "
        "FROM sales_calls"
    )).one()
    assert 0.5 <= shown / due <= 0.9
    assert 0.1 <= closed / shown <= 0.6


def test_every_tenant_table_has_rows_in_both_sub_accounts(db: Session, demo: Demo) -> None:
    tables = db.execute(text(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'sub_account_id' AND table_name NOT IN ('provider_events') ORDER BY 1"
    )).scalars().all()
    missing = [
        (t, s) for t in tables for s in (demo.a, demo.b)
        if not db.execute(text(f"SELECT EXISTS (SELECT 1 FROM {t} WHERE sub_account_id = :s)"), {"s": s}).scalar()
    ]
    assert missing == []


def test_audit_trail_recorded_the_seed(db: Session) -> None:
    created = db.execute(text(
        "SELECT count(*) FROM activity_logs WHERE entity_type = 'contacts' AND action = 'created'"
    )).scalar_one()
    assert created == db.execute(text("SELECT count(*) FROM contacts")).scalar_one()


def test_the_demo_dental_clinic_is_built_from_its_preset(db: Session) -> None:
    from services.agent_config import stored
    from services.agent_presets import get_preset

    preset = get_preset("dental_clinic")
    sub = db.execute(text("SELECT id, name FROM sub_accounts WHERE slug = 'dental-clinic'")).one()
    one = lambda sql: db.execute(text(sql), {"s": sub.id}).scalar_one()  # noqa: E731
    agent = db.execute(text("SELECT name, languages, intents, qualification_questions, pipeline_settings, "
                            "enabled_channels FROM ai_agents WHERE sub_account_id = :s"), {"s": sub.id}).one()
    expected = stored(preset.agent_settings())

    assert (agent.name, agent.languages, agent.intents) == (preset.agent.name, ["en", "es"], expected["intents"])
    assert agent.qualification_questions == expected["qualification_questions"]
    assert agent.pipeline_settings == {"on_qualified": "Qualified", "on_booked": "Appointment Booked"}
    assert one("SELECT count(*) FROM services WHERE sub_account_id = :s AND synonyms <> '[]'") == len(preset.services)
    assert one("SELECT count(*) FROM training_data t JOIN knowledge_bases k ON k.id = t.knowledge_base_id "
               "WHERE k.sub_account_id = :s AND t.embedding IS NOT NULL") == len(preset.faq)
    assert one("SELECT count(*) FROM channels WHERE sub_account_id = :s AND channel_type = 'webchat'") == 1
    assert one("SELECT count(*) FROM calendars WHERE sub_account_id = :s") == 1
    assert one("SELECT count(*) FROM user_sub_account_memberships WHERE sub_account_id = :s") == 1
    assert one("SELECT count(*) FROM contacts WHERE sub_account_id = :s") == 0  # no history: reports unchanged
