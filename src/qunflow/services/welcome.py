"""Welcome and first activation (C3, S1): welcome DM, group menu, Day-1 tasks and their completion."""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.connectors.base import MemberJoined, MessagePosted
from qunflow.domain.events import Event
from qunflow.domain.templates import render_template
from qunflow.domain.welcome import TASK_KEYS, Welcome, is_checkin, pick_language
from qunflow.errors import InvalidInput, PlatformError
from qunflow.services.join import member_of_user
from qunflow.services.platforms import connector_for
from qunflow.services.privacy import member_link_token, unseal
from qunflow.services.welcome_docs import active_welcome
from qunflow.store.eventlog import append_events
from qunflow.store.tables import deliveries, entry_points, groups, member_tasks, members
from qunflow.workspace import Workspace


def _now_utc(ws: Workspace) -> Any:
    return ws.clock().replace(tzinfo=UTC)


def send_once(ws: Workspace, key: str, *, member_id: str | None, platform: str, target: str, kind: str,
              send: Any) -> str | None:
    """Record the send, call the platform, record the result. A key already sent is not sent again."""
    try:
        with ws.engine.begin() as conn:
            conn.execute(insert(deliveries).values(idempotency_key=key, member_id=member_id, platform=platform,
                                                   target=target, kind=kind, status="pending",
                                                   created_at=ws.clock()))
    except IntegrityError:
        return None  # recorded before: sent, or left for the retry worker (issue 4)
    try:
        result = send()
    except PlatformError as exc:
        with ws.engine.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.idempotency_key == key)
                         .values(status="failed", error=str(exc)[:500]))
        return None
    with ws.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.idempotency_key == key)
                     .values(status="sent", sent_at=ws.clock(), external_message_id=result.message_id))
    return str(result.message_id)


def welcome(ws: Workspace, member_id: str, group: Any, item: MemberJoined) -> None:
    """S1: the private welcome straight from the join (some platforms' DM window is ~20 s), with the texts and
    Day-1 tasks of the welcome in force (services.welcome_docs: the applied `kind: welcome`, or the default)."""
    started = time.perf_counter()
    connector = connector_for(ws, item.platform)
    with ws.engine.connect() as conn:
        member = conn.execute(select(members.c.locale, members.c.profile, members.c.tier,
                                     entry_points.c.code.label("entry_point"))
                              .outerjoin(entry_points, entry_points.c.id == members.c.entry_point_id)
                              .where(members.c.id == member_id)).one()
        version, config = active_welcome(conn)
    language = pick_language(member.locale)
    profile = unseal(ws, member.profile)
    token = member_link_token(ws, member_id)
    base = ws.settings.public_url.rstrip("/")
    tier = member.tier or group.tier
    variant, dm = config.dm_for(tier, member.entry_point)
    text = render_template({"zh": dm.zh, "en": dm.en}, {
        "name": profile.get("name") or item.display_name,
        "profile_link": f"{base}/m/{token}/task/profile",
        "coupon_link": f"{base}/m/{token}/task/claim_coupon",
        "rules_link": f"{base}/rules", "group": group.key, "tier": tier, "entry_point": member.entry_point or ""},
        language)
    sent = send_once(ws, f"welcome_dm:{member_id}", member_id=member_id, platform=item.platform,
                     target=item.user_id, kind="welcome_dm",
                     send=lambda: connector.send_direct(item.user_id, text, context=item.dm_context))
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    now = ws.clock()
    # A profile the gate already collected is not asked for again.
    tasks = [task for task in config.day1_tasks if not (task.key == "profile" and profile.get("name"))]
    events = [Event(event_id=f"ta-{member_id}-{task.key}", type="task_assigned", ts=_now_utc(ws),
                    member_id=member_id, group=group.key, properties={"task": task.key})
              for task in tasks]
    if sent:
        events.append(Event(event_id=f"ws-{member_id}", type="welcome_sent", ts=_now_utc(ws),
                            member_id=member_id, group=group.key,
                            properties={"latency_ms": latency_ms,
                                        "seconds_after_join": (now - item.at).total_seconds(),
                                        "welcome_version": version or 0, "variant": variant}))
    with ws.engine.begin() as conn:
        for task in tasks:
            conn.execute(insert(member_tasks).values(
                member_id=member_id, task_key=task.key, assigned_at=now, due_at=now + timedelta(hours=task.due_hours)))
        append_events(conn, events)
    post_menu(ws, group, item, language, config)


