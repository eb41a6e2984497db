"""The audit log: one append-only row per operator action from the console, the API or the CLI.

Rows say who (user:NAME, token:NAME, cli:OS-USER), through what, which action on which target, the
outcome and, where it matters, the state before and after. Never personal data: targets are ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from qunflow.store.eventlog import utcnow
from qunflow.store.tables import audit_log


def record(engine_or_conn: Engine | Connection, *, actor: str, via: str, action: str, target: str | None = None,
           outcome: str = "ok", detail: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    values = {"at": at or utcnow(), "actor": actor[:120], "via": via, "action": action[:120],
              "target": target[:200] if target else None, "outcome": outcome, "detail": detail or None}
    if isinstance(engine_or_conn, Connection):
        engine_or_conn.execute(insert(audit_log).values(**values))
        return
    with engine_or_conn.begin() as conn:
        conn.execute(insert(audit_log).values(**values))


def entries(engine: Engine, *, actor: str | None = None, action: str | None = None, via: str | None = None,
            since: datetime | None = None, until: datetime | None = None, limit: int = 200,
            offset: int = 0) -> list[dict[str, Any]]:
    """Newest first, filtered; `action` matches a prefix (rewards matches rewards.approve)."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action.startswith(action, autoescape=True))
    if via:
        query = query.where(audit_log.c.via == via)
    if since:
        query = query.where(audit_log.c.at >= since)
    if until:
        query = query.where(audit_log.c.at < until)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
