"""The advisor inbox (issue 4): follow-ups and staff alerts that playbooks create, done/undone, assigned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from qunflow.errors import InvalidInput, NotFound
from qunflow.store.tables import inbox
from qunflow.workspace import Workspace

STATUSES = ("open", "done", "all")
KINDS = ("follow_up", "alert")
MAX_ASSIGNEE = 64  # the column's width


def list_inbox(ws: Workspace, *, status: str = "open", kind: str | None = None, assignee: str | None = None,
               due_before: datetime | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Inbox items, soonest due first (items without a due time last, oldest first among them)."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not 1 <= limit <= 5000:
        raise InvalidInput("limit must be between 1 and 5000")
    c = inbox.c
    query = select(inbox)
    if status == "open":
        query = query.where(c.done_at.is_(None))
    elif status == "done":
        query = query.where(c.done_at.is_not(None))
    if kind is not None:
        query = query.where(c.kind == kind)
    if assignee is not None:
        query = query.where(c.assignee == assignee.strip()) if assignee.strip() else query.where(c.assignee.is_(None))
    if due_before is not None:
        query = query.where(c.due_at < due_before)
    query = query.order_by(c.due_at.is_(None), c.due_at, c.created_at, c.id).limit(limit)
    with ws.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def _change(ws: Workspace, item_id: int, **values: Any) -> dict[str, Any]:
    with ws.engine.begin() as conn:
        if conn.execute(update(inbox).where(inbox.c.id == item_id).values(**values)).rowcount == 0:
            raise NotFound(f"no inbox item {item_id}")
        return dict(conn.execute(select(inbox).where(inbox.c.id == item_id)).one()._mapping)


def set_done(ws: Workspace, item_id: int, done: bool = True) -> dict[str, Any]:
    """Mark an item done (now; an item already done keeps its time) or open again; returns the item."""
    if not done:
        return _change(ws, item_id, done_at=None)
    with ws.engine.begin() as conn:
        conn.execute(update(inbox).where(inbox.c.id == item_id, inbox.c.done_at.is_(None)).values(done_at=ws.clock()))
        row = conn.execute(select(inbox).where(inbox.c.id == item_id)).first()
    if row is None:
        raise NotFound(f"no inbox item {item_id}")
    return dict(row._mapping)


def assign(ws: Workspace, item_id: int, assignee: str | None) -> dict[str, Any]:
    """Give an item to an advisor (a free-text name); empty or None takes it back."""
    name = (assignee or "").strip()
    if len(name) > MAX_ASSIGNEE:
        raise InvalidInput(f"assignee must be at most {MAX_ASSIGNEE} characters")
    if any(ch in name for ch in "\r\n\t"):
        raise InvalidInput("assignee must be one line")
    return _change(ws, item_id, assignee=name or None)
