"""engagement levels: each member's current level; pool members (issue 13)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("member_levels",
                    sa.Column("member_id", sa.String(length=40), nullable=False),
                    sa.Column("level", sa.String(length=16), nullable=False),
                    sa.Column("score", sa.Integer(), nullable=False),
                    sa.Column("since", sa.Date(), nullable=False),
                    sa.Column("as_of", sa.Date(), nullable=False),
                    sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_levels")))
    op.create_index("ix_member_levels_level_since", "member_levels", ["level", "since"], unique=False)
    op.create_table("pool_members",
                    sa.Column("pool", sa.String(length=64), nullable=False),
                    sa.Column("member_id", sa.String(length=40), nullable=False),
                    sa.Column("entered_at", sa.DateTime(), nullable=False),
                    sa.Column("source", sa.String(length=80), nullable=False),
                    sa.PrimaryKeyConstraint("pool", "member_id", name=op.f("pk_pool_members")))


def downgrade() -> None:
    op.drop_table("pool_members")
    op.drop_index("ix_member_levels_level_since", table_name="member_levels")
    op.drop_table("member_levels")
