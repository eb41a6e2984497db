"""privacy rights: consent per purpose (with its source), the record of erasures

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("source", sa.String(length=32), nullable=True))
    # The gate's consent was named community_profile; purposes are now profile and marketing.
    op.execute("UPDATE consents SET purpose = 'profile', source = 'gate' WHERE purpose = 'community_profile'")
    op.create_table("erasures",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("subject_hash", sa.String(length=64), nullable=False),
                    sa.Column("erased_at", sa.DateTime(), nullable=False),
                    sa.Column("actor", sa.String(length=64), nullable=False),
                    sa.Column("summary", sa.JSON(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
                    sa.UniqueConstraint("subject_hash", name=op.f("uq_erasures_subject_hash")))


def downgrade() -> None:
    op.drop_table("erasures")
    op.execute("UPDATE consents SET purpose = 'community_profile' WHERE purpose = 'profile'")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("source")
