"""archive instead of delete: archived_at on channels, campaigns, entry points and groups

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

ARCHIVABLE = ("channels", "campaigns", "entry_points", "groups")


def upgrade() -> None:
    for table in ARCHIVABLE:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("archived_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    for table in reversed(ARCHIVABLE):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("archived_at")
