"""Events API payloads -> qunflow updates (pure: no I/O).

The envelope is `{"type": "event_callback", "event_id", "event_time", "team_id", "event": {...}}`; the
first call to a new Request URL is `{"type": "url_verification", "challenge"}`. Each update's key is the
envelope's `event_id`, which stays the same when Slack retries a delivery (X-Slack-Retry-Num).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from qunflow.connectors.base import JoinRequested, MemberJoined, MemberLeft, MessagePosted, Update
from qunflow.errors import InvalidInput

PLATFORM = "slack"
# What a person sends the bot to ask in: `join CODE` (or `加入 CODE`), or the bare code.
JOIN = re.compile(r"\s*(?:join|加入)\s+(\S{1,64})\s*", re.IGNORECASE)


def mention(user_id: str) -> str:
    """Slack renders `<@U123>` as the person's name: events carry ids only."""
    return f"<@{user_id}>"


def parse_event(envelope: dict[str, Any], channel_of: Callable[[str], str | None],
                label_for: Callable[[str, str], str | None]) -> list[Update]:
    """The updates one event_callback carries. `channel_of(code)`: the channel a join code of ours leads to;
    `label_for(channel, user)`: the code a person the bot invited used (None: not invited by the bot)."""
    event = envelope.get("event")
    if not isinstance(event, dict):
        raise InvalidInput("Slack event_callback without an event object",
                           zh="Slack event_callback 缺少 event 对象")
    key = envelope.get("event_id")
    key = str(key) if isinstance(key, str) and key else None
    at = _time(envelope.get("event_time"))
    kind = event.get("type")
    user = event.get("user")
    if not isinstance(user, str) or not user:
        return []
    if kind == "member_joined_channel":
        channel = str(event.get("channel") or "")
        return [MemberJoined(PLATFORM, at, channel, user, mention(user), label_for(channel, user), key=key)]
    if kind == "member_left_channel":
        return [MemberLeft(PLATFORM, at, str(event.get("channel") or ""), user, key=key)]
    if kind != "message" or event.get("subtype") or event.get("bot_id"):
        return []  # edits, joins-as-messages, and bots' own posts (ours among them) are not people talking
    text = str(event.get("text") or "")
    channel = str(event.get("channel") or "")
    message_id = str(event["ts"]) if event.get("ts") else None
    if event.get("channel_type") == "im":
        asked = JOIN.fullmatch(text)
        code = asked.group(1) if asked else text.strip()
        target = channel_of(code) if code else None
        if target is not None:
            return [JoinRequested(PLATFORM, at, target, user, mention(user), code, dm_context=channel, key=key)]
        return [MessagePosted(PLATFORM, at, user, text, None, message_id, key=key)]
    return [MessagePosted(PLATFORM, at, user, text, channel, message_id, key=key)]


def _time(value: Any) -> datetime:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
    return datetime.now(UTC).replace(tzinfo=None)
