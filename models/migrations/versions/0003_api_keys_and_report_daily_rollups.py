"""api keys and report daily rollups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 11:47:48.309214
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from leadpilot.settings import get_settings


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ROLLUP_SQL = """
-- Add one row's contribution (or, negated, remove it) to its (sub-account, campaign, local day) total.
-- A sub-account deleted in the same statement (cascades) has nothing left to total: skipped.
CREATE FUNCTION lp_rollup_add(sub uuid, camp uuid, at timestamptz, n_booked int, n_showed int, n_closed int,
                              d_revenue numeric, d_refunds numeric, d_spend numeric)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
  INSERT INTO report_daily_rollups AS r (sub_account_id, campaign_id, day, booked, showed, closed,
                                         revenue, refunds, ad_spend)
  SELECT s.id, camp, (at AT TIME ZONE s.timezone)::date, n_booked, n_showed, n_closed, d_revenue, d_refunds, d_spend
  FROM sub_accounts s WHERE s.id = sub
  ON CONFLICT (sub_account_id, campaign_id, day) DO UPDATE SET
    booked = r.booked + excluded.booked, showed = r.showed + excluded.showed, closed = r.closed + excluded.closed,
    revenue = r.revenue + excluded.revenue, refunds = r.refunds + excluded.refunds,
    ad_spend = r.ad_spend + excluded.ad_spend
$$;

CREATE FUNCTION lp_rollup_sales_calls() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL THEN
    PERFORM lp_rollup_add(OLD.sub_account_id, OLD.campaign_id, OLD.scheduled_date_time, -1,
                          -(OLD.call_outcome IN ('completed', 'closed'))::int, -(OLD.call_outcome = 'closed')::int,
                          0, 0, 0);
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL THEN
    PERFORM lp_rollup_add(NEW.sub_account_id, NEW.campaign_id, NEW.scheduled_date_time, 1,
                          (NEW.call_outcome IN ('completed', 'closed'))::int, (NEW.call_outcome = 'closed')::int,
                          0, 0, 0);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION lp_rollup_financial_records() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.payment_status = 'paid' THEN
    PERFORM lp_rollup_add(OLD.sub_account_id, OLD.campaign_id, OLD.transaction_date, 0, 0, 0,
      -CASE WHEN OLD.transaction_type = 'payment' THEN OLD.amount ELSE 0 END,
      -CASE WHEN OLD.transaction_type = 'refund' THEN OLD.amount ELSE 0 END,
      -CASE WHEN OLD.transaction_type = 'ad_spend' THEN OLD.amount ELSE 0 END);
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.payment_status = 'paid' THEN
    PERFORM lp_rollup_add(NEW.sub_account_id, NEW.campaign_id, NEW.transaction_date, 0, 0, 0,
      CASE WHEN NEW.transaction_type = 'payment' THEN NEW.amount ELSE 0 END,
      CASE WHEN NEW.transaction_type = 'refund' THEN NEW.amount ELSE 0 END,
      CASE WHEN NEW.transaction_type = 'ad_spend' THEN NEW.amount ELSE 0 END);
  END IF;
  RETURN NULL;
END $$;

-- Recompute one sub-account's totals (all with NULL): after its timezone changes, or after a bulk load that
-- ran with triggers off (session_replication_role = replica).
CREATE FUNCTION lp_rollup_rebuild(sub uuid) RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = public
AS $$
  DELETE FROM report_daily_rollups WHERE sub IS NULL OR sub_account_id = sub;
  INSERT INTO report_daily_rollups (sub_account_id, campaign_id, day, booked, showed, closed, revenue, refunds,
                                    ad_spend)
  SELECT x.sub_account_id, x.campaign_id, (x.at AT TIME ZONE s.timezone)::date, sum(x.booked), sum(x.showed),
         sum(x.closed), sum(x.revenue), sum(x.refunds), sum(x.spend)
  FROM (
    SELECT sub_account_id, campaign_id, scheduled_date_time AS at, 1 AS booked,
           (call_outcome IN ('completed', 'closed'))::int AS showed, (call_outcome = 'closed')::int AS closed,
           0::numeric AS revenue, 0::numeric AS refunds, 0::numeric AS spend
    FROM sales_calls WHERE deleted_at IS NULL AND (sub IS NULL OR sub_account_id = sub)
    UNION ALL
    SELECT sub_account_id, campaign_id, transaction_date, 0, 0, 0,
           CASE WHEN transaction_type = 'payment' THEN amount ELSE 0 END,
           CASE WHEN transaction_type = 'refund' THEN amount ELSE 0 END,
           CASE WHEN transaction_type = 'ad_spend' THEN amount ELSE 0 END
    FROM financial_records WHERE payment_status = 'paid' AND (sub IS NULL OR sub_account_id = sub)
  ) x JOIN sub_accounts s ON s.id = x.sub_account_id
  GROUP BY 1, 2, 3;
$$;

CREATE FUNCTION lp_rollup_sub_account_timezone() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS $$
BEGIN
  IF NEW.timezone IS DISTINCT FROM OLD.timezone THEN
    PERFORM lp_rollup_rebuild(NEW.id);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER rollup_sales_calls AFTER INSERT OR DELETE OR UPDATE OF sub_account_id, campaign_id,
  scheduled_date_time, call_outcome, deleted_at ON sales_calls FOR EACH ROW EXECUTE FUNCTION lp_rollup_sales_calls();
