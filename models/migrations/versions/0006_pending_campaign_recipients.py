"""pending campaign recipients index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 17:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a campaign batch takes the next recipients still waiting for their message: without this, every batch
    # walks past the ones already done and batches slow down as a big campaign goes on
    op.create_index('ix_message_campaign_recipients_pending', 'message_campaign_recipients',
                    ['message_campaign_id'], unique=False,
                    postgresql_where=sa.text("message_id IS NULL AND status = 'queued'"))


def downgrade() -> None:
    op.drop_index('ix_message_campaign_recipients_pending', table_name='message_campaign_recipients',
                  postgresql_where=sa.text("message_id IS NULL AND status = 'queued'"))
