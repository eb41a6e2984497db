"""keyword rules: rule sets and their versions, the staff-alert webhook outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("keyword_rule_sets",
    sa.Column("key", sa.String(length=64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("key", name=op.f("pk_keyword_rule_sets"))
    )
    op.create_table("keyword_rule_set_versions",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(length=64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("rule_set", sa.JSON(), nullable=False),
    sa.Column("digest", sa.String(length=64), nullable=False),
    sa.Column("file", sa.String(length=500), nullable=False),
    sa.Column("applied_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_keyword_rule_set_versions")),
    sa.UniqueConstraint("key", "version", name="uq_keyword_rule_set_versions_key_version")
    )
    op.create_table("staff_alerts",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("cause", sa.String(length=200), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_at", sa.DateTime(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("sent_at", sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_alerts")),
    sa.UniqueConstraint("cause", name=op.f("uq_staff_alerts_cause"))
    )
    op.create_index("ix_staff_alerts_status_next", "staff_alerts", ["status", "next_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_staff_alerts_status_next", table_name="staff_alerts")
    op.drop_table("staff_alerts")
    op.drop_table("keyword_rule_set_versions")
    op.drop_table("keyword_rule_sets")
