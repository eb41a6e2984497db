"""Pure parsing of Feishu event subscription v2 payloads (schema 2.0), after decryption.

{"schema": "2.0", "header": {event_id, event_type, create_time (ms), token, app_id, tenant_key},
 "event": {...}}; the URL check is {"challenge", "token", "type": "url_verification"}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qunflow.errors import InvalidInput

MEMBER_ADDED = "im.chat.member.user.added_v1"
MEMBER_DELETED = "im.chat.member.user.deleted_v1"
MESSAGE = "im.message.receive_v1"


@dataclass(frozen=True)
class FeishuEvent:
    event_id: str
    event_type: str
    created: datetime  # naive UTC
    token: str
    event: dict[str, Any]


_WHAT_ZH = {"request body": "请求体", "decrypted event": "解密后的事件", "message content": "消息内容"}


def loads(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"feishu event: the {what} is not JSON",
                           zh=f"飞书事件:{_WHAT_ZH.get(what, what)}不是 JSON") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"feishu event: the {what} is not a JSON object",
                           zh=f"飞书事件:{_WHAT_ZH.get(what, what)}不是 JSON 对象")
    return value


def parse_event(payload: dict[str, Any]) -> FeishuEvent:
    header = payload.get("header")
    if payload.get("schema") != "2.0" or not isinstance(header, dict):
        raise InvalidInput("feishu event: only event subscription v2 (schema 2.0) is read; "
                           "choose 2.0 on 事件与回调 in the developer console",
                           zh="飞书事件:只读取 2.0 版事件订阅(schema 2.0);请在开发者后台的「事件与回调」选择 2.0")
    event_id, event_type = str(header.get("event_id") or ""), str(header.get("event_type") or "")
    if not event_id or not event_type:
        raise InvalidInput("feishu event: the header has no event_id or event_type",
                           zh="飞书事件:header 缺少 event_id 或 event_type")
    try:
        created = datetime.fromtimestamp(int(str(header.get("create_time"))) / 1000, UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise InvalidInput("feishu event: header.create_time is not a time in milliseconds",
                           zh="飞书事件:header.create_time 不是以毫秒计的时间") from exc
    event = payload.get("event")
    return FeishuEvent(event_id, event_type, created, str(header.get("token") or ""),
                       event if isinstance(event, dict) else {})


def open_id(user_id: Any) -> str:
    """The open_id of a {union_id, user_id, open_id} object."""
    found = user_id.get("open_id") if isinstance(user_id, dict) else None
    if not found:
        raise InvalidInput("feishu event: a user without an open_id",
                           zh="飞书事件:用户缺少 open_id")
    return str(found)


def users(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(open_id, name) of each user a member added / deleted event names."""
    listed = event.get("users")
    if not isinstance(listed, list):
        raise InvalidInput("feishu event: a member event without users",
                           zh="飞书事件:成员事件缺少 users")
    return [(open_id(u.get("user_id")), str(u.get("name") or "")) for u in listed if isinstance(u, dict)]


def message_text(message: dict[str, Any]) -> str:
    """The text of a text message (content is a JSON string {"text": ...}); "" for other kinds."""
    if message.get("message_type") != "text":
        return ""
    content = loads(str(message.get("content") or "{}"), "message content")
    return str(content.get("text") or "")
