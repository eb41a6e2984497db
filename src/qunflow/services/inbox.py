"""The advisor inbox (issue 4): follow-ups and staff alerts that playbooks create, done/undone, assigned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from qunflow.errors import InvalidInput, NotFound
from qunflow.store.tables import groups as groups_table
from qunflow.store.tables import inbox, members
from qunflow.workspace import Workspace

STATUSES = ("open", "done", "all")
KINDS = ("follow_up", "alert")
MAX_ASSIGNEE = 64  # the column's width


Groups = frozenset[str] | None  # a user's group limit: only items about members of these groups (None: all)


def _in_groups(groups: Groups) -> list[Any]:
    if groups is None:
        return []
    of_groups = (select(members.c.id).join(groups_table, groups_table.c.id == members.c.group_id)
                 .where(groups_table.c.key.in_(sorted(groups))))
    return [inbox.c.member_id.in_(of_groups)]


def _selection(status: str, kind: str | None, assignee: str | None, due_before: datetime | None,
               groups: Groups = None) -> list[Any]:
    """The items a filter selects (the same for a page and for the count)."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, got {status!r}",
                           zh=f"状态须为以下之一:{', '.join(STATUSES)};收到的是 {status!r}")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}",
                           zh=f"类型须为以下之一:{', '.join(KINDS)};收到的是 {kind!r}")
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
    return conditions + _in_groups(groups)


def list_inbox(ws: Workspace, *, status: str = "open", kind: str | None = None, assignee: str | None = None,
               due_before: datetime | None = None, limit: int = 500, offset: int = 0,
               groups: Groups = None) -> list[dict[str, Any]]:
    """One page of inbox items, soonest due first (items without a due time last, oldest first among
    them); `offset` items are skipped."""
    conditions = _selection(status, kind, assignee, due_before, groups)
    if not 1 <= limit <= 5000:
        raise InvalidInput("limit must be between 1 and 5000", zh="limit 须在 1 到 5000 之间")
    if offset < 0:
        raise InvalidInput("offset must be 0 or more", zh="offset 不能小于 0")
    c = inbox.c
    query = (select(inbox).where(*conditions).order_by(c.due_at.is_(None), c.due_at, c.created_at, c.id)
             .limit(limit).offset(offset))
    with ws.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def count_inbox(ws: Workspace, *, status: str = "open", kind: str | None = None, assignee: str | None = None,
                due_before: datetime | None = None, groups: Groups = None) -> int:
    """How many items the same filter selects, for paging."""
    conditions = _selection(status, kind, assignee, due_before, groups)
    with ws.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox).where(*conditions)).scalar_one())


def _change(ws: Workspace, item_id: int, groups: Groups, **values: Any) -> dict[str, Any]:
    with ws.engine.begin() as conn:
        if conn.execute(update(inbox).where(inbox.c.id == item_id, *_in_groups(groups))
                        .values(**values)).rowcount == 0:
            raise NotFound(f"no inbox item {item_id}", zh=f"没有待办事项 {item_id}")
        return dict(conn.execute(select(inbox).where(inbox.c.id == item_id)).one()._mapping)


def set_done(ws: Workspace, item_id: int, done: bool = True, groups: Groups = None) -> dict[str, Any]:
    """Mark an item done (now; an item already done keeps its time) or open again; returns the item."""
    if not done:
        return _change(ws, item_id, groups, done_at=None)
    with ws.engine.begin() as conn:
        conn.execute(update(inbox).where(inbox.c.id == item_id, inbox.c.done_at.is_(None), *_in_groups(groups))
                     .values(done_at=ws.clock()))
        row = conn.execute(select(inbox).where(inbox.c.id == item_id, *_in_groups(groups))).first()
    if row is None:
        raise NotFound(f"no inbox item {item_id}", zh=f"没有待办事项 {item_id}")
    return dict(row._mapping)


def assign(ws: Workspace, item_id: int, assignee: str | None, groups: Groups = None) -> dict[str, Any]:
    """Give an item to an advisor (a free-text name); empty or None takes it back."""
    name = (assignee or "").strip()
    if len(name) > MAX_ASSIGNEE:
        raise InvalidInput(f"assignee must be at most {MAX_ASSIGNEE} characters",
                           zh=f"负责人最多 {MAX_ASSIGNEE} 个字符")
    if any(ch in name for ch in "\r\n\t"):
        raise InvalidInput("assignee must be one line", zh="负责人只能写一行")
    return _change(ws, item_id, groups, assignee=name or None)
