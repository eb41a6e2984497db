"""member identity keys (external id, phone hash) for resolving orders; merge candidates and merges

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("member_keys",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("kind", sa.String(length=16), nullable=False),
                    sa.Column("key", sa.String(length=128), nullable=False),
                    sa.Column("member_id", sa.String(length=128), nullable=False),
                    sa.Column("linked_at", sa.DateTime(), nullable=False),
                    sa.Column("source", sa.String(length=32), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_member_keys")),
                    sa.UniqueConstraint("kind", "key", name="uq_member_keys_kind_key"))
    op.create_index(op.f("ix_member_keys_member_id"), "member_keys", ["member_id"], unique=False)
    op.create_table("member_merges",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("keep_id", sa.String(length=128), nullable=False),
                    sa.Column("merged_id", sa.String(length=128), nullable=False),
                    sa.Column("reason", sa.String(length=32), nullable=False),
                    sa.Column("status", sa.String(length=16), nullable=False),
                    sa.Column("found_at", sa.DateTime(), nullable=False),
                    sa.Column("decided_at", sa.DateTime(), nullable=True),
                    sa.Column("decided_by", sa.String(length=64), nullable=True),
                    sa.Column("moved", sa.JSON(), nullable=True),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_member_merges")),
                    sa.UniqueConstraint("keep_id", "merged_id", name="uq_member_merges_pair"))
    op.create_index(op.f("ix_member_merges_keep_id"), "member_merges", ["keep_id"], unique=False)
    op.create_index(op.f("ix_member_merges_merged_id"), "member_merges", ["merged_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_member_merges_merged_id"), table_name="member_merges")
    op.drop_index(op.f("ix_member_merges_keep_id"), table_name="member_merges")
    op.drop_table("member_merges")
    op.drop_index(op.f("ix_member_keys_member_id"), table_name="member_keys")
    op.drop_table("member_keys")
