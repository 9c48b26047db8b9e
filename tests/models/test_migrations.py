"""The migration history builds the models' schema exactly, both ways, and guards every tenant table."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, pool, text

import models
from models.migrate import current_revision, drift, upgrade
from tests import dbutil

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_db(server_url: str):  # type: ignore[no-untyped-def]
    url = dbutil.create_database(server_url, "lp_empty_migration")
    yield url
    dbutil.drop_database(server_url, "lp_empty_migration")


def test_empty_database_upgrades_to_head_with_no_drift(empty_db: str) -> None:
    upgrade(empty_db)

    assert current_revision(empty_db) is not None
    assert drift(empty_db) == []


def test_downgrade_to_base_and_back(empty_db: str) -> None:
    from alembic import command

    from models.migrate import alembic_config

    upgrade(empty_db)
    command.downgrade(alembic_config(empty_db), "base")
    engine = create_engine(empty_db, poolclass=pool.NullPool)
    with engine.connect() as conn:
        left = conn.execute(text(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).scalar_one()
    engine.dispose()
    assert left == 0

    upgrade(empty_db)
    assert drift(empty_db) == []


def test_every_table_with_a_tenant_column_has_row_level_security(owner_engine) -> None:  # type: ignore[no-untyped-def]
    with owner_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.relname, c.relrowsecurity, count(p.polname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
            "LEFT JOIN pg_policy p ON p.polrelid = c.oid "
            "WHERE c.relkind = 'r' AND EXISTS (SELECT 1 FROM information_schema.columns col "
            "  WHERE col.table_name = c.relname AND col.column_name IN ('sub_account_id', 'agency_id')) "
            "GROUP BY c.relname, c.relrowsecurity"
        )).all()
    unguarded = sorted(name for name, rls, policies in rows if name != "provider_events" and not (rls and policies))
    assert len(rows) >= 70
    assert unguarded == []


def test_application_role_is_neither_superuser_nor_owner(app_engine) -> None:  # type: ignore[no-untyped-def]
    with app_engine.connect() as conn:
        superuser, bypass = conn.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )).one()
        owned = conn.execute(text(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        )).scalar_one()
    assert (superuser, bypass, owned) == (False, False, 0)


def test_model_metadata_covers_both_seeds() -> None:
    seed_tables = {
        # entity-relationship seed (its email/SMS campaigns renamed message_campaigns)
        "agencies", "sub_accounts", "users", "roles", "permissions", "role_permissions", "user_agency_memberships",
        "user_sub_account_memberships", "contacts", "tags", "contact_tags", "notes", "tasks", "contact_custom_fields",
        "channels", "conversations", "messages", "conversation_ai_configs", "pipelines", "pipeline_stages",
        "opportunities", "opportunity_stage_history", "opportunity_custom_fields", "calendar_types", "services",
        "calendars", "availability_rules", "appointments", "workflows", "workflow_triggers", "workflow_actions",
        "workflow_executions", "workflow_action_executions", "email_templates", "sms_templates",
        "message_campaigns", "message_campaign_recipients", "email_clicks", "products", "prices",
        "payment_methods", "subscriptions", "invoices", "invoice_line_items", "transactions", "funnels", "pages",
        "forms", "form_submissions", "surveys", "survey_responses", "ai_agents", "knowledge_bases",
        "training_data", "ai_conversation_logs", "activity_logs", "integrations", "webhooks", "webhook_logs",
        "analytics_events",
        # sales-performance seed (clients -> sub_accounts, leads -> contacts, integration_sources -> integrations)
        "sales_calls", "campaigns", "performance_metrics", "financial_records", "custom_stages", "user_feedback",
        "report_templates", "agency_stages", "campaign_calls", "template_metrics", "template_financials",
        # the human queue
        "handoffs",
    }
    assert seed_tables - set(models.metadata.tables) == set()


def test_every_foreign_key_is_served_by_an_index(owner_engine) -> None:  # type: ignore[no-untyped-def]
    """Deletes cascade through FKs; each needs an index led by one of its columns (else a sequential scan)."""
    with owner_engine.connect() as conn:
        unindexed = conn.execute(text(
            "SELECT c.conrelid::regclass::text || '.' || c.conname FROM pg_constraint c "
            "WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace AND NOT EXISTS ("
            "  SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND (i.indkey::int2[])[0] = ANY (c.conkey))"
        )).scalars().all()
    assert unindexed == []


def test_agent_configuration_migration_up_and_down(empty_db: str) -> None:
    from alembic import command

    from models.migrate import alembic_config

    def columns() -> set[str]:
        engine = create_engine(empty_db, poolclass=pool.NullPool)
        with engine.connect() as conn:
            found = set(conn.execute(text(
                "SELECT table_name || '.' || column_name FROM information_schema.columns "
                "WHERE (table_name, column_name) IN (('ai_agents', 'intents'), ('ai_agents', 'languages'), "
                "('services', 'synonyms'))")).scalars())
            check = conn.execute(text("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                      "WHERE conname = 'ck_handoffs_handoff_reason'")).scalar_one()
        engine.dispose()
        return found | ({"urgent"} if "urgent" in check else set())

    upgrade(empty_db)
    assert columns() == {"ai_agents.intents", "ai_agents.languages", "services.synonyms", "urgent"}
    command.downgrade(alembic_config(empty_db), "0012")
    assert columns() == set()
    upgrade(empty_db)
    assert columns() == {"ai_agents.intents", "ai_agents.languages", "services.synonyms", "urgent"}
    assert drift(empty_db) == []
