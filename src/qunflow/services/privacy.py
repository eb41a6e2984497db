"""Personal fields are encrypted at rest with the workspace key (Fernet: AES-128-CBC + HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import Connection, delete, insert, select, update

from qunflow.domain.privacy import name_fragments, name_text
from qunflow.errors import Unauthorized
from qunflow.store.tables import member_name_keys, members
from qunflow.workspace import Workspace


def seal(ws: Workspace, data: dict[str, Any]) -> bytes:
    return ws.fernet.encrypt(json.dumps(data, ensure_ascii=False).encode())


def unseal(ws: Workspace, blob: bytes | None) -> dict[str, Any]:
    if not blob:
        return {}
    try:
        return json.loads(ws.fernet.decrypt(blob))  # type: ignore[no-any-return]
    except InvalidToken:
        return {}


def member_link_token(ws: Workspace, member_id: str) -> str:
    """A token for a member's personal links (profile, coupon), verifiable without storage."""
    mac = hmac.new(ws.secret, member_id.encode(), hashlib.sha256).hexdigest()[:16]
    return f"{member_id}.{mac}"


def member_from_token(ws: Workspace, token: str) -> str:
    member_id, _, _mac = token.rpartition(".")
    if not member_id or not hmac.compare_digest(member_link_token(ws, member_id), token):
        raise Unauthorized("this personal link is not valid", zh="这个个人链接无效")
    return member_id


# --- the name index: every write of a profile goes through store_profile --------------------------------------

def name_key(ws: Workspace, fragment: str) -> str:
    """The keyed hash a name part is stored and searched by (the workspace's signal key, kind "name")."""
    return hmac.new(ws.signal_key, f"name\n{fragment}".encode(), hashlib.sha256).hexdigest()


def query_key(ws: Workspace, query: str) -> str | None:
    """The key a search for part of a name looks up (None: nothing a name could match)."""
    text = name_text(query)
    return name_key(ws, text) if text else None


def index_name(ws: Workspace, conn: Connection, member_id: str, profile: dict[str, Any]) -> None:
    """Replace the member's name keys with those of `profile`'s name (none when it has no name)."""
    conn.execute(delete(member_name_keys).where(member_name_keys.c.member_id == member_id))
    rows = [{"member_id": member_id, "key": name_key(ws, part)}
            for part in name_fragments(str(profile.get("name") or ""))]
    if rows:
        conn.execute(insert(member_name_keys), rows)


def store_profile(ws: Workspace, conn: Connection, member_id: str, profile: dict[str, Any]) -> None:
    """Write a member's profile, encrypted, and its name index, in the caller's transaction."""
    conn.execute(update(members).where(members.c.id == member_id).values(profile=seal(ws, profile)))
    index_name(ws, conn, member_id, profile)


def reindex_names(ws: Workspace, progress: Callable[[int, int], None] | None = None, batch: int = 2000) -> int:
    """Index the names of every member with a profile (a workspace made before the index, or a new key).
    Returns how many members have a name."""
    named = 0
    with ws.engine.connect() as conn:
        ids = list(conn.execute(select(members.c.id).where(members.c.profile.is_not(None))).scalars())
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        with ws.engine.begin() as conn:
            rows = conn.execute(select(members.c.id, members.c.profile).where(members.c.id.in_(chunk))).all()
            conn.execute(delete(member_name_keys).where(member_name_keys.c.member_id.in_(chunk)))
            keys = [{"member_id": row.id, "key": name_key(ws, part)} for row in rows
                    for part in name_fragments(str(unseal(ws, row.profile).get("name") or ""))]
            named += len({k["member_id"] for k in keys})
            if keys:
                conn.execute(insert(member_name_keys), keys)
        if progress is not None:
            progress(min(start + batch, len(ids)), len(ids))
    return named
