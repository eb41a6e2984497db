"""The Bot API methods FakeTelegram answers: each takes the fake and the call's parameters, returns `result`
or raises ApiError. Shapes follow core.telegram.org/bots/api (ChatInviteLink, ChatMember, Message, User)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from tests.fakes.telegram_server import (
    BOT_ID,
    DM_WINDOW,
    SECRET,
    ApiError,
    Chat,
    FakeTelegram,
    Link,
    Person,
    Request,
)

NOT_ADMIN = "Bad Request: not enough rights to manage chat invite links"


def get_me(fake: FakeTelegram, _params: dict[str, Any]) -> dict[str, Any]:
    return {**fake.bot, "can_join_groups": True, "can_read_all_group_messages": not fake.privacy_mode,
            "supports_inline_queries": False}


def set_webhook(fake: FakeTelegram, params: dict[str, Any]) -> bool:
    url = str(params.get("url", ""))
    secret = params.get("secret_token")
    if secret is not None and not SECRET.fullmatch(str(secret)):
        raise ApiError(400, "Bad Request: secret token contains unallowed characters")
    if not url:
        fake.webhook = None
        return True
    if not url.startswith(("http://", "https://")):  # a local Bot API server takes http on any port
        raise ApiError(400, "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
    connections = params.get("max_connections", 40)
    if not isinstance(connections, int) or not 1 <= connections <= 100:
        raise ApiError(400, "Bad Request: max_connections must be between 1 and 100")
    fake.webhook = {"url": url, "secret_token": secret, "max_connections": connections}
    _allow(fake, params)
    if params.get("drop_pending_updates"):
        fake._pending.clear()
    fake.wake_senders()
    return True


def delete_webhook(fake: FakeTelegram, params: dict[str, Any]) -> bool:
    fake.webhook = None
    if params.get("drop_pending_updates"):
        fake._pending.clear()
    return True


def get_webhook_info(fake: FakeTelegram, _params: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"url": (fake.webhook or {}).get("url", ""), "has_custom_certificate": False,
                            "pending_update_count": len(fake._pending)}
    if fake.allowed_updates is not None:
        info["allowed_updates"] = sorted(fake.allowed_updates)
    return info


def get_updates(fake: FakeTelegram, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Long polling: an update is confirmed (dropped) once getUpdates is called with a higher offset."""
    deadline = fake.clock_monotonic() + min(float(params.get("timeout") or 0), fake.poll_cap)
    limit = int(params.get("limit") or 100)
    with fake._changed:
        if fake.webhook:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        _allow(fake, params)
        offset = params.get("offset")
        if offset is not None:
            fake._pending[:] = [u for u in fake._pending if u["update_id"] >= int(offset)]
        while not fake._pending and not fake._stopping:
            left = deadline - fake.clock_monotonic()
            if left <= 0:
                break
            fake._changed.wait(left)
        return list(fake._pending[:limit])


def create_chat_invite_link(fake: FakeTelegram, params: dict[str, Any]) -> dict[str, Any]:
    chat = _chat(fake, params)
    if not chat.can_invite:
        raise ApiError(400, NOT_ADMIN)
    name = params.get("name")
    if name is not None and len(str(name)) > 32:
        raise ApiError(400, "Bad Request: invite link name is too long")
    limit = params.get("member_limit")
    joins = bool(params.get("creates_join_request"))
    if limit is not None and joins:
        raise ApiError(400, "Bad Request: can't combine member_limit with creates_join_request")
    if limit is not None and not 1 <= int(limit) <= 99_999:
        raise ApiError(400, "Bad Request: member_limit must be between 1 and 99999")
    expire = params.get("expire_date")
    if expire is not None and not isinstance(expire, int):
        raise ApiError(400, "Bad Request: invalid expire_date specified")
    link = Link(f"https://t.me/+{secrets.token_urlsafe(12)}", str(name) if name else None, joins,
                None if limit is None else int(limit), expire_date=expire)
    chat.links[link.url] = link
    return link.obj(fake.bot)


def revoke_chat_invite_link(fake: FakeTelegram, params: dict[str, Any]) -> dict[str, Any]:
    chat = _chat(fake, params)
    if not chat.can_invite:
        raise ApiError(400, NOT_ADMIN)
    link = chat.links.get(str(params.get("invite_link")))
    if link is None:
        raise ApiError(400, "Bad Request: INVITE_HASH_INVALID")
    link.revoked = True
    return link.obj(fake.bot)


def approve_chat_join_request(fake: FakeTelegram, params: dict[str, Any]) -> bool:
    chat, request = _request(fake, params)
    request.status = "approved"
    person = fake.people[request.user_id]
    # via_join_request is documented for requests made without an invite link; otherwise the link is given.
    fake._add_member(chat, person, request.link, by=fake.bot, via_join_request=request.link is None)
    return True


def decline_chat_join_request(fake: FakeTelegram, params: dict[str, Any]) -> bool:
    _chat_obj, request = _request(fake, params)
    request.status = "declined"
    return True


