"""experiments: applied `kind: experiment` documents and their versions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("experiments",
                    sa.Column("key", sa.String(length=64), nullable=False),
                    sa.Column("version", sa.Integer(), nullable=False),
                    sa.Column("enabled", sa.Boolean(), nullable=False),
                    sa.Column("updated_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("key", name=op.f("pk_experiments")))
    op.create_table("experiment_versions",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("key", sa.String(length=64), nullable=False),
                    sa.Column("version", sa.Integer(), nullable=False),
                    sa.Column("source", sa.Text(), nullable=False),
                    sa.Column("digest", sa.String(length=64), nullable=False),
                    sa.Column("file", sa.String(length=500), nullable=False),
                    sa.Column("applied_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_versions")),
                    sa.UniqueConstraint("key", "version", name="uq_experiment_versions_key_version"))


def downgrade() -> None:
    op.drop_table("experiment_versions")
    op.drop_table("experiments")
