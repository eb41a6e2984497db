"""incentives: the coupon ledger, referral codes and referrals, reward programs, rewards, budgets, join signals

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("join_signals",
    sa.Column("member_id", sa.String(length=128), nullable=False),
    sa.Column("device", sa.String(length=64), nullable=True),
    sa.Column("ip", sa.String(length=64), nullable=True),
    sa.Column("ip_ua", sa.String(length=64), nullable=True),
    sa.Column("phone", sa.String(length=64), nullable=True),
    sa.Column("disposable", sa.Boolean(), nullable=False),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("member_id", name=op.f("pk_join_signals"))
    )
    op.create_index(op.f("ix_join_signals_device"), "join_signals", ["device"], unique=False)
    op.create_index(op.f("ix_join_signals_ip"), "join_signals", ["ip"], unique=False)
    op.create_index(op.f("ix_join_signals_ip_ua"), "join_signals", ["ip_ua"], unique=False)
    op.create_index(op.f("ix_join_signals_phone"), "join_signals", ["phone"], unique=False)
    op.create_table("referral_codes",
    sa.Column("code", sa.String(length=16), nullable=False),
    sa.Column("member_id", sa.String(length=128), nullable=False),
    sa.Column("entry_code", sa.String(length=64), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("code", name=op.f("pk_referral_codes")),
    sa.UniqueConstraint("member_id", name=op.f("uq_referral_codes_member_id"))
    )
    op.create_table("referrals",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("inviter_id", sa.String(length=128), nullable=False),
    sa.Column("invitee_id", sa.String(length=128), nullable=False),
    sa.Column("campaign", sa.String(length=64), nullable=True),
    sa.Column("channel", sa.String(length=64), nullable=True),
    sa.Column("joined_at", sa.DateTime(), nullable=False),
    sa.Column("qualified_at", sa.DateTime(), nullable=True),
    sa.Column("fraud_level", sa.String(length=8), nullable=True),
    sa.Column("fraud_reasons", sa.JSON(), nullable=True),
    sa.Column("scored_at", sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    sa.UniqueConstraint("invitee_id", name=op.f("uq_referrals_invitee_id"))
    )
    op.create_index(op.f("ix_referrals_inviter_id"), "referrals", ["inviter_id"], unique=False)
    op.create_table("reward_budgets",
    sa.Column("scope", sa.String(length=200), nullable=False),
    sa.Column("period", sa.String(length=10), nullable=False),
    sa.Column("committed", sa.Numeric(precision=18, scale=4), nullable=False),
    sa.PrimaryKeyConstraint("scope", "period", name=op.f("pk_reward_budgets"))
    )
    op.create_table("reward_program_versions",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(length=64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("program", sa.JSON(), nullable=False),
    sa.Column("digest", sa.String(length=64), nullable=False),
    sa.Column("file", sa.String(length=500), nullable=False),
    sa.Column("applied_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_program_versions")),
    sa.UniqueConstraint("key", "version", name="uq_reward_program_versions_key_version")
    )
    op.create_table("reward_programs",
    sa.Column("key", sa.String(length=64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("key", name=op.f("pk_reward_programs"))
    )
    op.create_table("rewards",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("cause", sa.String(length=200), nullable=False),
    sa.Column("program", sa.String(length=64), nullable=False),
    sa.Column("program_version", sa.Integer(), nullable=False),
    sa.Column("rule", sa.String(length=64), nullable=False),
    sa.Column("member_id", sa.String(length=128), nullable=False),
    sa.Column("role", sa.String(length=8), nullable=False),
    sa.Column("referral_id", sa.Integer(), nullable=True),
    sa.Column("coupon_name", sa.String(length=64), nullable=False),
    sa.Column("value", sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column("valid_days", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("release_at", sa.DateTime(), nullable=False),
    sa.Column("fraud_level", sa.String(length=8), nullable=True),
    sa.Column("fraud_reasons", sa.JSON(), nullable=True),
    sa.Column("coupon_id", sa.Integer(), nullable=True),
    sa.Column("order_ref", sa.String(length=128), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("decided_at", sa.DateTime(), nullable=True),
    sa.Column("decided_by", sa.String(length=64), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
    sa.UniqueConstraint("cause", name=op.f("uq_rewards_cause"))
    )
    op.create_index(op.f("ix_rewards_member_id"), "rewards", ["member_id"], unique=False)
    op.create_index(op.f("ix_rewards_order_ref"), "rewards", ["order_ref"], unique=False)
    op.create_index("ix_rewards_status_release", "rewards", ["status", "release_at"], unique=False)
    op.create_table("coupon_ledger",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("coupon_id", sa.Integer(), nullable=False),
    sa.Column("entry", sa.String(length=16), nullable=False),
    sa.Column("from_state", sa.String(length=16), nullable=False),
    sa.Column("to_state", sa.String(length=16), nullable=False),
    sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(length=64), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(["coupon_id"], ["coupons.id"], name=op.f("fk_coupon_ledger_coupon_id_coupons")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_ledger"))
    )
    op.create_index(op.f("ix_coupon_ledger_coupon_id"), "coupon_ledger", ["coupon_id"], unique=False)
    op.add_column("coupons", sa.Column("reward_id", sa.Integer(), nullable=True))
    op.add_column("coupons", sa.Column("order_ref", sa.String(length=128), nullable=True))
    op.add_column("coupons", sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.add_column("coupons", sa.Column("redeemed_by", sa.String(length=128), nullable=True))
    op.create_index(op.f("ix_coupons_redeemed_by"), "coupons", ["redeemed_by"], unique=False)
    # Coupons issued before the ledger existed get their issue entry, so the ledger balances from the start.
    op.execute("INSERT INTO coupon_ledger (coupon_id, entry, from_state, to_state, amount, at, actor) "
               "SELECT id, 'issue', 'budget', status, value, issued_at, 'engine' FROM coupons")


def downgrade() -> None:
    op.drop_index(op.f("ix_coupons_redeemed_by"), table_name="coupons")
    with op.batch_alter_table("coupons") as batch:
        batch.drop_column("redeemed_by")
        batch.drop_column("updated_at")
        batch.drop_column("order_ref")
        batch.drop_column("reward_id")
    op.drop_table("coupon_ledger")
    op.drop_table("rewards")
    op.drop_table("reward_programs")
    op.drop_table("reward_program_versions")
    op.drop_table("reward_budgets")
    op.drop_table("referrals")
    op.drop_table("referral_codes")
    op.drop_table("join_signals")