def send_message(fake: FakeTelegram, params: dict[str, Any]) -> dict[str, Any]:
    text = str(params.get("text") or "")
    if not text:
        raise ApiError(400, "Bad Request: message text is empty")
    if len(text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    chat_id = _int(params, "chat_id")
    now = fake.clock()
    bot_bucket = ("bot", fake.limits.bot_per_second, 1.0)
    if chat_id < 0:
        chat = fake.chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        fake.check_rate(bot_bucket, (f"group:{chat_id}", fake.limits.group_per_minute, 60.0))
        chat_obj, person = chat.obj(), None
        message_id = fake._message_id(chat)
    else:
        person = _reachable(fake, chat_id, now)
        fake.check_rate(bot_bucket, (f"private:{chat_id}", fake.limits.private_per_second, 1.0))
        chat_obj = {"id": chat_id, "type": "private", "first_name": person.first_name}
        message_id = fake._message_id(None)
    fake.record_sent({"chat_id": str(chat_id), "text": text, "at": now, "private": person is not None,
                      "user_id": None if person is None else str(person.id), "message_id": message_id})
    return {"message_id": message_id, "from": fake.bot, "chat": chat_obj, "date": int(now), "text": text}


def ban_chat_member(fake: FakeTelegram, params: dict[str, Any]) -> bool:
    """Out of the chat and kept out (status kicked) until unbanned; an admin bot may do it."""
    chat = _chat(fake, params)
    if not chat.bot_admin:
        raise ApiError(400, "Bad Request: not enough rights to restrict/unrestrict chat member")
    person = fake.people.get(_int(params, "user_id"))
    if person is None:
        raise ApiError(400, "Bad Request: user not found")
    old = chat.status.get(person.id, "left")
    chat.status[person.id] = "kicked"
    fake._member_update(chat, person, fake.bot, old, "kicked")
    return True


def unban_chat_member(fake: FakeTelegram, params: dict[str, Any]) -> bool:
    """only_if_banned: a banned person may join again by link; else (as documented) a member is removed too."""
    chat = _chat(fake, params)
    if not chat.bot_admin:
        raise ApiError(400, "Bad Request: not enough rights to restrict/unrestrict chat member")
    user_id = _int(params, "user_id")
    status = chat.status.get(user_id, "left")
    if status == "kicked" or (status == "member" and not params.get("only_if_banned")):
        chat.status[user_id] = "left"
    return True


def get_chat_member(fake: FakeTelegram, params: dict[str, Any]) -> dict[str, Any]:
    chat = _chat(fake, params)
    user_id = _int(params, "user_id")
    if user_id == BOT_ID:
        if not chat.bot_admin:
            return {"status": "member", "user": fake.bot}
        return {"status": "administrator", "user": fake.bot, "can_be_edited": False, "is_anonymous": False,
                "can_manage_chat": True, "can_delete_messages": True, "can_manage_video_chats": True,
                "can_restrict_members": True, "can_promote_members": False, "can_change_info": True,
                "can_invite_users": chat.can_invite, "can_post_stories": False, "can_edit_stories": False,
                "can_delete_stories": False, "can_pin_messages": True, "can_manage_topics": False}
    person = fake.people.get(user_id)
    if person is None:
        raise ApiError(400, "Bad Request: user not found")
    return {"status": chat.status.get(user_id, "left"), "user": person.user()}


def _reachable(fake: FakeTelegram, chat_id: int, now: float) -> Person:
    """Who a private chat id reaches, if the bot may write there now."""
    person = fake.people.get(chat_id)
    via_request = person is None
    if person is None:
        person = next((p for p in fake.people.values() if p.user_chat_id == chat_id), None)
    if person is None:
        raise ApiError(400, "Bad Request: chat not found")
    if person.blocked:
        raise ApiError(403, "Forbidden: bot was blocked by the user")
    if person.started_bot:
        return person
    if chat_id == person.user_chat_id or via_request:
        # user_chat_id: "for 5 minutes to send messages until the join request is processed"
        for chat in fake.chats.values():
            request = chat.requests.get(person.id)
            if request and request.status == "pending" and now - request.date <= DM_WINDOW:
                return person
    raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")


def _request(fake: FakeTelegram, params: dict[str, Any]) -> tuple[Chat, Request]:
    chat = _chat(fake, params)
    if not chat.can_invite:
        raise ApiError(400, "Bad Request: not enough rights")
    request = chat.requests.get(_int(params, "user_id"))
    if request is None or request.status != "pending":
        raise ApiError(400, "Bad Request: HIDE_REQUESTER_MISSING")
    return chat, request


def _chat(fake: FakeTelegram, params: dict[str, Any]) -> Chat:
    chat = fake.chats.get(_int(params, "chat_id"))
    if chat is None:
        raise ApiError(400, "Bad Request: chat not found")
    return chat


def _int(params: dict[str, Any], name: str) -> int:
    try:
        return int(params[name])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, f"Bad Request: {name} is empty" if name not in params
                       else f"Bad Request: invalid {name} specified") from None


def _allow(fake: FakeTelegram, params: dict[str, Any]) -> None:
    """allowed_updates: a list sets it (empty: the default set); left out, the previous setting stays."""
    allowed = params.get("allowed_updates")
    if isinstance(allowed, list):
        fake.allowed_updates = set(allowed) or None


METHODS: dict[str, Callable[[FakeTelegram, dict[str, Any]], Any]] = {
    "getMe": get_me, "setWebhook": set_webhook, "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info, "getUpdates": get_updates,
    "createChatInviteLink": create_chat_invite_link, "revokeChatInviteLink": revoke_chat_invite_link,
    "approveChatJoinRequest": approve_chat_join_request, "declineChatJoinRequest": decline_chat_join_request,
    "sendMessage": send_message, "getChatMember": get_chat_member,
    "banChatMember": ban_chat_member, "unbanChatMember": unban_chat_member,
}
