"""API tokens: shown once at creation, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from qunflow.errors import Conflict, InvalidInput, Unauthorized
from qunflow.settings import new_token
from qunflow.store.eventlog import utcnow
from qunflow.store.tables import api_tokens


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a token name is 1 to 100 characters")
    token = new_token()
    try:
        with engine.begin() as conn:
            conn.execute(insert(api_tokens).values(name=name, token_hash=_digest(token),
                                                   created_at=utcnow()))
    except IntegrityError as exc:
        raise Conflict(f"a token named {name!r} exists already") from exc
    return token


def check_token(engine: Engine, token: str | None) -> str:
    """The token's name, or Unauthorized."""
    if not token:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    with engine.connect() as conn:
        name = conn.execute(select(api_tokens.c.name)
                            .where(api_tokens.c.token_hash == _digest(token))).scalar()
    if name is None:
        raise Unauthorized("unknown API token: create one with `qunflow token create NAME`")
    return str(name)
