"""sync_deliveries: signed outbound webhooks to a CRM or warehouse; group_polls: polls posted to a group (issue 13)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
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
    op.create_table("group_polls",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("key", sa.String(length=32), nullable=False),
                    sa.Column("group_key", sa.String(length=64), nullable=False),
                    sa.Column("question", sa.Text(), nullable=False),
                    sa.Column("options", sa.JSON(), nullable=False),
                    sa.Column("posted_at", sa.DateTime(), nullable=False),
                    sa.Column("closes_at", sa.DateTime(), nullable=False),
                    sa.Column("created_by", sa.String(length=64), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_group_polls")),
                    sa.UniqueConstraint("key", name=op.f("uq_group_polls_key")))
    op.create_index(op.f("ix_group_polls_group_key"), "group_polls", ["group_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_group_polls_group_key"), table_name="group_polls")
    op.drop_table("group_polls")
    op.drop_index("ix_sync_deliveries_status_next", table_name="sync_deliveries")
    op.drop_table("sync_deliveries")
