"""expiring invite links (Telegram expire_date), one live link per label, WeCom group welcome templates

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_LIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("invite_links") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.drop_constraint("uq_invite_links_platform_group_label", type_="unique")
    op.create_index(op.f("ix_invite_links_expires_at"), "invite_links", ["expires_at"], unique=False)
    op.create_index("uq_invite_links_live", "invite_links", ["platform", "group_id", "label"], unique=True,
                    sqlite_where=_LIVE, postgresql_where=_LIVE)
    op.create_table("welcome_templates",
                    sa.Column("platform", sa.String(length=32), nullable=False),
                    sa.Column("lang", sa.String(length=8), nullable=False),
                    sa.Column("template_id", sa.String(length=128), nullable=False),
                    sa.Column("digest", sa.String(length=64), nullable=False),
                    sa.Column("updated_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("platform", "lang", name=op.f("pk_welcome_templates")))


def downgrade() -> None:
    op.drop_table("welcome_templates")
    op.drop_index("uq_invite_links_live", table_name="invite_links")
    op.drop_index(op.f("ix_invite_links_expires_at"), table_name="invite_links")
    with op.batch_alter_table("invite_links") as batch:
        batch.create_unique_constraint("uq_invite_links_platform_group_label", ["platform", "group_id", "label"])
        batch.drop_column("expires_at")