CREATE TRIGGER rollup_financial_records AFTER INSERT OR DELETE OR UPDATE OF sub_account_id, campaign_id,
  transaction_date, amount, payment_status, transaction_type ON financial_records
  FOR EACH ROW EXECUTE FUNCTION lp_rollup_financial_records();
CREATE TRIGGER rollup_sub_account_timezone AFTER UPDATE OF timezone ON sub_accounts
  FOR EACH ROW EXECUTE FUNCTION lp_rollup_sub_account_timezone();
"""


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('report_daily_rollups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('sub_account_id', sa.Uuid(), nullable=False),
    sa.Column('campaign_id', sa.Uuid(), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('booked', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('showed', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('closed', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('revenue', sa.Numeric(precision=14, scale=2), server_default=sa.text('0'), nullable=False),
    sa.Column('refunds', sa.Numeric(precision=14, scale=2), server_default=sa.text('0'), nullable=False),
    sa.Column('ad_spend', sa.Numeric(precision=14, scale=2), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['sub_account_id'], ['sub_accounts.id'], name=op.f('fk_report_daily_rollups_sub_account_id_sub_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_daily_rollups'))
    )
    op.create_index(op.f('ix_report_daily_rollups_campaign_id'), 'report_daily_rollups', ['campaign_id'], unique=False)
    op.create_index('uq_report_daily_rollups_key', 'report_daily_rollups', ['sub_account_id', 'campaign_id', 'day'], unique=True, postgresql_nulls_not_distinct=True)
    op.create_table('api_keys',
    sa.Column('agency_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('sub_account_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['agency_id', 'sub_account_id'], ['sub_accounts.agency_id', 'sub_accounts.id'], name='fk_api_keys_agency_sub_account', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_api_keys_agency_id_agencies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sub_account_id'], ['sub_accounts.id'], name=op.f('fk_api_keys_sub_account_id_sub_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    op.create_index(op.f('ix_api_keys_agency_id'), 'api_keys', ['agency_id'], unique=False)
    op.create_index(op.f('ix_api_keys_sub_account_id'), 'api_keys', ['sub_account_id'], unique=False)
    op.create_index(op.f('ix_api_keys_user_id'), 'api_keys', ['user_id'], unique=False)
    # ### end Alembic commands ###
    # reviewed by hand: tenant isolation, audit, grants (as in 0001), then the rollup's maintenance
    role = get_settings().app_db_role
    visible = "sub_account_id = ANY ((SELECT lp_visible_sub_accounts())::uuid[])"
    op.execute("ALTER TABLE report_daily_rollups ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON report_daily_rollups FOR ALL USING ({visible})")
    # written by the triggers below only
    op.execute(f'GRANT SELECT ON report_daily_rollups TO "{role}"')
    op.execute("ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY")
    # as the other agency rows that may belong to one sub-account: agency-wide keys on the agency view only
    own = ("agency_id = lp_current_agency() AND (sub_account_id = ANY ((SELECT lp_visible_sub_accounts())::uuid[])"
           " OR (sub_account_id IS NULL AND lp_current_sub_account() IS NULL))")
    op.execute(f"CREATE POLICY tenant_isolation ON api_keys FOR ALL USING ({own}) WITH CHECK ({own})")
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO "{role}"')
    op.execute("CREATE TRIGGER audit_api_keys AFTER INSERT OR UPDATE OR DELETE ON api_keys "
               "FOR EACH ROW EXECUTE FUNCTION lp_audit()")
    op.execute("CREATE TRIGGER touch_api_keys BEFORE UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION lp_touch_updated_at()")
    op.execute(ROLLUP_SQL)
    # the trigger functions call these as their (definer) owner; nobody else needs to
    op.execute("REVOKE EXECUTE ON FUNCTION lp_rollup_rebuild(uuid), "
               "lp_rollup_add(uuid, uuid, timestamptz, int, int, int, numeric, numeric, numeric) FROM PUBLIC")
    op.execute("SELECT lp_rollup_rebuild(NULL)")


def downgrade() -> None:
    for trigger, table in (("rollup_sales_calls", "sales_calls"), ("rollup_financial_records", "financial_records"),
                           ("rollup_sub_account_timezone", "sub_accounts")):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for fn in ("lp_rollup_sales_calls()", "lp_rollup_financial_records()", "lp_rollup_sub_account_timezone()",
               "lp_rollup_rebuild(uuid)", "lp_rollup_add(uuid, uuid, timestamptz, int, int, int, numeric, numeric, numeric)"):
        op.execute(f"DROP FUNCTION {fn}")
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index(op.f('ix_api_keys_user_id'), table_name='api_keys')
    op.drop_index(op.f('ix_api_keys_sub_account_id'), table_name='api_keys')
    op.drop_index(op.f('ix_api_keys_agency_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_index('uq_report_daily_rollups_key', table_name='report_daily_rollups', postgresql_nulls_not_distinct=True)
    op.drop_index(op.f('ix_report_daily_rollups_campaign_id'), table_name='report_daily_rollups')
    op.drop_table('report_daily_rollups')
    # ### end Alembic commands ###
