"""conversations: audit changes of state, not the message counters

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# every column but the ones each message moves (last_message_at, last_inbound_at, unread_count) and
# updated_at: a new message is in the messages table already; an activity_logs row per message told nobody
# anything and cost each inbound text a row-to-JSON diff and an insert
AUDITED = ("sub_account_id", "deleted_at", "channel_id", "contact_id", "assigned_user_id", "status", "subject",
           "external_thread_id", "snoozed_until", "resolved_at")


def upgrade() -> None:
    # reviewed by hand: the same lp_audit() trigger as every entity (see 0001), fired by updates of these columns
    op.execute("DROP TRIGGER audit_conversations ON conversations")
    op.execute(f"CREATE TRIGGER audit_conversations AFTER INSERT OR DELETE OR UPDATE OF {', '.join(AUDITED)} "
               "ON conversations FOR EACH ROW EXECUTE FUNCTION lp_audit()")


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_conversations ON conversations")
    op.execute("CREATE TRIGGER audit_conversations AFTER INSERT OR UPDATE OR DELETE ON conversations "
               "FOR EACH ROW EXECUTE FUNCTION lp_audit()")
