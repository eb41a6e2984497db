"""Console users: argon2id password hashes, logins with a throttle, server-side sessions.

The session cookie holds a random id; the database keeps only its SHA-256, so a copy of the database
cannot be used to log in. Each session has its own CSRF token for the console's forms.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.domain.access import MIN_PASSWORD, ROLES, Principal, check_password, check_role
from qunflow.errors import Conflict, InvalidInput, NotFound, TooManyAttempts, Unauthorized
from qunflow.store.eventlog import utcnow
from qunflow.store.tables import login_failures, user_sessions, users

SESSION_IDLE = timedelta(hours=12)  # a session unused this long ends
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 10  # per name and address within the window, then 429 until the window has passed
_hasher = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY = _hasher.hash("qunflow: an unknown name costs as much as a wrong password")


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _password_zh(password: str) -> str:
    """The Chinese of check_password's refusal."""
    return f"密码至少 {MIN_PASSWORD} 个字符" if len(password) < MIN_PASSWORD else "密码最多 1024 个字符"


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or any(c.isspace() for c in name):
        raise InvalidInput("a user name is 1 to 64 characters without spaces", zh="用户名须为 1 到 64 个字符,不含空格")
    return name


def add_user(engine: Engine, name: str, role: str, password: str, groups: list[str] | None = None) -> int:
    name = _check_name(name)
    try:
        check_role(role)
    except ValueError as exc:
        raise InvalidInput(str(exc), zh=f"未知的角色 {role!r}:可选 {', '.join(ROLES)}") from None
    try:
        check_password(password)
    except ValueError as exc:
        raise InvalidInput(str(exc), zh=_password_zh(password)) from None
    try:
        with engine.begin() as conn:
            return int(conn.execute(insert(users).values(
                name=name, role=role, groups=groups, password_hash=_hasher.hash(password), created_at=utcnow(),
            ).returning(users.c.id)).scalar_one())
    except IntegrityError:
        raise Conflict(f"a user named {name!r} exists already (remove it first, or pick another name)",
                       zh=f"用户 {name!r} 已存在(请先删除,或换一个用户名)") from None


def set_password(engine: Engine, name: str, password: str) -> None:
    try:
        check_password(password)
    except ValueError as exc:
        raise InvalidInput(str(exc), zh=_password_zh(password)) from None
    with engine.begin() as conn:
        found = conn.execute(update(users).where(users.c.name == name)
                             .values(password_hash=_hasher.hash(password)).returning(users.c.id)).scalar()
        if found is None:
            raise NotFound(f"no user named {name!r}", zh=f"找不到用户 {name!r}")
        conn.execute(delete(user_sessions).where(user_sessions.c.user_id == found))  # log out everywhere


def remove_user(engine: Engine, name: str) -> dict[str, Any]:
    """Disable a user (kept for the audit log's sake) and end their sessions; returns what it was."""
    with engine.begin() as conn:
        row = conn.execute(select(users).where(users.c.name == name, users.c.disabled_at.is_(None))).first()
        if row is None:
            raise NotFound(f"no active user named {name!r}", zh=f"找不到启用中的用户 {name!r}")
        conn.execute(update(users).where(users.c.id == row.id).values(disabled_at=utcnow()))
        conn.execute(delete(user_sessions).where(user_sessions.c.user_id == row.id))
    return {"name": row.name, "role": row.role, "groups": row.groups}


def list_users(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(users.c.name, users.c.role, users.c.groups, users.c.created_at,
                                   users.c.disabled_at).order_by(users.c.name)).all()
    return [dict(r._mapping) for r in rows]


def has_users(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(func.count()).select_from(users)
                                 .where(users.c.disabled_at.is_(None))).scalar())


def principal_of(row: Any) -> Principal:
    return Principal("user", row.name, ROLES[row.role], frozenset(row.groups) if row.groups else None, row.role)


@dataclass(frozen=True)
class Session:
    id: str  # goes in the cookie; never stored
    csrf: str
    principal: Principal


def log_in(engine: Engine, name: str, password: str, address: str, now: datetime | None = None) -> Session:
    """Check a password and open a session; refused when the name or password is wrong, with a throttle
    on repeated failures from one address for one name."""
    now = now or utcnow()
    key = _sha(f"{name.strip().lower()}\n{address}")
    with engine.connect() as conn:
        failures = conn.execute(select(func.count(), func.min(login_failures.c.at)).where(
            login_failures.c.key == key, login_failures.c.at > now - FAILURE_WINDOW)).one()
        row = conn.execute(select(users).where(users.c.name == name.strip(), users.c.disabled_at.is_(None))).first()
    if failures[0] >= MAX_FAILURES:
        wait = int((failures[1] + FAILURE_WINDOW - now).total_seconds()) + 1
        raise TooManyAttempts(f"too many failed logins; try again in {wait // 60 + 1} minutes",
                              zh=f"登录失败次数过多,请 {wait // 60 + 1} 分钟后再试", retry_after=wait)
    try:
        _hasher.verify(row.password_hash if row is not None else _DUMMY, password)
        if row is None:
            raise VerificationError
    except (VerificationError, InvalidHashError):
        with engine.begin() as conn:
            conn.execute(insert(login_failures).values(key=key, at=now))
            conn.execute(delete(login_failures).where(login_failures.c.at < now - FAILURE_WINDOW))
        raise Unauthorized("wrong user name or password", zh="用户名或密码错误") from None
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    with engine.begin() as conn:
        if _hasher.check_needs_rehash(row.password_hash):
            conn.execute(update(users).where(users.c.id == row.id).values(password_hash=_hasher.hash(password)))
        conn.execute(delete(user_sessions).where(user_sessions.c.expires_at < now))
        conn.execute(delete(login_failures).where(login_failures.c.key == key))
        conn.execute(insert(user_sessions).values(id_hash=_sha(session_id), user_id=row.id, csrf=csrf,
                                                  created_at=now, expires_at=now + SESSION_IDLE))
    return Session(session_id, csrf, principal_of(row))


def session_of(engine: Engine, session_id: str | None, now: datetime | None = None) -> Session | None:
    """The live session behind a cookie (its idle time restarts), or None."""
    if not session_id or len(session_id) > 100:
        return None
    now = now or utcnow()
    with engine.connect() as conn:
        row = conn.execute(select(user_sessions.c.csrf, user_sessions.c.expires_at, users)
                           .join(users, users.c.id == user_sessions.c.user_id)
                           .where(user_sessions.c.id_hash == _sha(session_id), users.c.disabled_at.is_(None))
                           ).first()
    if row is None or row.expires_at < now:
        return None
    if row.expires_at - now < SESSION_IDLE - timedelta(minutes=5):  # write at most every 5 minutes
        with engine.begin() as conn:
            conn.execute(update(user_sessions).where(user_sessions.c.id_hash == _sha(session_id))
                         .values(expires_at=now + SESSION_IDLE))
    return Session(session_id, row.csrf, principal_of(row))


def log_out(engine: Engine, session_id: str | None) -> None:
    if session_id:
        with engine.begin() as conn:
            conn.execute(delete(user_sessions).where(user_sessions.c.id_hash == _sha(session_id)))
