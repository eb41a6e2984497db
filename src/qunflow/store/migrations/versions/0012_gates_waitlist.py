"""gates as versioned documents, the waitlist, operator-edited page texts (issue 12)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gates") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("title", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.create_table("gate_versions",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("key", sa.String(length=64), nullable=False),
                    sa.Column("version", sa.Integer(), nullable=False),
                    sa.Column("source", sa.Text(), nullable=False),
                    sa.Column("digest", sa.String(length=64), nullable=False),
                    sa.Column("file", sa.String(length=500), nullable=False),
                    sa.Column("applied_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_versions")),
                    sa.UniqueConstraint("key", "version", name="uq_gate_versions_key_version"))
    op.create_table("waitlist",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("member_id", sa.String(length=40), nullable=False),
                    sa.Column("entry_point_id", sa.Integer(), nullable=True),
                    sa.Column("tier", sa.String(length=16), nullable=False),
                    sa.Column("status", sa.String(length=16), nullable=False),
                    sa.Column("group_id", sa.Integer(), nullable=True),
                    sa.Column("created_at", sa.DateTime(), nullable=False),
                    sa.Column("invited_at", sa.DateTime(), nullable=True),
                    sa.ForeignKeyConstraint(["member_id"], ["members.id"],
                                            name=op.f("fk_waitlist_member_id_members")),
                    sa.ForeignKeyConstraint(["entry_point_id"], ["entry_points.id"],
                                            name=op.f("fk_waitlist_entry_point_id_entry_points")),
                    sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name=op.f("fk_waitlist_group_id_groups")),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist")),
                    sa.UniqueConstraint("member_id", name=op.f("uq_waitlist_member_id")))
    op.create_index("ix_waitlist_status_created", "waitlist", ["status", "created_at"], unique=False)
    op.create_table("page_texts",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("scope", sa.String(length=32), nullable=False),
                    sa.Column("key", sa.String(length=32), nullable=False),
                    sa.Column("lang", sa.String(length=8), nullable=False),
                    sa.Column("body", sa.Text(), nullable=False),
                    sa.Column("updated_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_page_texts")),
                    sa.UniqueConstraint("scope", "key", "lang", name="uq_page_texts_scope_key_lang"))


def downgrade() -> None:
    op.drop_table("page_texts")
    op.drop_index("ix_waitlist_status_created", table_name="waitlist")
    op.drop_table("waitlist")
    op.drop_table("gate_versions")
    with op.batch_alter_table("gates") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("title")
        batch.drop_column("version")
