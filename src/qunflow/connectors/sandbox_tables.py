"""The sandbox platform's own records: a simulated outside world, kept in its own database file."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()


sandbox_users = Table(
    "sandbox_users", metadata,
    Column("id", String(40), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("started_bot", Boolean, nullable=False, default=False),
    Column("created_at", DateTime, nullable=False),
)

sandbox_chats = Table(
    "sandbox_chats", metadata,
    Column("id", String(40), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

sandbox_chat_members = Table(
    "sandbox_chat_members", metadata,
    Column("chat_id", ForeignKey("sandbox_chats.id"), primary_key=True),
    Column("user_id", ForeignKey("sandbox_users.id"), primary_key=True),
    Column("status", String(16), nullable=False),  # member, left
    Column("invite_name", String(32)),
    Column("joined_at", DateTime, nullable=False),
)

sandbox_invites = Table(
    "sandbox_invites", metadata,
    Column("token", String(40), primary_key=True),
    Column("chat_id", ForeignKey("sandbox_chats.id"), nullable=False),
    Column("name", String(32), nullable=False),
    Column("creates_join_request", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("member_limit", Integer),  # None: anyone with the link; 1: a single-use link
    Column("used", Integer, nullable=False, default=0),
    Column("revoked", Boolean, nullable=False, default=False),
)

sandbox_join_requests = Table(
    "sandbox_join_requests", metadata,
    Column("id", Integer, primary_key=True),
    Column("chat_id", ForeignKey("sandbox_chats.id"), nullable=False),
    Column("user_id", ForeignKey("sandbox_users.id"), nullable=False),
    Column("invite_name", String(32)),
    Column("status", String(16), nullable=False),  # pending, approved, declined
    Column("created_at", DateTime, nullable=False),
)

sandbox_messages = Table(
    "sandbox_messages", metadata,
    Column("id", Integer, primary_key=True),
    Column("chat_id", String(40)),  # a group message
    Column("dm_user_id", String(40)),  # or a private message to this user
    Column("sender", String(40), nullable=False),  # "bot" or a user id
    Column("text", Text, nullable=False),
    Column("sent_at", DateTime, nullable=False),
    Column("client_key", String(200), unique=True),  # a repeated key returns the first message (like Feishu's uuid)
)
Index("ix_sandbox_messages_chat", sandbox_messages.c.chat_id)

# What the platform told qunflow, kept until qunflow acknowledged it (a webhook answered 200), and
# delivered again until then: a crash or a failed handler loses no join.
sandbox_updates = Table(
    "sandbox_updates", metadata,
    Column("id", String(32), primary_key=True),  # sent as update_id: a repeat is recognised as one
    Column("body", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", DateTime, nullable=False),  # delivered again from then on, unless acknowledged
    Column("acked_at", DateTime),
)
Index("ix_sandbox_updates_due", sandbox_updates.c.acked_at, sandbox_updates.c.next_at)
Index("ix_sandbox_messages_dm", sandbox_messages.c.dm_user_id)
