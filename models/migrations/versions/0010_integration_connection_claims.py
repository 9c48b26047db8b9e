"""integrations: an outside account is claimed by one live integration only

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 19:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Stripe Connect events, Whop deliveries and Meta syncs are routed by connection_id: with two live rows
    # holding one account, a second sub-account could claim the first one's events. A unique index sees
    # across row-level security, which no check made inside one tenant's transaction can.
    op.create_index('uq_integrations_provider_connection', 'integrations', ['provider_name', 'connection_id'],
                    unique=True, postgresql_where='connection_id IS NOT NULL AND deleted_at IS NULL')


def downgrade() -> None:
    op.drop_index('uq_integrations_provider_connection', table_name='integrations')
