"""Activity (C4): a member's messages as events, and check-in words completing the check-in task.

An inbound handler (services.inbound); the keyword rules have their own handler for the same message.
Events never carry the message text (privacy): only that a member wrote, where, and when.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import select

from qunflow.connectors.base import MessagePosted
from qunflow.domain.events import Event
from qunflow.domain.welcome import is_checkin
from qunflow.services.join import member_of_user
from qunflow.services.welcome import complete_task
from qunflow.store.eventlog import append_events
from qunflow.store.tables import groups
from qunflow.workspace import Workspace


def on_message(ws: Workspace, item: Any) -> None:
    """A member wrote: record `message` (activity); a check-in word also records `checkin` and completes
    the check-in task. Messages from people who are not members are not recorded."""
    assert isinstance(item, MessagePosted)
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