def post_menu(ws: Workspace, group: Any, item: MemberJoined, language: str, config: Welcome) -> None:
    """The welcome menu; joins within `menu_batch_seconds` share one post (group rate limits)."""
    seconds = config.menu_batch_seconds
    window = int(ws.clock().timestamp()) // seconds
    batch = f"{window}" if seconds == 60 else f"{seconds}s:{window}"  # the default keeps the keys it always had
    text = render_template({"zh": config.menu.zh, "en": config.menu.en}, {
        "names": item.display_name, "rules_link": f"{ws.settings.public_url.rstrip('/')}/rules",
        "group": group.key, "tier": group.tier}, language)
    connector = connector_for(ws, item.platform)
    send_once(ws, f"welcome_menu:{group.key}:{batch}", member_id=None, platform=item.platform,
              target=item.group_id, kind="welcome_menu",
              send=lambda: connector.post_to_group(item.group_id, text))


def complete_task(ws: Workspace, member_id: str, task_key: str) -> bool:
    """Mark a task done (once) and record `task_completed`. False if already done, or not assigned to the member.
    InvalidInput for a key neither the welcome in force (nor the default) names nor the member was given."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        if task_key not in TASK_KEYS and task_key not in active_welcome(conn)[1].task_keys and conn.execute(
                select(member_tasks.c.id).where(member_tasks.c.member_id == member_id,
                                                member_tasks.c.task_key == task_key)).first() is None:
            raise InvalidInput(f"unknown task {task_key!r}")
        done = conn.execute(update(member_tasks).where(
            member_tasks.c.member_id == member_id, member_tasks.c.task_key == task_key,
            member_tasks.c.completed_at.is_(None)).values(completed_at=now)).rowcount
        if not done:
            return False
        group_key = conn.execute(select(groups.c.key).join(members, members.c.group_id == groups.c.id)
                                 .where(members.c.id == member_id)).scalar()
        append_events(conn, [Event(event_id=f"tc-{member_id}-{task_key}", type="task_completed",
                                   ts=now.replace(tzinfo=UTC), member_id=member_id, group=group_key,
                                   properties={"task": task_key})])
    return True


def on_message(ws: Workspace, item: MessagePosted) -> None:
    """A member wrote: record `message` (activity); a check-in word completes the check-in task;
    then the keyword rules act on it (services.keyword_rules)."""
    with ws.engine.begin() as conn:
        member_id = member_of_user(conn, item.platform, item.user_id)
        if member_id is None:
            return
        group_key = None
        if item.group_id:
            group_key = conn.execute(select(groups.c.key).where(
                groups.c.platform == item.platform, groups.c.external_id == item.group_id)).scalar()
        stamp = f"{item.at:%Y%m%d%H%M%S%f}"
        events = [Event(event_id=f"msg-{item.platform}-{item.user_id}-{stamp}", type="message",
                        ts=item.at.replace(tzinfo=UTC), member_id=member_id, group=group_key,
                        properties={"private": item.group_id is None})]
        if is_checkin(item.text):
            events.append(Event(event_id=f"ci-{item.platform}-{item.user_id}-{stamp}", type="checkin",
                                ts=item.at.replace(tzinfo=UTC), member_id=member_id, group=group_key))
        append_events(conn, events)
    if is_checkin(item.text):
        complete_task(ws, member_id, "checkin")
    from qunflow.services.keyword_rules import on_message as keyword_rules

    keyword_rules(ws, item, member_id)
