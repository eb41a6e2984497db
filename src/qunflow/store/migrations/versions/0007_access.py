"""access: console users and their sessions, token scopes and expiry, the audit log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("users",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("name", sa.String(length=64), nullable=False),
                    sa.Column("role", sa.String(length=16), nullable=False),
                    sa.Column("groups", sa.JSON(), nullable=True),
                    sa.Column("password_hash", sa.String(length=200), nullable=False),
                    sa.Column("created_at", sa.DateTime(), nullable=False),
                    sa.Column("disabled_at", sa.DateTime(), nullable=True),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
                    sa.UniqueConstraint("name", name=op.f("uq_users_name")))
    op.create_table("user_sessions",
                    sa.Column("id_hash", sa.String(length=64), nullable=False),
                    sa.Column("user_id", sa.Integer(), nullable=False),
                    sa.Column("csrf", sa.String(length=64), nullable=False),
                    sa.Column("created_at", sa.DateTime(), nullable=False),
                    sa.Column("expires_at", sa.DateTime(), nullable=False),
                    sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                            name=op.f("fk_user_sessions_user_id_users"), ondelete="CASCADE"),
                    sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_user_sessions")))
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table("login_failures",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("key", sa.String(length=128), nullable=False),
                    sa.Column("at", sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")))
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"])
    with op.batch_alter_table("api_tokens") as batch:
        # Tokens made before scopes existed could do everything; they keep that until revoked.
        batch.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("groups", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))
    op.create_table("audit_log",
                    sa.Column("id", sa.Integer(), nullable=False),
                    sa.Column("at", sa.DateTime(), nullable=False),
                    sa.Column("actor", sa.String(length=120), nullable=False),
                    sa.Column("via", sa.String(length=16), nullable=False),
                    sa.Column("action", sa.String(length=120), nullable=False),
                    sa.Column("target", sa.String(length=200), nullable=True),
                    sa.Column("outcome", sa.String(length=16), nullable=False),
                    sa.Column("detail", sa.JSON(), nullable=True),
                    sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")))
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("api_tokens") as batch:
        for column in ("last_used_at", "revoked_at", "expires_at", "groups", "scopes"):
            batch.drop_column(column)
    op.drop_index("ix_login_failures_key_at", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index("ix_user_sessions_user_id", table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_table("users")
