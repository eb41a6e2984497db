"""enrollments: partial indexes on the due timers and the dead letters, and room for HOT updates (issue 15's
due-step claim at 2,000 steps/s on PostgreSQL without a VACUUM between runs).

The claim reads active rows by due_at; finished rows (most of a long-lived table) no longer sit in that index.
Dead letters are read newest first, from an index of their own. PostgreSQL: fillfactor 70 leaves room in
each page, so the claim's lease update (no indexed column) is a HOT update (no new index entries). It
applies to pages written from now on; `VACUUM FULL enrollments` rewrites an existing table with it.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")
DEAD = sa.text("status = 'dead'")


def upgrade() -> None:
    op.drop_index("ix_enrollments_status_due", table_name="enrollments")
    op.create_index("ix_enrollments_active_due", "enrollments", ["due_at"],
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    op.create_index("ix_enrollments_dead_updated", "enrollments", ["updated_at"],
                    sqlite_where=DEAD, postgresql_where=DEAD)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE enrollments SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE enrollments RESET (fillfactor)")
    op.drop_index("ix_enrollments_dead_updated", table_name="enrollments")
    op.drop_index("ix_enrollments_active_due", table_name="enrollments")
    op.create_index("ix_enrollments_status_due", "enrollments", ["status", "due_at"])
