"""sync_deliveries: signed outbound webhooks to a CRM or warehouse (issue 13)

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("sync_deliveries",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("target", sa.String(length=64), nullable=False),
                    sa.Column("event_id", sa.String(length=128), nullable=False),
                    sa.Column("event_seq", sa.BigInteger(), nullable=False),
                    sa.Column("type", sa.String(length=64), nullable=False),
                    sa.Column("payload", sa.JSON(), nullable=False),
                    sa.Column("status", sa.String(length=16), nullable=False),
                    sa.Column("attempts", sa.Integer(), nullable=False),
                    sa.Column("next_at", sa.DateTime(), nullable=False),
                    sa.Column("last_status", sa.Integer(), nullable=True),
                    sa.Column("last_error", sa.Text(), nullable=True),
                    sa.Column("created_at", sa.DateTime(), nullable=False),
                    sa.Column("sent_at", sa.DateTime(), nullable=True),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_deliveries")),
                    sa.UniqueConstraint("target", "event_id", name="uq_sync_deliveries_target_event"))
    op.create_index("ix_sync_deliveries_status_next", "sync_deliveries", ["status", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_sync_deliveries_status_next", table_name="sync_deliveries")
    op.drop_table("sync_deliveries")
