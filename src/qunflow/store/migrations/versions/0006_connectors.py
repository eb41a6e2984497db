"""connectors: the outbox's retry columns, shared send limits, inbound de-duplication, invite links

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("private", sa.Boolean(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("marketing", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("context", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("on_sent", sa.JSON(), nullable=True))
    op.create_index("ix_deliveries_status_next", "deliveries", ["status", "next_at"], unique=False)
    # Playbook sends were recorded with kind marketing/service; the kind is now what was sent.
    op.execute("UPDATE deliveries SET marketing = (kind = 'marketing'), kind = 'playbook' "
               "WHERE kind IN ('marketing', 'service')")
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("unreachable_at", sa.DateTime(), nullable=True))
    op.create_table("send_limits",
                    sa.Column("key", sa.String(length=200), nullable=False),
                    sa.Column("tat", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("key", name=op.f("pk_send_limits")))
    op.create_table("inbound_updates",
                    sa.Column("platform", sa.String(length=32), nullable=False),
                    sa.Column("key", sa.String(length=128), nullable=False),
                    sa.Column("status", sa.String(length=16), nullable=False),
                    sa.Column("received_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("platform", "key", name=op.f("pk_inbound_updates")))
    op.create_table("invite_links",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("platform", sa.String(length=32), nullable=False),
                    sa.Column("group_id", sa.Integer(), nullable=False),
                    sa.Column("label", sa.String(length=64), nullable=False),
                    sa.Column("url", sa.Text(), nullable=False),
                    sa.Column("qr_url", sa.Text(), nullable=True),
                    sa.Column("handle", sa.Text(), nullable=True),
                    sa.Column("join_request", sa.Boolean(), nullable=False),
                    sa.Column("created_at", sa.DateTime(), nullable=False),
                    sa.Column("revoked_at", sa.DateTime(), nullable=True),
                    sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name=op.f("fk_invite_links_group_id_groups")),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_links")),
                    sa.UniqueConstraint("platform", "group_id", "label", name="uq_invite_links_platform_group_label"))


def downgrade() -> None:
    op.drop_table("invite_links")
    op.drop_table("inbound_updates")
    op.drop_table("send_limits")
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("unreachable_at")
    op.drop_index("ix_deliveries_status_next", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        for name in ("on_sent", "lease_until", "expires_at", "next_at", "attempts", "context", "body", "marketing",
                     "private"):
            batch.drop_column(name)
