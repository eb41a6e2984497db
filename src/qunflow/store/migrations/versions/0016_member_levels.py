"""engagement levels: each member's current level (issue 13)

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
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


def downgrade() -> None:
    op.drop_index("ix_member_levels_level_since", table_name="member_levels")
    op.drop_table("member_levels")
