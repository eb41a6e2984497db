"""Telegram `Update` objects -> qunflow's typed updates. Pure: no I/O, no clock.

Which updates count: a join request (`chat_join_request`), a member joining or leaving (`chat_member`,
the only source of joins, so a join is counted once: the `new_chat_members` service message that
also arrives is ignored), and text messages from people (`message`). Everything else is `[]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qunflow.connectors.base import JoinRequested, MemberJoined, MemberLeft, MessagePosted, Update
from qunflow.errors import InvalidInput

PLATFORM = "telegram"
GROUP_TYPES = ("group", "supergroup")


def parse_update(data: Any) -> list[Update]:
    """The qunflow updates one Telegram Update carries (at most one). Raises InvalidInput when malformed."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"Telegram update: expected a JSON object, got {type(data).__name__}",
                           zh=f"Telegram 更新:应为 JSON 对象,收到的是 {type(data).__name__}")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise InvalidInput("Telegram update: missing or non-integer update_id",
                           zh="Telegram 更新:缺少 update_id,或它不是整数")
    key = str(update_id)
    if "chat_join_request" in data:
        return [_join_request(_obj(data, "chat_join_request", "update"), key)]
    if "chat_member" in data:
        return _member_change(_obj(data, "chat_member", "update"), key)
    if "message" in data:
        return _message(_obj(data, "message", "update"), key)
    return []


def _join_request(request: Mapping[str, Any], key: str) -> Update:
    where = "chat_join_request"
    person = _obj(request, "from", where)
    return JoinRequested(
        PLATFORM, _at(request, where),
        group_id=str(_int(_obj(request, "chat", where), "id", f"{where}.chat")),
        user_id=str(_int(person, "id", f"{where}.from")),
        display_name=_name(person, f"{where}.from"),
        invite_label=_invite_name(request, where),
        dm_context=str(_int(request, "user_chat_id", where)),
        key=key,
    )


def _member_change(change: Mapping[str, Any], key: str) -> list[Update]:
    where = "chat_member"
    old = _obj(change, "old_chat_member", where)
    new = _obj(change, "new_chat_member", where)
    was, now = _is_member(old, f"{where}.old_chat_member"), _is_member(new, f"{where}.new_chat_member")
    person = _obj(new, "user", f"{where}.new_chat_member")
    if person.get("is_bot") is True or was == now:
        return []  # bots are not people in a funnel; promotions and restrictions are not joins
    group_id = str(_int(_obj(change, "chat", where), "id", f"{where}.chat"))
    user_id = str(_int(person, "id", f"{where}.new_chat_member.user"))
    at = _at(change, where)
    if now:
        return [MemberJoined(PLATFORM, at, group_id, user_id, _name(person, f"{where}.new_chat_member.user"),
                             _invite_name(change, where), key=key)]
    return [MemberLeft(PLATFORM, at, group_id, user_id, key=key)]


def _message(message: Mapping[str, Any], key: str) -> list[Update]:
    where = "message"
    text = message.get("text")
    sender = message.get("from")
    if not isinstance(text, str) or not isinstance(sender, Mapping) or sender.get("is_bot") is True:
        return []  # service messages (new_chat_members, left_chat_member), media, channel and bot posts
    chat = _obj(message, "chat", where)
    kind = chat.get("type")
    if kind not in (*GROUP_TYPES, "private"):
        return []
    return [MessagePosted(
        PLATFORM, _at(message, where),
        user_id=str(_int(sender, "id", f"{where}.from")),
        text=text,
        group_id=str(_int(chat, "id", f"{where}.chat")) if kind in GROUP_TYPES else None,
        message_id=str(_int(message, "message_id", where)),
        key=key,
    )]


def _is_member(member: Mapping[str, Any], where: str) -> bool:
    status = member.get("status")
    if status in ("creator", "administrator", "member"):
        return True
    if status == "restricted":
        return member.get("is_member") is True
    if status in ("left", "kicked"):
        return False
    raise InvalidInput(f"Telegram update: {where}.status {status!r} is not a ChatMember status",
                       zh=f"Telegram 更新:{where}.status {status!r} 不是 ChatMember 的状态")


def _invite_name(holder: Mapping[str, Any], where: str) -> str | None:
    link = holder.get("invite_link")
    if link is None:
        return None
    if not isinstance(link, Mapping):
        raise InvalidInput(f"Telegram update: {where}.invite_link must be a ChatInviteLink object",
                           zh=f"Telegram 更新:{where}.invite_link 须为 ChatInviteLink 对象")
    name = link.get("name")
    return name if isinstance(name, str) and name else None


def _name(user: Mapping[str, Any], where: str) -> str:
    first = user.get("first_name")
    if not isinstance(first, str):
        raise InvalidInput(f"Telegram update: {where}.first_name is missing",
                           zh=f"Telegram 更新:缺少 {where}.first_name")
    last = user.get("last_name")
    return f"{first} {last}" if isinstance(last, str) and last else first


def _at(holder: Mapping[str, Any], where: str) -> datetime:
    """Telegram dates are Unix seconds; qunflow keeps naive UTC."""
    return datetime.fromtimestamp(_int(holder, "date", where), UTC).replace(tzinfo=None)


def _obj(holder: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = holder.get(name)
    if not isinstance(value, Mapping):
        raise InvalidInput(f"Telegram update: {where}.{name} must be an object",
                           zh=f"Telegram 更新:{where}.{name} 须为对象")
    return value


def _int(holder: Mapping[str, Any], name: str, where: str) -> int:
    value = holder.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"Telegram update: {where}.{name} must be an integer",
                           zh=f"Telegram 更新:{where}.{name} 须为整数")
    return value
