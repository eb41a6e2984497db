"""gate guard: shared request limits, spent proof-of-work challenges, the coupon cap, join-started seats

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("request_limits",
                    sa.Column("key", sa.String(length=100), nullable=False),
                    sa.Column("tat", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("key", name=op.f("pk_request_limits")))
    op.create_index(op.f("ix_request_limits_tat"), "request_limits", ["tat"], unique=False)
    op.create_table("spent_challenges",
                    sa.Column("signature", sa.String(length=128), nullable=False),
                    sa.Column("expires_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("signature", name=op.f("pk_spent_challenges")))
    op.create_index(op.f("ix_spent_challenges_expires_at"), "spent_challenges", ["expires_at"], unique=False)
    with op.batch_alter_table("join_signals") as batch:
        batch.add_column(sa.Column("coupon_eligible", sa.Boolean(), nullable=False, server_default="1"))
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("join_started_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("join_started_at")
    with op.batch_alter_table("join_signals") as batch:
        batch.drop_column("coupon_eligible")
    op.drop_index(op.f("ix_spent_challenges_expires_at"), table_name="spent_challenges")
    op.drop_table("spent_challenges")
    op.drop_index(op.f("ix_request_limits_tat"), table_name="request_limits")
    op.drop_table("request_limits")
