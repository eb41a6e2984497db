"""Pure parsing of the Gateway dispatches qunflow acts on (discord.com/developers/docs/events/gateway-events).

GUILD_MEMBER_ADD carries a guild member object plus guild_id (with the GUILD_MEMBERS intent), and no word
on the invite used; GUILD_MEMBER_REMOVE carries guild_id and user; MESSAGE_CREATE a message object
(guild_id absent in DMs). Messages from bots (qunflow's own included) are not people talking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qunflow.errors import InvalidInput

PLATFORM = "discord"


@dataclass(frozen=True)
class Join:
    guild_id: str
    user_id: str
    display_name: str
    at: datetime  # joined_at, naive UTC
    key: str


def timestamp(value: Any) -> datetime:
    """An ISO8601 timestamp as naive UTC."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"discord event: {value!r} is not an ISO8601 timestamp",
                           zh=f"Discord 事件:{value!r} 不是 ISO8601 时间戳") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _user(payload: dict[str, Any], field: str = "user") -> dict[str, Any]:
    user = payload.get(field)
    if not isinstance(user, dict) or not str(user.get("id", "")).isdigit():
        raise InvalidInput(f"discord event: no {field} with an id",
                           zh=f"Discord 事件:没有带 id 的 {field}")
    return user


def display_name(user: dict[str, Any], nick: Any = None) -> str:
    return str(nick or user.get("global_name") or user.get("username") or user["id"])


def member_add(payload: dict[str, Any]) -> Join | None:
    """GUILD_MEMBER_ADD as a Join (None for a bot). The key is the same when the event comes again."""
    user = _user(payload)
    guild = str(payload.get("guild_id", ""))
    if not guild.isdigit():
        raise InvalidInput("discord GUILD_MEMBER_ADD: no guild_id",
                           zh="Discord GUILD_MEMBER_ADD 事件缺少 guild_id")
    if user.get("bot"):
        return None
    joined = timestamp(payload.get("joined_at"))
    return Join(guild, str(user["id"]), display_name(user, payload.get("nick")), joined,
                f"join:{guild}:{user['id']}:{joined.isoformat()}")


def member_remove(payload: dict[str, Any]) -> tuple[str, str]:
    """GUILD_MEMBER_REMOVE as (guild id, user id)."""
    user = _user(payload)
    guild = str(payload.get("guild_id", ""))
    if not guild.isdigit():
        raise InvalidInput("discord GUILD_MEMBER_REMOVE: no guild_id",
                           zh="Discord GUILD_MEMBER_REMOVE 事件缺少 guild_id")
    return guild, str(user["id"])


@dataclass(frozen=True)
class Message:
    message_id: str
    channel_id: str
    guild_id: str | None
    user_id: str
    text: str
    at: datetime


def message_create(payload: dict[str, Any]) -> Message | None:
    """MESSAGE_CREATE as a Message (None for a bot's or a webhook's message, or one without text)."""
    author = _user(payload, "author")
    if author.get("bot") or payload.get("webhook_id"):
        return None
    text = str(payload.get("content") or "")
    if not text:
        return None  # without the message-content intent, content arrives empty
    guild = payload.get("guild_id")
    return Message(str(payload.get("id", "")), str(payload.get("channel_id", "")),
                   str(guild) if guild else None, str(author["id"]), text, timestamp(payload.get("timestamp")))
