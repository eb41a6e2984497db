"""What the outbox holds, for operators: every send with its state, and where a staff-confirmed task stands.

On WeCom a message outside a welcome code is a mass-send task that a staff member confirms in the WeCom
client; the outbox records it as sent to WeCom, and `task_results` asks WeCom how far it got.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from qunflow.errors import InvalidInput, NotFound
from qunflow.store.tables import deliveries
from qunflow.workspace import Workspace

STATUSES = ("queued", "pending", "retry", "sent", "dead", "unreachable", "skipped")


def list_sends(ws: Workspace, *, status: str | None = None, kind: str | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
    """The newest sends first (never their text: it may carry a name)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000")
    d = deliveries.c
    query = select(d.id, d.kind, d.platform, d.target, d.member_id, d.status, d.attempts, d.created_at, d.sent_at,
                   d.next_at, d.external_message_id, d.error).order_by(d.id.desc()).limit(limit)
    if status is not None:
        query = query.where(d.status == status)
    if kind is not None:
        query = query.where(d.kind == kind)
    with ws.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def task_results(ws: Workspace, send_id: int) -> dict[str, Any]:
    """Where a staff-confirmed task (WeCom add_msg_template) stands on the platform."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(deliveries.c.platform, deliveries.c.status, deliveries.c.external_message_id)
                           .where(deliveries.c.id == send_id)).first()
    if row is None:
        raise NotFound(f"no send {send_id} (see `qunflow sends list`)")
    results = getattr(ws.connector(row.platform), "template_results", None)
    if results is None:
        raise InvalidInput(f"{row.platform} sends go out at once: there is no task to follow")
    if row.status != "sent" or not row.external_message_id:
        raise InvalidInput(f"send {send_id} is {row.status}: it did not reach {row.platform} as a task")
    if row.external_message_id.startswith("welcome:"):
        raise InvalidInput(f"send {send_id} was a welcome message: it went out at once, not as a task")
    return dict(results(row.external_message_id))
