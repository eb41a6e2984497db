"""tier moves: applied `kind: tier_rules` documents, their versions, and the moves (issue 13)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("tier_rule_sets",
                    sa.Column("key", sa.String(length=64), nullable=False),
                    sa.Column("version", sa.Integer(), nullable=False),
                    sa.Column("enabled", sa.Boolean(), nullable=False),
                    sa.Column("updated_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("key", name=op.f("pk_tier_rule_sets")))
    op.create_table("tier_rule_set_versions",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("key", sa.String(length=64), nullable=False),
                    sa.Column("version", sa.Integer(), nullable=False),
                    sa.Column("source", sa.Text(), nullable=False),
                    sa.Column("rule_set", sa.JSON(), nullable=False),
                    sa.Column("digest", sa.String(length=64), nullable=False),
                    sa.Column("file", sa.String(length=500), nullable=False),
                    sa.Column("applied_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_rule_set_versions")),
                    sa.UniqueConstraint("key", "version", name="uq_tier_rule_set_versions_key_version"))
    op.create_table("tier_moves",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("member_id", sa.String(length=40), nullable=False),
                    sa.Column("rule", sa.String(length=140), nullable=False),
                    sa.Column("status", sa.String(length=16), nullable=False),
                    sa.Column("open_key", sa.String(length=40), nullable=True),
                    sa.Column("from_group_id", sa.Integer(), nullable=True),
                    sa.Column("from_tier", sa.String(length=16), nullable=True),
                    sa.Column("to_tier", sa.String(length=16), nullable=False),
                    sa.Column("to_group_id", sa.Integer(), nullable=True),
                    sa.Column("label", sa.String(length=32), nullable=False),
                    sa.Column("leave_old", sa.Boolean(), nullable=False),
                    sa.Column("dm", sa.JSON(), nullable=True),
                    sa.Column("expire_days", sa.Integer(), nullable=False),
                    sa.Column("reason", sa.String(length=200), nullable=True),
                    sa.Column("created_at", sa.DateTime(), nullable=False),
                    sa.Column("claimed_at", sa.DateTime(), nullable=True),
                    sa.Column("offered_at", sa.DateTime(), nullable=True),
                    sa.Column("expires_at", sa.DateTime(), nullable=True),
                    sa.Column("closed_at", sa.DateTime(), nullable=True),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_moves")),
                    sa.UniqueConstraint("label", name=op.f("uq_tier_moves_label")),
                    sa.UniqueConstraint("open_key", name=op.f("uq_tier_moves_open_key")))
    op.create_index(op.f("ix_tier_moves_member_id"), "tier_moves", ["member_id"], unique=False)
    op.create_index("ix_tier_moves_status_expires", "tier_moves", ["status", "expires_at"], unique=False)
    op.create_index("ix_tier_moves_rule_member", "tier_moves", ["rule", "member_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tier_moves_rule_member", table_name="tier_moves")
    op.drop_index("ix_tier_moves_status_expires", table_name="tier_moves")
    op.drop_index(op.f("ix_tier_moves_member_id"), table_name="tier_moves")
    op.drop_table("tier_moves")
    op.drop_table("tier_rule_set_versions")
    op.drop_table("tier_rule_sets")
