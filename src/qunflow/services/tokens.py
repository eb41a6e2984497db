"""API tokens: shown once at creation, stored only as a SHA-256 hash, each with its scopes (the
permissions of domain.access), optional group limits and an optional expiry; revoked, never deleted."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.domain.access import TOKEN_SCOPES, Principal, check_scopes
from qunflow.errors import Conflict, InvalidInput, NotFound, Unauthorized
from qunflow.settings import new_token
from qunflow.store.eventlog import utcnow
from qunflow.store.tables import api_tokens

USE_EVERY = timedelta(minutes=5)  # last_used_at is written at most this often


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _scopes_zh(scopes: list[str]) -> str:
    """The Chinese of check_scopes' refusal of `scopes`."""
    every = ", ".join(sorted(TOKEN_SCOPES))
    unknown = sorted(s for s in set(scopes) if s not in TOKEN_SCOPES)
    return f"未知的作用域 {unknown[0]!r}:可选 {every}" if unknown else f"请至少给出一个 --scope:{every}"


def create_token(engine: Engine, name: str, scopes: list[str], *, groups: list[str] | None = None,
                 expires_at: datetime | None = None) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a token name is 1 to 100 characters", zh="令牌名称须为 1 到 100 个字符")
    try:
        scopes = check_scopes(scopes)
    except ValueError as exc:
        raise InvalidInput(str(exc), zh=_scopes_zh(scopes)) from None
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("the expiry must be in the future", zh="到期时间须晚于现在")
    token = new_token()
    try:
        with engine.begin() as conn:
            conn.execute(insert(api_tokens).values(name=name, token_hash=_digest(token), created_at=utcnow(),
                                                   scopes=scopes, groups=groups, expires_at=expires_at))
    except IntegrityError as exc:
        raise Conflict(f"a token named {name!r} exists already", zh=f"已有名为 {name!r} 的令牌") from exc
    return token


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(api_tokens.c.name, api_tokens.c.scopes, api_tokens.c.groups,
                                   api_tokens.c.created_at, api_tokens.c.expires_at, api_tokens.c.revoked_at,
                                   api_tokens.c.last_used_at).order_by(api_tokens.c.name)).all()
    return [{**r._mapping, "scopes": r.scopes if r.scopes is not None else sorted(TOKEN_SCOPES)} for r in rows]


def revoke_token(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(update(api_tokens).where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                            .values(revoked_at=utcnow()).returning(api_tokens.c.id)).scalar()
    if done is None:
        raise NotFound(f"no active token named {name!r} (see `qunflow token list`)",
                       zh=f"没有名为 {name!r} 的有效令牌(可用 `qunflow token list` 查看)")


def check_token(engine: Engine, token: str | None) -> Principal:
    """The caller behind a bearer token, or Unauthorized."""
    if not token:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'",
                           zh="缺少 bearer 令牌:请发送 'Authorization: Bearer <token>'")
    now = utcnow()
    with engine.connect() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == _digest(token))).first()
    if row is None:
        raise Unauthorized("unknown API token: create one with `qunflow token create NAME --scope S`",
                           zh="未知的 API 令牌:请用 `qunflow token create NAME --scope S` 创建")
    if row.revoked_at is not None:
        raise Unauthorized(f"the API token {row.name!r} was revoked", zh=f"API 令牌 {row.name!r} 已被吊销")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized(f"the API token {row.name!r} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC",
                           zh=f"API 令牌 {row.name!r} 已于 {row.expires_at:%Y-%m-%d %H:%M} UTC 过期")
    if row.last_used_at is None or now - row.last_used_at > USE_EVERY:
        with engine.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now))
    # a token made before scopes existed (scopes NULL) may do all that a token can carry, until revoked
    scopes = frozenset(row.scopes) if row.scopes is not None else TOKEN_SCOPES
    return Principal("token", row.name, scopes, frozenset(row.groups) if row.groups else None)
