"""automation: playbooks and versions, enrollments (durable timers), tags, inbox, coupons

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_member", "events", ["member_id"], unique=False)
    op.create_table("automation_state",
    sa.Column("name", sa.String(length=128), nullable=False),
    sa.Column("value", sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint("name", name=op.f("pk_automation_state"))
    )
    op.create_table("coupons",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("code", sa.String(length=32), nullable=False),
    sa.Column("cause", sa.String(length=200), nullable=False),
    sa.Column("member_id", sa.String(length=128), nullable=False),
    sa.Column("name", sa.String(length=64), nullable=False),
    sa.Column("value", sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("issued_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
    sa.UniqueConstraint("cause", name=op.f("uq_coupons_cause")),
    sa.UniqueConstraint("code", name=op.f("uq_coupons_code"))
    )
    op.create_index(op.f("ix_coupons_member_id"), "coupons", ["member_id"], unique=False)
    op.create_table("enrollments",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("playbook_key", sa.String(length=64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("subject", sa.String(length=128), nullable=False),
    sa.Column("occurrence", sa.String(length=200), nullable=False),
    sa.Column("step", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("due_at", sa.DateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("lease_owner", sa.String(length=64), nullable=True),
    sa.Column("lease_until", sa.DateTime(), nullable=True),
    sa.Column("context", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    sa.UniqueConstraint("playbook_key", "subject", "occurrence", name="uq_enrollments_playbook_subject_occurrence")
    )
    op.create_index("ix_enrollments_status_due", "enrollments", ["status", "due_at"], unique=False)
    op.create_table("inbox",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(length=16), nullable=False),
    sa.Column("cause", sa.String(length=200), nullable=False),
    sa.Column("member_id", sa.String(length=128), nullable=True),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("assignee", sa.String(length=64), nullable=True),
    sa.Column("due_at", sa.DateTime(), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("done_at", sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
    sa.UniqueConstraint("cause", name=op.f("uq_inbox_cause"))
    )
    op.create_table("member_tags",
    sa.Column("member_id", sa.String(length=128), nullable=False),
    sa.Column("tag", sa.String(length=64), nullable=False),
    sa.Column("added_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("member_id", "tag", name=op.f("pk_member_tags"))
    )
    op.create_table("playbook_versions",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(length=64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("digest", sa.String(length=64), nullable=False),
    sa.Column("file", sa.String(length=500), nullable=False),
    sa.Column("applied_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_versions")),
    sa.UniqueConstraint("key", "version", name="uq_playbook_versions_key_version")
    )
    op.create_table("playbooks",
    sa.Column("key", sa.String(length=64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("key", name=op.f("pk_playbooks"))
    )


def downgrade() -> None:
    op.drop_index("ix_events_member", table_name="events")
    op.drop_table("coupons")
    op.drop_table("inbox")
    op.drop_table("member_tags")
    op.drop_table("automation_state")
    op.drop_table("enrollments")
    op.drop_table("playbook_versions")
    op.drop_table("playbooks")
