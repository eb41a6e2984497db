"""The advisor inbox (issue 4): follow-ups and staff alerts that playbooks create, done/undone, assigned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from qunflow.errors import InvalidInput, NotFound
from qunflow.store.tables import inbox
from qunflow.workspace import Workspace

STATUSES = ("open", "done", "all")
KINDS = ("follow_up", "alert")
MAX_ASSIGNEE = 64  # the column's width


def _selection(status: str, kind: str | None, assignee: str | None, due_before: datetime | None) -> list[Any]:
    """The items a filter selects (the same for a page and for the count)."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    c = inbox.c
    conditions: list[Any] = []
    if status == "open":
        conditions.append(c.done_at.is_(None))
    elif status == "done":
        conditions.append(c.done_at.is_not(None))
    if kind is not None:
        conditions.append(c.kind == kind)
    if assignee is not None:
        conditions.append(c.assignee == assignee.strip() if assignee.strip() else c.assignee.is_(None))
    if due_before is not None:
        conditions.append(c.due_at < due_before)
    return conditions


def list_inbox(ws: Workspace, *, status: str = "open", kind: str | None = None, assignee: str | None = None,
               due_before: datetime | None = None, limit: int = 500, offset: int = 0) -> list[dict[str, Any]]:
    """One page of inbox items, soonest due first (items without a due time last, oldest first among
    them); `offset` items are skipped."""
    conditions = _selection(status, kind, assignee, due_before)
    if not 1 <= limit <= 5000:
        raise InvalidInput("limit must be between 1 and 5000")
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
    c = inbox.c
    query = (select(inbox).where(*conditions).order_by(c.due_at.is_(None), c.due_at, c.created_at, c.id)
             .limit(limit).offset(offset))
    with ws.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def count_inbox(ws: Workspace, *, status: str = "open", kind: str | None = None, assignee: str | None = None,
                due_before: datetime | None = None) -> int:
    """How many items the same filter selects, for paging."""
    conditions = _selection(status, kind, assignee, due_before)
    with ws.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox).where(*conditions)).scalar_one())


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
