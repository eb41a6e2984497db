"""The at-risk list (issue 13): members who became `slipping` this week, with one click to an advisor task or
a playbook; and the members per engagement level by group and channel for the dashboard.

Reads the levels services/levels.py stored; "this week" = the 7 local days ending today.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from qunflow.domain.engagement import LEVELS
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.automation import _enrollment
from qunflow.services.playbooks import active_playbooks
from qunflow.store.plain import insert_if_new
from qunflow.store.tables import channels, enrollments, entry_points, groups, inbox, member_levels, members
from qunflow.workspace import Workspace

AT_RISK_LEVEL = "slipping"
TASK_HOURS = 24


def week_start(ws: Workspace) -> date:
    return ws.local_today() - timedelta(days=6)


def at_risk(ws: Workspace, group_keys: frozenset[str] | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Members slipping since a day of this week (newest first), with their group, channel and open task."""
    open_task = (select(func.count()).select_from(inbox)
                 .where(inbox.c.member_id == member_levels.c.member_id, inbox.c.done_at.is_(None),
                        inbox.c.cause.like("at_risk:%")).scalar_subquery())
    query = (select(member_levels.c.member_id, member_levels.c.since, member_levels.c.score, members.c.tier,
                    groups.c.key.label("group"), channels.c.key.label("channel"), open_task.label("open_tasks"))
             .select_from(member_levels.join(members, members.c.id == member_levels.c.member_id)
                          .outerjoin(groups, groups.c.id == members.c.group_id)
                          .outerjoin(entry_points, entry_points.c.id == members.c.entry_point_id)
                          .outerjoin(channels, channels.c.id == entry_points.c.channel_id))
             .where(member_levels.c.level == AT_RISK_LEVEL, member_levels.c.since >= week_start(ws))
             .order_by(member_levels.c.since.desc(), member_levels.c.member_id).limit(limit))
    if group_keys is not None:
        query = query.where(groups.c.key.in_(group_keys))
    with ws.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def _slipping_since(conn: Any, member_id: str) -> date:
    since = conn.execute(select(member_levels.c.since).where(
        member_levels.c.member_id == member_id, member_levels.c.level == AT_RISK_LEVEL)).scalar()
    if since is None:
        raise NotFound(f"member {member_id} is not on the at-risk list", zh=f"成员 {member_id} 不在流失预警名单上")
    return since  # type: ignore[no-any-return]


def open_advisor_task(ws: Workspace, member_id: str) -> bool:
    """An inbox item to follow the member up (one per slipping spell); False when it was already open."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        since = _slipping_since(conn, member_id)
        return insert_if_new(conn, inbox, {
            "kind": "follow_up", "cause": f"at_risk:{member_id}:{since.isoformat()}", "member_id": member_id,
            "title": "会员在流失:一对一跟进 / Slipping member: follow up one-to-one", "due_at":
                now + timedelta(hours=TASK_HOURS), "created_at": now})


def member_playbooks(ws: Workspace) -> list[str]:
    """The keys of enabled playbooks that run for one member (not group schedules): what may be started here."""
    with ws.engine.connect() as conn:
        return [key for key, _v, p in active_playbooks(conn) if p.trigger.on not in ("schedule", "event_scheduled")]


def enroll_at_risk(ws: Workspace, member_id: str, playbook_key: str) -> bool:
    """Start a playbook for the member now (once per slipping spell); False when already started."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        since = _slipping_since(conn, member_id)
        found = {key: (version, p) for key, version, p in active_playbooks(conn)}
        if playbook_key not in found:
            raise NotFound(f"no enabled playbook {playbook_key!r}", zh=f"没有启用中的剧本 {playbook_key!r}")
        version, playbook = found[playbook_key]
        if playbook.trigger.on in ("schedule", "event_scheduled"):
            raise InvalidInput(f"playbook {playbook_key!r} runs for groups on a schedule, not for one member",
                               zh=f"剧本 {playbook_key!r} 按计划对群运行,不能为单个成员启动")
        row = _enrollment(playbook_key, version, member_id, f"at_risk:{since.isoformat()}", now,
                          {"source": "at_risk"})
        return insert_if_new(conn, enrollments, row)


def level_counts(ws: Workspace) -> dict[str, list[dict[str, Any]]]:
    """Members per level for each group and each channel (of their entry point): the dashboard's table."""
    out: dict[str, list[dict[str, Any]]] = {}
    with ws.engine.connect() as conn:
        for name, key, joins in (
                ("groups", groups.c.key, member_levels.join(members, members.c.id == member_levels.c.member_id)
                 .join(groups, groups.c.id == members.c.group_id)),
                ("channels", channels.c.key, member_levels.join(members, members.c.id == member_levels.c.member_id)
                 .join(entry_points, entry_points.c.id == members.c.entry_point_id)
                 .join(channels, channels.c.id == entry_points.c.channel_id))):
            rows: dict[str, dict[str, Any]] = {}
            for value, level, count in conn.execute(select(key, member_levels.c.level, func.count())
                                                    .select_from(joins).group_by(key, member_levels.c.level)):
                rows.setdefault(value, {"key": value, **dict.fromkeys(LEVELS, 0)})[level] = int(count)
            out[name] = [rows[k] for k in sorted(rows)]
    return out


__all__ = ["at_risk", "enroll_at_risk", "level_counts", "member_playbooks", "open_advisor_task", "week_start"]
