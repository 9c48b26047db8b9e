"""conversations: counters updated in place (HOT); analytics events: two index entries fewer per event

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every inbound or outbound message moves its conversation's last_message_at. With that column in an index,
    # no such update could be a heap-only (HOT) update: each wrote a new entry into all seven of the table's
    # indexes. The inbox never used it from the index either: it lists `status <> 'resolved'` ordered by
    # `last_message_at DESC NULLS LAST`, which an ascending (sub_account_id, status, last_message_at) index
    # cannot give in order. Free room on every page (fillfactor) lets the new row version stay on its page.
    op.drop_index('ix_conversations_inbox', table_name='conversations')
    op.create_index('ix_conversations_inbox', 'conversations', ['sub_account_id', 'status'], unique=False)
    # the inbox index leads with sub_account_id: the single-column one only doubled it
    op.drop_index('ix_conversations_sub_account_id', table_name='conversations')
    op.execute("ALTER TABLE conversations SET (fillfactor = 80)")
    # analytics events: most carry no session (messages, stage changes...): they need no entry in its index;
    # (sub_account_id, event_name, created_at) serves every lookup by sub-account
    op.drop_index('ix_analytics_events_session', table_name='analytics_events')
    op.create_index('ix_analytics_events_session', 'analytics_events', ['session_id'], unique=False,
                    postgresql_where='session_id IS NOT NULL')
    op.drop_index('ix_analytics_events_sub_account_id', table_name='analytics_events')


def downgrade() -> None:
    op.create_index('ix_analytics_events_sub_account_id', 'analytics_events', ['sub_account_id'], unique=False)
    op.drop_index('ix_analytics_events_session', table_name='analytics_events')
    op.create_index('ix_analytics_events_session', 'analytics_events', ['session_id'], unique=False)
    op.execute("ALTER TABLE conversations RESET (fillfactor)")
    op.create_index('ix_conversations_sub_account_id', 'conversations', ['sub_account_id'], unique=False)
    op.drop_index('ix_conversations_inbox', table_name='conversations')
    op.create_index('ix_conversations_inbox', 'conversations', ['sub_account_id', 'status', 'last_message_at'],
                    unique=False)
