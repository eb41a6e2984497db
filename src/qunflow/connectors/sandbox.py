"""The sandbox: a built-in chat platform with real records, and qunflow's connector to it.

`SandboxPlatform` is the outside world (groups, people, messages, join requests, rate limits),
kept in its own SQLite file. `SandboxConnector` is qunflow's side and goes only through the
`Connector` port, exactly as a real platform's connector would: inbound updates arrive as signed
JSON (like a webhook), outbound calls may raise `RateLimited`.

Like a real webhook with retries, an update is stored with the change it reports (a join, a message)
and delivered again until qunflow acknowledged it; and like Feishu's `uuid`, a send's key makes it
idempotent and lets qunflow ask whether a message with that key arrived (`find_sent`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, func, insert, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.connectors import sandbox_tables as t
from qunflow.connectors.base import (
    Capabilities,
    Fix,
    Host,
    Inbound,
    InviteLink,
    JoinRequested,
    MemberJoined,
    MemberLeft,
    MessagePosted,
    SendResult,
    Update,
)
from qunflow.connectors.registry import PlatformSettings, PlatformSpec
from qunflow.domain.ratelimit import TokenBucket
from qunflow.errors import InvalidInput, NotFound, PlatformError, RateLimited, Unauthorized

SIGNATURE_HEADER = "x-sandbox-signature"
BOT = "bot"
Clock = Callable[[], datetime]
REDELIVER_AFTER = timedelta(seconds=10)  # an update not acknowledged by then is delivered again ...
REDELIVER_MAX = timedelta(minutes=5)  # ... and again, twice as late each time, at least this often
KEEP_ACKED = timedelta(days=1)
log = logging.getLogger("qunflow.sandbox")


def _fast_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # A simulation: fast over durable.
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    # Deleted and rewritten text is zeroed, not left in free space: forget_user need not rebuild the file.
    dbapi_connection.execute("PRAGMA secure_delete=ON")


# PRAGMA user_version of a sandbox file every write of which zeroed what it freed (made by this version, or
# rebuilt once by forget_user); 0 in a file an older qunflow wrote.
WRITTEN_SECURELY = 1


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class RateLimits:
    bot_per_second: float = 30  # Telegram-like defaults
    group_per_minute: float = 20
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def check(self, key: str, rate: float, per: float, now: datetime) -> None:
        bucket = self.buckets.setdefault(key, TokenBucket(rate, per))
        wait = bucket.take(now)
        if wait > 0:
            raise RateLimited(f"sandbox: too many requests for {key}", retry_after=round(wait, 3),
                              zh=f"沙盒:{key} 的请求过于频繁")


# Columns added after the first sandbox files were made (create_all adds tables, not columns).
_LATER_COLUMNS: dict[str, list[tuple[str, str, str | None]]] = {
    "sandbox_messages": [("client_key", "VARCHAR(200)",
                          "CREATE UNIQUE INDEX uq_sandbox_messages_client_key ON sandbox_messages (client_key)")],
    "sandbox_invites": [("member_limit", "INTEGER", None), ("used", "INTEGER NOT NULL DEFAULT 0", None),
                        ("revoked", "BOOLEAN NOT NULL DEFAULT 0", None)],
}


def _add_later_columns(engine: Engine) -> None:
    with engine.begin() as conn:
        for table, columns in _LATER_COLUMNS.items():
            present = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")}
            for name, ddl, index in columns:
                if name not in present:
                    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")
                    if index:
                        conn.exec_driver_sql(index)


class SandboxPlatform:
    """The simulated platform. Its methods are what people (and the bot API) do on it."""

    def __init__(self, path: Path | str, *, clock: Clock = utc_now, secret: str | None = None) -> None:
        url = "sqlite://" if str(path) == ":memory:" else f"sqlite:///{path}"
        self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(self.engine, "connect", _fast_sqlite)
        new_file = not inspect(self.engine).has_table(t.sandbox_users.name)
        t.metadata.create_all(self.engine)
        if new_file:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"PRAGMA user_version={WRITTEN_SECURELY}")
        _add_later_columns(self.engine)
        self.clock = clock
        self.secret = secret or secrets.token_hex(16)
        self.limits = RateLimits()
        self.subscribers: list[Callable[[dict[str, str], bytes], None]] = []

    # --- delivery of updates, signed like a webhook ---
    def subscribe(self, callback: Callable[[dict[str, str], bytes], None]) -> None:
        self.subscribers.append(callback)

    def sign(self, body: bytes) -> str:
        return hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def _record(self, conn: Connection, kind: str, **data: Any) -> tuple[str, bytes]:
        """Store an update in the transaction of the change it reports; `_push` delivers it after the commit."""
        now = self.clock()
        update_id = secrets.token_hex(8)
        body = json.dumps({"kind": kind, "update_id": update_id, "at": now.isoformat(), **data}).encode()
        conn.execute(insert(t.sandbox_updates).values(id=update_id, body=body.decode(), created_at=now, attempts=0,
                                                      next_at=now + REDELIVER_AFTER))
        return update_id, body

    def _push(self, update_id: str, body: bytes) -> bool:
        """Deliver one update to every subscriber; acknowledged when none raised, else delivered again later
        (the person's own action on the platform succeeded either way, as on a real platform)."""
        if not self.subscribers:
            return False
        headers = {SIGNATURE_HEADER: self.sign(body), "content-type": "application/json"}
        try:
            for callback in self.subscribers:
                callback(headers, body)
        except Exception as exc:
            # The type only: a database error's text can carry the update's personal fields.
            log.warning("sandbox: update %s not acknowledged (%s); it will be delivered again",
                        update_id, type(exc).__name__)
            log.debug("sandbox: update %s failed", update_id, exc_info=True)
            return False
        with self.engine.begin() as conn:
            conn.execute(update(t.sandbox_updates).where(t.sandbox_updates.c.id == update_id)
                         .values(acked_at=self.clock()))
        return True

    def redeliver(self, *, limit: int = 200) -> int:
        """Deliver again the updates not acknowledged in time (the platform's webhook retries); returns how
        many were acknowledged now. Each is claimed first, so two processes do not deliver it at once."""
        now = self.clock()
        u = t.sandbox_updates.c
        with self.engine.connect() as conn:
            due = conn.execute(select(u.id, u.body, u.attempts, u.next_at).where(u.acked_at.is_(None), u.next_at <= now)
                               .order_by(u.created_at).limit(limit)).all()
        done = 0
        for row in due:
            later = now + min(REDELIVER_AFTER * 2 ** min(row.attempts + 1, 10), REDELIVER_MAX)
            with self.engine.begin() as conn:
                claimed = conn.execute(update(t.sandbox_updates).where(u.id == row.id, u.next_at == row.next_at,
                                                                       u.acked_at.is_(None))
                                       .values(attempts=row.attempts + 1, next_at=later)).rowcount
            if claimed and self._push(row.id, row.body.encode()):
                done += 1
        with self.engine.begin() as conn:
            conn.execute(delete(t.sandbox_updates).where(u.acked_at.is_not(None), u.acked_at < now - KEEP_ACKED))
        return done

    def unacknowledged(self) -> int:
        """Updates qunflow has not acknowledged yet."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.sandbox_updates)
                                    .where(t.sandbox_updates.c.acked_at.is_(None))).scalar_one())

    # --- groups and people ---
    def create_chat(self, title: str, chat_id: str | None = None) -> str:
        chat_id = chat_id or "c" + secrets.token_hex(6)
        with self.engine.begin() as conn:
            exists = conn.execute(select(t.sandbox_chats.c.id).where(t.sandbox_chats.c.id == chat_id)).first()
            if not exists:
                conn.execute(insert(t.sandbox_chats).values(id=chat_id, title=title, created_at=self.clock()))
        return chat_id

    def ensure_user(self, user_id: str, display_name: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(select(t.sandbox_users.c.id).where(t.sandbox_users.c.id == user_id)).first():
                conn.execute(insert(t.sandbox_users).values(id=user_id, display_name=display_name,
                                                            started_bot=False, created_at=self.clock()))

    def create_invite(self, chat_id: str, name: str, join_request: bool, member_limit: int | None = None) -> str:
        if len(name) > 32:
            raise InvalidInput("sandbox: an invite link name is at most 32 characters",
                               zh="沙盒:邀请链接名称最多 32 个字符")
        if member_limit is not None and join_request:
            raise InvalidInput("sandbox: member_limit can't be combined with join requests (as on Telegram)",
                               zh="沙盒:member_limit 不能与入群申请同时使用(与 Telegram 相同)")
        token = secrets.token_urlsafe(12)
        with self.engine.begin() as conn:
            if not conn.execute(select(t.sandbox_chats.c.id).where(t.sandbox_chats.c.id == chat_id)).first():
                raise NotFound(f"sandbox: no chat {chat_id}", zh=f"沙盒:找不到群聊 {chat_id}")
            conn.execute(insert(t.sandbox_invites).values(token=token, chat_id=chat_id, name=name,
                                                          creates_join_request=join_request,
                                                          member_limit=member_limit, used=0, revoked=False,
                                                          created_at=self.clock()))
        return token

    def has_chat(self, chat_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(t.sandbox_chats.c.id).where(t.sandbox_chats.c.id == chat_id)).first() is not None

    def revoke_invite(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.sandbox_invites).where(t.sandbox_invites.c.token == token).values(revoked=True))

    def join(self, user_id: str, display_name: str, invite_token: str) -> str:
        """A person opens an invite link. Returns 'joined', 'requested' or 'refused' (revoked or used up)."""
        self.ensure_user(user_id, display_name)
        with self.engine.connect() as conn:
            invite = conn.execute(select(t.sandbox_invites).where(
                t.sandbox_invites.c.token == invite_token)).first()
        if invite is None:
            raise NotFound("sandbox: this invite link does not exist",
                           zh="沙盒:这个邀请链接不存在")
        if invite.revoked or (invite.member_limit is not None and invite.used >= invite.member_limit):
            return "refused"  # as on a real platform: the link is expired or used up
        with self.engine.begin() as conn:  # the link's use, the join (or request) and its update: all or none
            if invite.member_limit is not None:
                conn.execute(update(t.sandbox_invites).where(t.sandbox_invites.c.token == invite_token)
                             .values(used=t.sandbox_invites.c.used + 1))
            if invite.creates_join_request:
                conn.execute(insert(t.sandbox_join_requests).values(
                    chat_id=invite.chat_id, user_id=user_id, invite_name=invite.name,
                    status="pending", created_at=self.clock()))
                pending = self._record(conn, "join_request", chat_id=invite.chat_id, user_id=user_id,
                                       display_name=display_name, invite_name=invite.name)
            else:
                pending = self._add_member(conn, invite.chat_id, user_id, display_name, invite.name)
        self._push(*pending)
        return "requested" if invite.creates_join_request else "joined"

    def add_friend(self, chat_id: str, display_name: str, user_id: str | None = None) -> str:
        """A member adds a friend straight into a chat (no invite link, no gate), as on WeChat or Telegram.
        Returns the new person's user id; the platform reports the join without an invite name."""
        name = display_name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("sandbox: a display name is 1 to 200 characters",
                               zh="沙盒:显示名称须为 1 到 200 个字符")
        if not self.has_chat(chat_id):
            raise NotFound(f"sandbox: no chat {chat_id}", zh=f"沙盒:找不到群聊 {chat_id}")
        user_id = user_id or "su" + secrets.token_hex(5)
        self.ensure_user(user_id, name)
        with self.engine.begin() as conn:
            pending = self._add_member(conn, chat_id, user_id, name, None)
        self._push(*pending)
        return user_id

    def records_of(self, user_id: str) -> dict[str, Any]:
        """What the platform holds about one person: the user, their chats, what they wrote and got privately."""
        m = t.sandbox_messages.c
        with self.engine.connect() as conn:
            def rows(query: Any) -> list[dict[str, Any]]:
                return [dict(r._mapping) for r in conn.execute(query)]
            return {"user": rows(select(t.sandbox_users).where(t.sandbox_users.c.id == user_id)),
                    "chats": rows(select(t.sandbox_chat_members).where(t.sandbox_chat_members.c.user_id == user_id)),
                    "join_requests": rows(select(t.sandbox_join_requests)
                                          .where(t.sandbox_join_requests.c.user_id == user_id)),
                    "messages": rows(select(t.sandbox_messages).where((m.sender == user_id) | (m.dm_user_id == user_id))
                                     .order_by(m.id))}

    def display_name(self, user_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.sandbox_users.c.display_name).where(t.sandbox_users.c.id == user_id)).scalar()

    def forget_user(self, user_id: str, needles: list[str], mask: str = "***") -> dict[str, int]:
        """Erase a person's records here (qunflow's erasure of a member): their display name, the messages
        they wrote or got privately; their name or phone masked in every other message. Deleted text is
        zeroed (secure_delete) and the WAL emptied, so nothing of it stays on disk; a file an older qunflow
        wrote is rebuilt (VACUUM) once first."""
        from qunflow.domain.privacy import scrub

        counts = {"messages_deleted": 0, "messages_masked": 0}
        m = t.sandbox_messages.c
        with self.engine.connect() as conn:
            with conn.begin():
                conn.execute(update(t.sandbox_users).where(t.sandbox_users.c.id == user_id)
                             .values(display_name="(erased)"))
                counts["messages_deleted"] = conn.execute(t.sandbox_messages.delete().where(
                    (m.sender == user_id) | (m.dm_user_id == user_id))).rowcount
                for needle in needles:
                    rows = conn.execute(select(m.id, m.text).where(m.text.contains(needle, autoescape=True))).all()
                    for row in rows:
                        conn.execute(update(t.sandbox_messages).where(m.id == row.id)
                                     .values(text=scrub(row.text, needles, mask)))
                    counts["messages_masked"] += len(rows)
                # Updates kept for redelivery carry display names: acknowledged ones go, pending ones are masked.
                u = t.sandbox_updates.c
                about = [u.body.contains(v, autoescape=True) for v in (user_id, *needles)]
                conn.execute(t.sandbox_updates.delete().where(u.acked_at.is_not(None), or_(*about)))
                for row in conn.execute(select(u.id, u.body).where(or_(*about))).all():
                    conn.execute(update(t.sandbox_updates).where(u.id == row.id)
                                 .values(body=scrub(row.body, needles, mask)))
            if conn.exec_driver_sql("PRAGMA user_version").scalar() != WRITTEN_SECURELY:
                conn.exec_driver_sql("VACUUM")  # old text an older qunflow left in free space
                conn.exec_driver_sql(f"PRAGMA user_version={WRITTEN_SECURELY}")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # old page versions leave the -wal file too
            conn.commit()
        return counts

    def _add_member(self, conn: Connection, chat_id: str, user_id: str, display_name: str,
                    invite_name: str | None) -> tuple[str, bytes]:
        row = conn.execute(select(t.sandbox_chat_members).where(
            t.sandbox_chat_members.c.chat_id == chat_id,
            t.sandbox_chat_members.c.user_id == user_id)).first()
        values = {"status": "member", "invite_name": invite_name, "joined_at": self.clock()}
        if row is None:
            conn.execute(insert(t.sandbox_chat_members).values(chat_id=chat_id, user_id=user_id, **values))
        else:
            conn.execute(update(t.sandbox_chat_members).where(
                t.sandbox_chat_members.c.chat_id == chat_id,
                t.sandbox_chat_members.c.user_id == user_id).values(**values))
        return self._record(conn, "member_joined", chat_id=chat_id, user_id=user_id, display_name=display_name,
                            invite_name=invite_name)

    def answer_request(self, chat_id: str, user_id: str, approve: bool) -> None:
        with self.engine.begin() as conn:
            request = conn.execute(select(t.sandbox_join_requests).where(
                t.sandbox_join_requests.c.chat_id == chat_id, t.sandbox_join_requests.c.user_id == user_id,
                t.sandbox_join_requests.c.status == "pending")).first()
            if request is None:
                raise PlatformError(f"sandbox: no pending join request from {user_id} in {chat_id}",
                                    zh=f"沙盒:{chat_id} 里没有来自 {user_id} 的待处理入群申请")
            conn.execute(update(t.sandbox_join_requests).where(t.sandbox_join_requests.c.id == request.id)
                         .values(status="approved" if approve else "declined"))
            name = conn.execute(select(t.sandbox_users.c.display_name)
                                .where(t.sandbox_users.c.id == user_id)).scalar_one()
            pending = self._add_member(conn, chat_id, user_id, name, request.invite_name) if approve else None
        if pending is not None:
            self._push(*pending)

    def leave(self, user_id: str, chat_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.sandbox_chat_members).where(
                t.sandbox_chat_members.c.chat_id == chat_id,
                t.sandbox_chat_members.c.user_id == user_id).values(status="left"))
            pending = self._record(conn, "member_left", chat_id=chat_id, user_id=user_id)
        self._push(*pending)

    def remove(self, chat_id: str, user_id: str) -> None:
        """The bot takes a member out of a chat (Telegram banChatMember then unbanChatMember); reported as a leave."""
        with self.engine.begin() as conn:
            removed = conn.execute(update(t.sandbox_chat_members).where(
                t.sandbox_chat_members.c.chat_id == chat_id, t.sandbox_chat_members.c.user_id == user_id,
                t.sandbox_chat_members.c.status == "member").values(status="left")).rowcount
            if not removed:
                raise PlatformError(f"sandbox: {user_id} is not a member of {chat_id}",
                                    zh=f"沙盒:{user_id} 不是 {chat_id} 的成员")
            pending = self._record(conn, "member_left", chat_id=chat_id, user_id=user_id)
        self._push(*pending)

    def say(self, user_id: str, text: str, chat_id: str | None = None) -> None:
        """A person writes in a group, or privately to the bot when chat_id is None."""
        with self.engine.begin() as conn:
            message_id = self._insert_message(conn, chat_id, None if chat_id else user_id, user_id, text)
            pending = self._record(conn, "message", chat_id=chat_id, user_id=user_id, text=text,
                                   message_id=str(message_id))
        self._push(*pending)

    def _insert_message(self, conn: Connection, chat_id: str | None, dm_user_id: str | None, sender: str,
                        text: str, client_key: str | None = None) -> int:
        key = conn.execute(insert(t.sandbox_messages).values(
            chat_id=chat_id, dm_user_id=dm_user_id, sender=sender, text=text,
            sent_at=self.clock(), client_key=client_key)).inserted_primary_key
        return int(key[0])  # type: ignore[index]

    def _store_message(self, chat_id: str | None, dm_user_id: str | None, sender: str, text: str,
                       client_key: str | None = None) -> int:
        try:
            with self.engine.begin() as conn:
                return self._insert_message(conn, chat_id, dm_user_id, sender, text, client_key)
        except IntegrityError:  # the same key sent twice at once: the first one's message is the answer
            if (done := self.sent_with_key(client_key)) is None:
                raise
            return int(done)

    def sent_with_key(self, client_key: str | None) -> str | None:
        """The message a repeated client key already produced: sends are idempotent per key."""
        if client_key is None:
            return None
        with self.engine.connect() as conn:
            found = conn.execute(select(t.sandbox_messages.c.id).where(
                t.sandbox_messages.c.client_key == client_key)).scalar()
        return None if found is None else str(found)

    # --- the bot API ---
    def bot_send_dm(self, user_id: str, text: str, client_key: str | None = None) -> str:
        if (done := self.sent_with_key(client_key)) is not None:
            return done
        now = self.clock()
        with self.engine.connect() as conn:
            reachable = conn.execute(select(func.count()).select_from(t.sandbox_chat_members).where(
                t.sandbox_chat_members.c.user_id == user_id)).scalar_one()
            reachable += conn.execute(select(func.count()).select_from(t.sandbox_join_requests).where(
                t.sandbox_join_requests.c.user_id == user_id)).scalar_one()
        if not reachable:
            raise PlatformError(f"sandbox: bot can't initiate a conversation with {user_id}",
                                zh=f"沙盒:机器人不能主动与 {user_id} 发起对话")
        self.limits.check(BOT, self.limits.bot_per_second, 1.0, now)
        return str(self._store_message(None, user_id, BOT, text, client_key))

    def bot_post(self, chat_id: str, text: str, client_key: str | None = None) -> str:
        if (done := self.sent_with_key(client_key)) is not None:
            return done
        now = self.clock()
        self.limits.check(BOT, self.limits.bot_per_second, 1.0, now)
        self.limits.check(f"chat:{chat_id}", self.limits.group_per_minute, 60.0, now)
        return str(self._store_message(chat_id, None, BOT, text, client_key))

    # --- inspection (CLI and console) ---
    def chats(self) -> list[dict[str, Any]]:
        members = (select(t.sandbox_chat_members.c.chat_id, func.count().label("n"))
                   .where(t.sandbox_chat_members.c.status == "member")
                   .group_by(t.sandbox_chat_members.c.chat_id).subquery())
        query = (select(t.sandbox_chats.c.id, t.sandbox_chats.c.title, func.coalesce(members.c.n, 0).label("members"))
                 .outerjoin(members, members.c.chat_id == t.sandbox_chats.c.id).order_by(t.sandbox_chats.c.id))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def messages(self, *, chat_id: str | None = None, dm_user_id: str | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
        query = select(t.sandbox_messages).order_by(t.sandbox_messages.c.id.desc()).limit(limit)
        if chat_id:
            query = query.where(t.sandbox_messages.c.chat_id == chat_id)
        elif dm_user_id:
            query = query.where(t.sandbox_messages.c.dm_user_id == dm_user_id)
        else:
            query = query.where(t.sandbox_messages.c.dm_user_id.is_not(None))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            def n(table: Any, *where: Any) -> int:
                return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
            return {"chats": n(t.sandbox_chats), "users": n(t.sandbox_users),
                    "group_messages": n(t.sandbox_messages, t.sandbox_messages.c.chat_id.is_not(None)),
                    "direct_messages": n(t.sandbox_messages, t.sandbox_messages.c.dm_user_id.is_not(None))}


class SandboxConnector:
    """qunflow's connector to the sandbox platform."""

    platform = "sandbox"
    capabilities = Capabilities(
        join_requests=True, dm_policy="any", dm_window_seconds=None, invite_label_max=30,
        reports_invite_on_join=True, group_capacity_max=None, reads_group_messages=True, idempotent_sends=True,
        single_use_invites=True, finds_sends=True, removes_members=True)

    def __init__(self, world: SandboxPlatform, public_url: str) -> None:
        self.world = world
        self.public_url = public_url.rstrip("/")

    def create_invite(self, group_id: str, label: str, *, join_request: bool = False,
                      single_use: bool = False, expires_at: datetime | None = None) -> InviteLink:
        if len(label) > self.capabilities.invite_label_max:
            raise InvalidInput(f"invite label {label!r} is longer than {self.capabilities.invite_label_max}",
                               zh=f"邀请标签 {label!r} 超过了 {self.capabilities.invite_label_max} 个字符")
        token = self.world.create_invite(group_id, label, join_request, 1 if single_use else None)
        return InviteLink(f"{self.public_url}/sandbox/invite/{token}", label, join_request, handle=token)

    def create_group(self, title: str, chat_id: str) -> str:
        """The sandbox makes chats on request (real platforms' chats are made by people)."""
        return self.world.create_chat(title, chat_id=chat_id)

    def approve_join(self, group_id: str, user_id: str) -> None:
        self.world.answer_request(group_id, user_id, approve=True)

    def decline_join(self, group_id: str, user_id: str) -> None:
        self.world.answer_request(group_id, user_id, approve=False)

    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        return SendResult(self.world.bot_send_dm(user_id, text, idempotency_key))

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult:
        return SendResult(self.world.bot_post(group_id, text, idempotency_key))

    def find_sent(self, idempotency_key: str) -> SendResult | None:
        found = self.world.sent_with_key(idempotency_key)
        return None if found is None else SendResult(found)

    def remove_member(self, group_id: str, user_id: str) -> None:
        self.world.remove(group_id, user_id)

    def revoke_invite(self, group_id: str, link: InviteLink) -> None:
        self.world.revoke_invite(link.url.rsplit("/", 1)[-1])

    def check_group(self, group_id: str) -> list[str]:
        return [] if self.world.has_chat(group_id) else [Fix(f"the sandbox has no chat {group_id}",
                                                             zh=f"沙盒里没有群聊 {group_id}")]

    def receive(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Inbound:
        return Inbound(self.parse_updates(headers, body))

    def parse_updates(self, headers: Mapping[str, str], body: bytes) -> list[Update]:
        signature = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(signature, self.world.sign(body)):
            raise Unauthorized("sandbox update: bad signature",
                               zh="沙盒更新:签名错误")
        try:
            data = json.loads(body)
            at = datetime.fromisoformat(data["at"])
            kind = data["kind"]
            key = data.get("update_id")  # a redelivered update carries the same id
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"sandbox update: malformed body ({exc})",
                               zh=f"沙盒更新:请求体格式错误({exc})") from exc
        p = self.platform
        if kind == "member_joined":
            return [MemberJoined(p, at, data["chat_id"], data["user_id"], data["display_name"],
                                 data.get("invite_name"), key=key)]
        if kind == "join_request":
            return [JoinRequested(p, at, data["chat_id"], data["user_id"], data["display_name"],
                                  data.get("invite_name"), key=key)]
        if kind == "member_left":
            return [MemberLeft(p, at, data["chat_id"], data["user_id"], key=key)]
        if kind == "message":
            return [MessagePosted(p, at, data["user_id"], data["text"], data.get("chat_id"), data.get("message_id"),
                                  key=key)]
        raise InvalidInput(f"sandbox update: unknown kind {kind!r}",
                           zh=f"沙盒更新:未知的类型 {kind!r}")


class SandboxSettings(PlatformSettings):
    """The sandbox needs no settings: it lives in the workspace's sandbox.db."""


def build(_settings: SandboxSettings, host: Host) -> SandboxConnector:
    world = SandboxPlatform(host.home / "sandbox.db", clock=host.clock, secret=host.secret)
    if host.inbound is not None:
        inbound = host.inbound
        world.subscribe(lambda headers, body: inbound("sandbox", headers, body))
    return SandboxConnector(world, host.public_url)


PLATFORM = PlatformSpec(name="sandbox", capabilities=SandboxConnector.capabilities, settings=SandboxSettings,
                        build=build)

