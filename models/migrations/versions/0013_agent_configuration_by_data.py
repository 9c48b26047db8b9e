"""agents configured by data: custom intents and languages of an AI agent, synonyms of a service, handoff
reason `urgent`

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:00:00

What a business offers, asks and says comes from its configuration (a vertical preset copied and edited), so
one agent serves a restaurant, a dental clinic or a plumber in English and Spanish. Qualification questions
keep living in ai_agents.qualification_questions (JSONB) and only gain optional keys, so they need no DDL.
`handoff_reason` is a CHECK constraint (a non-native enum), widened here; the downgrade refuses while any
handoff still has the reason `urgent` (re-labelling them silently would lose what happened).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASONS = ('human_requested', 'lack_of_information', 'failed_to_resolve', 'negative_sentiment',
           'missing_capability', 'manual')
CHECK = 'ck_handoffs_handoff_reason'


def _reasons(values: tuple[str, ...]) -> str:
    return "reason IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.add_column('ai_agents', sa.Column('intents', postgresql.JSONB(astext_type=sa.Text()),
                                         server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.add_column('ai_agents', sa.Column('languages', postgresql.JSONB(astext_type=sa.Text()),
                                         server_default=sa.text("'[\"en\"]'::jsonb"), nullable=False))
    op.add_column('services', sa.Column('synonyms', postgresql.JSONB(astext_type=sa.Text()),
                                        server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.drop_constraint(op.f(CHECK), 'handoffs', type_='check')
    op.create_check_constraint('handoff_reason', 'handoffs', _reasons((*REASONS, 'urgent')))


def downgrade() -> None:
    op.execute("DO $$ BEGIN IF EXISTS (SELECT 1 FROM handoffs WHERE reason = 'urgent') THEN RAISE EXCEPTION "
               "'handoffs with reason urgent exist: re-label them before downgrading'; END IF; END $$")
    op.drop_constraint(op.f(CHECK), 'handoffs', type_='check')
    op.create_check_constraint('handoff_reason', 'handoffs', _reasons(REASONS))
    op.drop_column('services', 'synonyms')
    op.drop_column('ai_agents', 'languages')
    op.drop_column('ai_agents', 'intents')
