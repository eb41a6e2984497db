"""qunflow's connector to Feishu / Lark: a custom app's bot in the company's groups.

Entry: an invite is the group's share link (im/v1/chats/:chat_id/link) plus a code (the label). Feishu's
member-added event never says which link someone used, so a join through the share link alone comes in
without a label (recorded `not_reported`). The attributed path: the person sends the code to the bot in a
private chat, the bot adds them to the group (im/v1/chats/:chat_id/members) and remembers whom it added
for which code, so the member-added event that follows carries that label. That memory is a small JSON
file under the workspace home (codes handed out, people added), not the database.

Inbound calls are signed (X-Lark-Signature) and encrypted with the Encrypt Key; the signature and the
request timestamp are checked before anything is decrypted or parsed, then the verification token inside.
Every update's key is the event's header.event_id (Feishu redelivers with the same id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock

from qunflow.connectors.base import (
    Capabilities,
    Fix,
    Host,
    Inbound,
    InviteLink,
    MemberJoined,
    MemberLeft,
    MessagePosted,
    SendResult,
    Update,
)
from qunflow.connectors.feishu.api import FeishuApi, FeishuApiError
from qunflow.connectors.feishu.crypto import FeishuCrypto
from qunflow.connectors.feishu.events import (
    MEMBER_ADDED,
    MEMBER_DELETED,
    MESSAGE,
    FeishuEvent,
    loads,
    message_text,
    open_id,
    parse_event,
    users,
)
from qunflow.connectors.feishu.settings import FeishuSettings
from qunflow.errors import InvalidInput, PlatformError, Unauthorized

log = logging.getLogger(__name__)

PLATFORM = "feishu"
CALLBACK_PATH = "/hooks/feishu"
CODE_MAX = 30  # a code a person types to the bot: short enough to type, long enough for entry codes
UUID_MAX = 50  # im/v1/messages `uuid`: at most 50 characters
MAX_SKEW = timedelta(minutes=5)  # a signed request older (or newer) than this is refused as stale or replayed
STATE_FILE = "feishu-codes.json"
ACTED_KEEP = 1000  # message events whose code was acted on (a redelivery adds nobody twice)

CAPABILITIES = Capabilities(
    join_requests=False, dm_policy="any", dm_window_seconds=None, invite_label_max=CODE_MAX,
    # The member-added event does not say which share link was used; a label comes only from the code path.
    reports_invite_on_join=False, group_capacity_max=None,
    reads_group_messages=True,  # with the im:message.group_msg scope (all group messages, not only @bot)
    idempotent_sends=True,  # `uuid`: one message per uuid within an hour
    posts_to_groups=True,
    joins_by_message=True,  # the landing and ticket pages show "join CODE", what to send the bot
    removes_members=True,  # DELETE im/v1/chats/:chat_id/members (the bot must own or manage the group)
)
# What a person sends the bot to be added: `join CODE` (as the pages show it), `加入 CODE`, or the bare code.
ASK = re.compile(r"\s*(?:join|加入)\s+(\S+)\s*", re.IGNORECASE)


class FeishuConnector:
    """The `Connector` port for Feishu / Lark. One instance per workspace; the API client is shared."""

    platform = PLATFORM
    capabilities = CAPABILITIES

    def __init__(self, settings: FeishuSettings, host: Host, *, api: FeishuApi | None = None) -> None:
        self.settings = settings
        self.host = host
        self.api = api or FeishuApi(settings.app_id, settings.app_secret, settings.domain, host.clock)
        self.crypto = FeishuCrypto(settings.encrypt_key)
        self._lock = threading.Lock()
        self._path: Path = host.home / STATE_FILE
        self._file_lock = FileLock(self._path.with_suffix(".lock"))

    # --- the codes file: {"codes": {code: chat_id}, "added": {"chat|open_id": code}, "acted": [event_id]} ---
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across threads and across `qunflow serve` processes sharing the home."""
        with self._lock, self._file_lock:
            yield

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except ValueError:
            log.warning("feishu: %s is not JSON; starting it afresh", self._path.name)
            data = {}
        return {"codes": dict(data.get("codes", {})), "added": dict(data.get("added", {})),
                "acted": list(data.get("acted", []))}

    def _save(self, data: dict[str, Any]) -> None:
        data["acted"] = data["acted"][-ACTED_KEEP:]
        tmp = self._path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self._path)

    # --- inbound ---
    def receive(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Inbound:
        if method.upper() != "POST":
            raise InvalidInput(f"feishu event: method {method} is not used by Feishu (it POSTs events)",
                               zh=f"飞书事件:飞书不使用 {method} 方法(事件以 POST 推送)")
        lower = {k.lower(): v for k, v in headers.items()}
        signature = lower.get("x-lark-signature", "")
        timestamp, nonce = lower.get("x-lark-request-timestamp", ""), lower.get("x-lark-request-nonce", "")
        if signature:  # every event is signed; the URL check (url_verification) is not
            self.crypto.verify(timestamp, nonce, body, signature)
            self._check_fresh(timestamp)
        encrypted = loads(body, "request body").get("encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise Unauthorized("feishu event: not encrypted; set the Encrypt Key on 事件与回调 → 加密策略 "
                               "(qunflow needs it to verify each call)",
                               zh="飞书事件:未加密;请在「事件与回调 → 加密策略」设置 Encrypt Key"
                                  "(qunflow 要用它校验每次调用)")
        payload = loads(self.crypto.decrypt(encrypted), "decrypted event")
        if payload.get("type") == "url_verification":
            self._check_token(str(payload.get("token") or ""))
            reply = json.dumps({"challenge": str(payload.get("challenge") or "")}).encode()
            return Inbound([], reply=reply)
        if not signature:
            raise Unauthorized("feishu event: no X-Lark-Signature header; only Feishu's signed calls are read",
                               zh="飞书事件:缺少 X-Lark-Signature 请求头;只接受飞书签名过的调用")
        event = parse_event(payload)
        self._check_token(event.token)
        return Inbound(self.updates_for(event), reply=b'{"code":0}')

    def _check_token(self, token: str) -> None:
        if not hmac.compare_digest(token.encode(), self.settings.verification_token.encode()):
            raise Unauthorized("feishu event: the verification token does not match; check verification_token "
                               "in [platforms.feishu] (事件与回调 → 加密策略 → Verification Token)",
                               zh="飞书事件:Verification Token 不符;请检查 [platforms.feishu] 里的 "
                                  "verification_token(事件与回调 → 加密策略 → Verification Token)")

    def _check_fresh(self, timestamp: str) -> None:
        try:
            sent = datetime(1970, 1, 1) + timedelta(seconds=int(timestamp))
        except (ValueError, OverflowError) as exc:
            raise Unauthorized("feishu event: X-Lark-Request-Timestamp is not a time in seconds",
                               zh="飞书事件:X-Lark-Request-Timestamp 不是以秒计的时间") from exc
        if abs(self.host.clock() - sent) > MAX_SKEW:
            raise Unauthorized("feishu event: the request is more than 5 minutes old (or ahead): refused as "
                               "stale or replayed; check the server clock",
                               zh="飞书事件:请求早于(或晚于)当前时间超过 5 分钟,疑为过期或重放,已拒绝;请检查服务器时钟")

    def updates_for(self, event: FeishuEvent) -> list[Update]:
        key = f"feishu:{event.event_id}"
        body = event.event
        if event.event_type == MEMBER_ADDED:
            chat_id = _chat_id(body)
            added = self._load()["added"]
            return [MemberJoined(platform=PLATFORM, at=event.created, key=f"{key}:{uid}", group_id=chat_id,
                                 user_id=uid, display_name=name, invite_label=added.get(f"{chat_id}|{uid}"))
                    for uid, name in users(body)]
        if event.event_type == MEMBER_DELETED:
            chat_id = _chat_id(body)
            self._forget_added(chat_id, [uid for uid, _name in users(body)])
            return [MemberLeft(platform=PLATFORM, at=event.created, key=f"{key}:{uid}", group_id=chat_id,
                               user_id=uid) for uid, _name in users(body)]
        if event.event_type == MESSAGE:
            return self._message(event, key)
        log.debug("feishu: ignoring %s", event.event_type)
        return []

    def _message(self, event: FeishuEvent, key: str) -> list[Update]:
        sender, message = event.event.get("sender"), event.event.get("message")
        if not isinstance(sender, dict) or not isinstance(message, dict):
            raise InvalidInput("feishu event: a message event without sender or message",
                               zh="飞书事件:消息事件缺少 sender 或 message")
        if sender.get("sender_type") != "user":
            return []  # the bot's own messages and other apps'
        uid = open_id(sender.get("sender_id"))
        text = message_text(message)
        private = message.get("chat_type") == "p2p"
        if private and text.strip():
            asked = ASK.fullmatch(text)
            self._admit_by_code(event.event_id, uid, asked.group(1) if asked else text.strip())
        return [MessagePosted(platform=PLATFORM, at=event.created, key=key, user_id=uid, text=text,
                              group_id=None if private else str(message.get("chat_id") or "") or None,
                              message_id=str(message.get("message_id") or "") or None)]

    def _admit_by_code(self, event_id: str, uid: str, code: str) -> None:
        """A person sent the bot a code we handed out: add them to its group, remembering the code."""
        with self._locked():
            data = self._load()
            chat_id = data["codes"].get(code)
            if chat_id is None or event_id in data["acted"]:
                return
            # Remembered before the call: Feishu may deliver the member-added event before the call returns.
            data["added"][f"{chat_id}|{uid}"] = code
            data["acted"].append(event_id)
            self._save(data)
        try:
            result = self.api.add_members(chat_id, [uid])
        except PlatformError:
            with self._locked():  # not added: Feishu delivers the message again, and we try again then
                data = self._load()
                data["acted"] = [e for e in data["acted"] if e != event_id]
                self._save(data)
            raise
        refused = [*result.get("invalid_id_list", []), *result.get("not_existed_id_list", [])]
        if uid in refused:  # e.g. outside the app's availability (可用范围); no personal data in the log
            log.warning("feishu: chat %s refused to add a person who sent a code (invalid or unknown id)", chat_id)
        elif uid in result.get("pending_approval_id_list", []):
            log.info("feishu: chat %s holds a person who sent a code for an owner's approval", chat_id)

    def _forget_added(self, chat_id: str, uids: list[str]) -> None:
        """Whom the bot added for a code is kept until they leave: a later return through the bare share link
        is not credited to that code."""
        with self._locked():
            data = self._load()
            gone = [f"{chat_id}|{uid}" for uid in uids if f"{chat_id}|{uid}" in data["added"]]
            if gone:
                for pair in gone:
                    del data["added"][pair]
                self._save(data)

    # --- invites ---
    def create_invite(self, group_id: str, label: str, *, join_request: bool = False,
                      single_use: bool = False, expires_at: datetime | None = None) -> InviteLink:
        """The group's share link; `label` is the code that, sent to the bot, adds the person with attribution."""
        if len(label) > CODE_MAX or not label.strip() or label != label.strip():
            raise InvalidInput(f"invite code {label!r}: at most {CODE_MAX} characters without surrounding spaces "
                               "(a person types it to the bot)",
                               zh=f"邀请码 {label!r}:最多 {CODE_MAX} 个字符,且首尾不能有空格(成员要把它发给机器人)")
        link = self.api.chat_link(group_id, self.settings.link_validity)
        url = str(link.get("share_link") or "")
        if not url:
            raise PlatformError(f"feishu: chat {group_id} gave no share_link",
                                zh=f"飞书:群 {group_id} 没有返回 share_link")
        with self._locked():
            data = self._load()
            data["codes"][label] = group_id
            self._save(data)
        return InviteLink(url=url, label=label, join_request=False, handle=label)

    def revoke_invite(self, group_id: str, link: InviteLink) -> None:
        """The code stops adding people. Feishu has no call to revoke a share link (it dies with the bot's
        membership or its validity period), so the link itself keeps working, unattributed."""
        with self._locked():
            data = self._load()
            if data["codes"].get(link.label) == group_id:
                del data["codes"][link.label]
                self._save(data)

    def approve_join(self, group_id: str, user_id: str) -> None:
        raise InvalidInput("Feishu groups have no join requests to approve (capabilities.join_requests)",
                           zh="飞书群没有入群申请可以通过(capabilities.join_requests)")

    def decline_join(self, group_id: str, user_id: str) -> None:
        raise InvalidInput("Feishu groups have no join requests to decline (capabilities.join_requests)",
                           zh="飞书群没有入群申请可以拒绝(capabilities.join_requests)")

    def remove_member(self, group_id: str, user_id: str) -> None:
        self.api.remove_members(group_id, [user_id])

    # --- outbound ---
    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        return SendResult(self.api.send_message("open_id", user_id, text, uuid=_uuid(idempotency_key)))

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult:
        return SendResult(self.api.send_message("chat_id", group_id, text, uuid=_uuid(idempotency_key)))

    def check_group(self, group_id: str) -> list[str]:
        try:
            self.api.get_chat(group_id)
        except FeishuApiError as exc:
            return [Fix(f"The bot cannot run chat {group_id} ({exc}): add the app's bot to the group (群设置 → "
                        "群机器人 → 添加机器人), and let members share the group (or make the bot an admin).",
                        zh=f"机器人无法管理群 {group_id}({exc.text('zh')}):请把应用的机器人加入该群(群设置 → "
                           "群机器人 → 添加机器人),并允许成员分享该群(或把机器人设为群管理员)。")]
        return []

    # --- set-up ---
    def connect(self) -> list[str]:
        """Check app_id and app_secret (a tenant token); lines to print."""
        self.api.get_token(force=True)
        url = self.host.public_url.rstrip("/") + CALLBACK_PATH
        return [
            f"Feishu app {self.settings.app_id} on {self.settings.domain}: the credentials work.",
            f"Event request URL (事件与回调 → 事件配置 → 请求地址): {url}",
            "  Encrypt Key and Verification Token: the ones you gave (not printed).",
            "Events to add: im.chat.member.user.added_v1, im.chat.member.user.deleted_v1, im.message.receive_v1",
            "Permissions: im:message:send_as_bot, im:chat (share links, adding members), "
            "im:message.p2p_msg:readonly, im:message.group_msg (group activity), im:chat.members:read.",
        ]


def _chat_id(event: dict[str, Any]) -> str:
    chat_id = event.get("chat_id")
    if not chat_id:
        raise InvalidInput("feishu event: a member event without chat_id",
                           zh="飞书事件:成员事件缺少 chat_id")
    return str(chat_id)


def _uuid(key: str | None) -> str | None:
    """The outbox's key as Feishu's `uuid` (at most 50 characters: longer keys are hashed)."""
    if key is None or len(key) <= UUID_MAX:
        return key
    return "q-" + hashlib.sha256(key.encode()).hexdigest()[:40]
