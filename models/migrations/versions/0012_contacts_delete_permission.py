"""permissions: contacts.delete, apart from contacts.write

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 20:20:00

Deleting or merging contacts needed only contacts.write, so a business's staff could empty its CRM. The new
permission goes to the system roles that run a business or an agency (not Client Staff), and to every custom
role that holds contacts.write today: its agency defined it when writing included deleting.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRANTEES = """
SELECT r.id FROM roles r
WHERE (r.is_system AND r.name IN ('Agency Admin', 'Agency User', 'Client Manager'))
   OR (NOT r.is_system AND EXISTS (SELECT 1 FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
                                   WHERE rp.role_id = r.id AND p.key = 'contacts.write'))
"""


def upgrade() -> None:
    # an empty catalogue (a database not seeded yet) gets the permission from the seed itself
    op.execute("INSERT INTO permissions (id, key, name, category) SELECT gen_random_uuid(), 'contacts.delete', "
               "'Contacts Delete', 'CRM' WHERE EXISTS (SELECT 1 FROM permissions) "
               "ON CONFLICT (key) DO NOTHING")
    op.execute(f"INSERT INTO role_permissions (role_id, permission_id) SELECT g.id, p.id FROM ({GRANTEES}) g "
               "JOIN permissions p ON p.key = 'contacts.delete' ON CONFLICT DO NOTHING")
    op.execute(f"UPDATE roles SET permissions = permissions || '[\"contacts.delete\"]'::jsonb "
               f"WHERE id IN ({GRANTEES}) AND NOT permissions ? 'contacts.delete' "
               "AND EXISTS (SELECT 1 FROM permissions WHERE key = 'contacts.delete')")


def downgrade() -> None:
    op.execute("UPDATE roles SET permissions = permissions - 'contacts.delete'")
    op.execute("DELETE FROM permissions WHERE key = 'contacts.delete'")
