"""What the outbox holds, for operators: every send with its state, and where a staff-confirmed task stands.

On WeCom a message outside a welcome code is a mass-send task that a staff member confirms in the WeCom
client; the outbox records it as sent to WeCom, and `task_results` asks WeCom how far it got.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from sqlalchemy import select

from qunflow.errors import InvalidInput, NotFound, QunflowError
from qunflow.store.tables import deliveries
from qunflow.workspace import Workspace

STATUSES = ("queued", "pending", "retry", "sent", "dead", "unreachable", "skipped")
KIND = re.compile(r"[a-z_]{1,32}")  # welcome_dm, welcome_menu, keyword_reply, playbook, coupon_dm ...


def list_sends(ws: Workspace, *, status: str | None = None, kind: str | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
    """The newest sends first (never their text: it may carry a name)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}",
                           zh=f"状态须为以下之一:{', '.join(STATUSES)};收到的是 {status!r}")
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000", zh="limit 须在 1 到 10000 之间")
    if kind is not None and not KIND.fullmatch(kind):
        raise InvalidInput(f"kind must be a send kind such as welcome_dm or playbook, not {kind[:40]!r}",
                           zh=f"kind 须为发送类型,例如 welcome_dm 或 playbook;收到的是 {kind[:40]!r}")
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
        raise NotFound(f"no send {send_id} (see `qunflow sends list`)",
                       zh=f"找不到发送记录 {send_id}(可用 `qunflow sends list` 查看)")
    results = getattr(ws.connector(row.platform), "template_results", None)
    if results is None:
        raise InvalidInput(f"{row.platform} sends go out at once: there is no task to follow",
                           zh=f"{row.platform} 的消息是立即发出的:没有可跟进的任务")
    if row.status != "sent" or not row.external_message_id:
        raise InvalidInput(f"send {send_id} is {row.status}: it did not reach {row.platform} as a task",
                           zh=f"发送记录 {send_id} 的状态是 {row.status}:它没有作为任务送达 {row.platform}")
    if row.external_message_id.startswith("welcome:"):
        raise InvalidInput(f"send {send_id} was a welcome message: it went out at once, not as a task",
                           zh=f"发送记录 {send_id} 是欢迎语:它是立即发出的,不是任务")
    return dict(results(row.external_message_id))


def send_kinds(ws: Workspace) -> list[str]:
    """The kinds of send the outbox holds (for a filter)."""
    with ws.engine.connect() as conn:
        return sorted(conn.execute(select(deliveries.c.kind).distinct()).scalars())


def follows_tasks(ws: Workspace, platform: str) -> bool:
    """Does this platform turn sends into tasks that staff confirm, whose results can be asked for?"""
    try:
        return hasattr(ws.connector(platform), "template_results")
    except (QunflowError, KeyError):  # a platform no longer set up: nothing to ask
        return False


def is_task(row: dict[str, Any], tasks: bool) -> bool:
    """A send that reached a task-following platform as a task (not a welcome, which goes out at once)."""
    message = row.get("external_message_id") or ""
    return tasks and row["status"] == "sent" and bool(message) and not message.startswith("welcome:")


def sends_view(ws: Workspace, *, status: str | None = None, kind: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """`list_sends` for the console: times in the workspace's zone, and whether a row is a task to follow."""
    zone = ws.settings.zone
    tasks: dict[str, bool] = {}
    rows = list_sends(ws, status=status, kind=kind, limit=limit)
    for row in rows:
        platform = row["platform"]
        if platform not in tasks:
            tasks[platform] = follows_tasks(ws, platform)
        row["task"] = is_task(row, tasks[platform])
        for name in ("created_at", "sent_at", "next_at"):
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=UTC).astimezone(zone)
    return rows
