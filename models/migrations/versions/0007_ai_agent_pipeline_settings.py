"""ai agent pipeline settings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the stage a qualified lead's deal opens in, and the stage it moves to when the agent books for the lead
    op.add_column('ai_agents', sa.Column('pipeline_settings', postgresql.JSONB(astext_type=sa.Text()),
                                         server_default=sa.text("'{}'::jsonb"), nullable=False))


def downgrade() -> None:
    op.drop_column('ai_agents', 'pipeline_settings')
