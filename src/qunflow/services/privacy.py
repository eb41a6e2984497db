"""Personal fields are encrypted at rest with the workspace key (Fernet: AES-128-CBC + HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import InvalidToken

from qunflow.errors import Unauthorized
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
        raise Unauthorized("this personal link is not valid")
    return member_id
