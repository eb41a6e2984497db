"""Day-1 tasks and S4 events: poll votes, events (meetups) with their sign-ups and attendance

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Money = sa.Numeric(18, 4)


def upgrade() -> None:
    op.create_table("poll_votes",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("member_id", sa.String(length=128), nullable=False),
                    sa.Column("poll", sa.String(length=64), nullable=False),
                    sa.Column("option", sa.String(length=64), nullable=False),
                    sa.Column("voted_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_votes")),
                    sa.UniqueConstraint("member_id", "poll", name="uq_poll_votes_member_poll"))
    op.create_index(op.f("ix_poll_votes_member_id"), "poll_votes", ["member_id"], unique=False)
    op.create_table("meetups",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("key", sa.String(length=32), nullable=False),
                    sa.Column("title", sa.JSON(), nullable=False),
                    sa.Column("starts_at", sa.DateTime(), nullable=False),
                    sa.Column("duration_minutes", sa.Integer(), nullable=False),
                    sa.Column("checkin_keyword", sa.String(length=32), nullable=True),
                    sa.Column("coupon_name", sa.String(length=64), nullable=False),
                    sa.Column("coupon_value", Money, nullable=False),
                    sa.Column("coupon_hours", sa.Integer(), nullable=False),
                    sa.Column("capacity", sa.Integer(), nullable=True),
                    sa.Column("archived", sa.Boolean(), nullable=False),
                    sa.Column("created_at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_meetups")),
                    sa.UniqueConstraint("key", name=op.f("uq_meetups_key")))
    op.create_table("meetup_signups",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("meetup_id", sa.Integer(), nullable=False),
                    sa.Column("member_id", sa.String(length=128), nullable=False),
                    sa.Column("signed_up_at", sa.DateTime(), nullable=False),
                    sa.Column("attended_at", sa.DateTime(), nullable=True),
                    sa.Column("attended_via", sa.String(length=16), nullable=True),
                    sa.ForeignKeyConstraint(["meetup_id"], ["meetups.id"],
                                            name=op.f("fk_meetup_signups_meetup_id_meetups")),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_meetup_signups")),
                    sa.UniqueConstraint("meetup_id", "member_id", name="uq_meetup_signups_meetup_member"))
    op.create_index(op.f("ix_meetup_signups_meetup_id"), "meetup_signups", ["meetup_id"], unique=False)
    op.create_index(op.f("ix_meetup_signups_member_id"), "meetup_signups", ["member_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_meetup_signups_member_id"), table_name="meetup_signups")
    op.drop_index(op.f("ix_meetup_signups_meetup_id"), table_name="meetup_signups")
    op.drop_table("meetup_signups")
    op.drop_table("meetups")
    op.drop_index(op.f("ix_poll_votes_member_id"), table_name="poll_votes")
    op.drop_table("poll_votes")
