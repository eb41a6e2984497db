"""The Discord connector: REST for invites and messages, the Gateway (polled) for joins, leaves and messages.

Attribution. Discord does not say which invite a member used. qunflow makes one invite per entry point (the
label stays here, in `discord_invites.json` under the workspace home) and, on each join, reads the guild's
invites with their use counts (GET /guilds/{id}/invites). The join carries an entry point's label only when
exactly one invite of the guild moved, by exactly one use, and that invite is one of ours (a single-use invite
that vanished counts as used). Anything else (none moved, several moved, an invite we do not know moved, the
bot may not read invites) is ambiguous: the join is recorded unattributed (`invite_label` None), never
guessed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from qunflow.connectors.base import (
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
from qunflow.connectors.discord import CAPABILITIES, events
from qunflow.connectors.discord.api import DiscordApi, DiscordApiError
from qunflow.connectors.discord.gateway import Gateway
from qunflow.connectors.discord.settings import DiscordSettings
from qunflow.errors import InvalidInput, PlatformError, Unauthorized

log = logging.getLogger(__name__)


# discord.com/developers/docs/topics/permissions
ADMINISTRATOR, CREATE_INSTANT_INVITE, MANAGE_GUILD = 1 << 3, 1 << 0, 1 << 5
VIEW_CHANNEL, SEND_MESSAGES, MANAGE_ROLES = 1 << 10, 1 << 11, 1 << 28
NEEDED = {CREATE_INSTANT_INVITE: "Create Invite", MANAGE_GUILD: "Manage Server (to read invite use counts)",
          VIEW_CHANNEL: "View Channels", SEND_MESSAGES: "Send Messages"}
NEEDED_ZH = {CREATE_INSTANT_INVITE: "Create Invite(创建邀请)",
             MANAGE_GUILD: "Manage Server(管理服务器,用于读取邀请使用次数)",
             VIEW_CHANNEL: "View Channels(查看频道)", SEND_MESSAGES: "Send Messages(发送消息)",
             MANAGE_ROLES: "Manage Roles(管理身份组,用于授予层级的身份组)"}
# Application flags (discord.com/developers/docs/resources/application#application-object-application-flags)
GATEWAY_GUILD_MEMBERS, GATEWAY_GUILD_MEMBERS_LIMITED = 1 << 14, 1 << 15
GATEWAY_MESSAGE_CONTENT, GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 18, 1 << 19
TEXT_CHANNEL = 0
SIGNATURE_WINDOW = 300.0  # seconds an interaction's X-Signature-Timestamp may be off (and a replay remembered)
INVITE_URL = "https://discord.gg/"
RESTART_WAIT_FIRST, RESTART_WAIT_MAX = 5.0, 300.0  # seconds before a stopped Gateway session is opened again


class DiscordConnector:
    """Implements the `Connector` port; `poll` hands over what the Gateway thread received."""

    platform = "discord"
    capabilities = CAPABILITIES

    def __init__(self, settings: DiscordSettings, host: Host | None = None, *, api: DiscordApi | None = None) -> None:
        self.settings = settings
        self.host = host
        self.api = api or DiscordApi(settings.bot_token, settings.api_base)
        self._lock = threading.Lock()
        self._channels: dict[str, str] = {}  # guild id -> the channel invites and posts go to
        self._dm_channels: dict[str, str] = {}
        self._bot_id: str | None = None
        self._gateway: Gateway | None = None
        self._again: deque[Update] = deque()  # updates a failed dispatch handed back (rewind)
        self._last: list[Update] = []
        self._seen_signatures: dict[str, float] = {}
        self._restart_wait = RESTART_WAIT_FIRST
        self._restart_at = 0.0

    def __repr__(self) -> str:
        return f"DiscordConnector(api_base={self.settings.api_base!r})"

    # --- the invite book: our labels and the last use counts seen, per guild ---
    @property
    def _book_path(self) -> Path | None:
        return self.host.home / "discord_invites.json" if self.host is not None else None

    def _read_book(self) -> dict[str, Any]:
        path = self._book_path
        if path is None or not path.exists():
            return {"labels": {}, "uses": {}}
        data = json.loads(path.read_text(encoding="utf-8"))
        return {"labels": dict(data.get("labels", {})), "uses": dict(data.get("uses", {}))}

    def _write_book(self, book: dict[str, Any]) -> None:
        path = self._book_path
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(book, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    # --- invites ---
    def _channel(self, group_id: str) -> str:
        """Where invites point and posts go: the server's system channel, else its first text channel."""
        guild_id, _role = split_group(group_id)
        if guild_id not in self._channels:
            guild = self.api.guild(guild_id)
            channel = guild.get("system_channel_id")
            if not channel:
                texts = sorted((c for c in self.api.guild_channels(guild_id) if c.get("type") == TEXT_CHANNEL),
                               key=lambda c: (c.get("position", 0), c.get("id", "")))
                if not texts:
                    raise PlatformError(f"discord server {guild_id} has no text channel for invites and posts",
                                        zh=f"Discord 服务器 {guild_id} 没有可用于邀请和发消息的文字频道")
                channel = texts[0]["id"]
            self._channels[guild_id] = str(channel)
        return self._channels[guild_id]

    def create_invite(self, group_id: str, label: str, *, join_request: bool = False,
                      single_use: bool = False, expires_at: datetime | None = None) -> InviteLink:
        if not label or len(label) > CAPABILITIES.invite_label_max:
            raise InvalidInput(f"a Discord invite label is 1-{CAPABILITIES.invite_label_max} characters "
                               f"(got {len(label)})",
                               zh=f"Discord 邀请标签须为 1-{CAPABILITIES.invite_label_max} 个字符"
                                  f"(当前 {len(label)} 个)")
        if join_request:
            raise InvalidInput("Discord has no join requests: an invite admits at once",
                               zh="Discord 没有入群申请:邀请链接会直接放人进来")
        with self._lock:
            # Before the invite exists: the guild's counts as they stand, so this join cannot be mistaken.
            book = self._read_book()
            guild_id, _role = split_group(group_id)
            if guild_id not in book["uses"]:
                book["uses"][guild_id] = self._counts(guild_id) or {}
            invite = self.api.create_invite(self._channel(group_id), max_age=0, max_uses=1 if single_use else 0,
                                            reason=f"qunflow entry {label}")
            code = str(invite["code"])
            book["labels"][code] = {"guild": guild_id, "group": group_id, "label": label,
                                    "max_uses": 1 if single_use else 0}
            book["uses"][guild_id][code] = int(invite.get("uses", 0) or 0)
            self._write_book(book)
        return InviteLink(url=INVITE_URL + code, label=label, join_request=False, handle=code)

    def revoke_invite(self, group_id: str, link: InviteLink) -> None:
        code = link.handle or link.url.rsplit("/", 1)[-1]
        try:
            self.api.delete_invite(code)
        except DiscordApiError as exc:
            if exc.code != 10006:  # Unknown Invite: already gone (used up, or deleted by a moderator)
                raise
        with self._lock:
            book = self._read_book()
            book["labels"].pop(code, None)
            self._write_book(book)

    def _counts(self, guild_id: str) -> dict[str, int] | None:
        """Every invite of the guild with its uses; None when the bot may not read them."""
        try:
            return {str(i["code"]): int(i.get("uses", 0) or 0) for i in self.api.guild_invites(guild_id)}
        except DiscordApiError as exc:
            log.warning("discord: cannot read the invites of server %s (code %s): joins stay unattributed",
                        guild_id, exc.code)
            return None

    def attribute(self, guild_id: str) -> tuple[str, str] | None:
        """(label, group) of the one tracked invite whose use count moved by one since the last look, else None."""
        with self._lock:
            book = self._read_book()
            now = self._counts(guild_id)
            if now is None:
                return None
            before: dict[str, int] = book["uses"].get(guild_id, {})
            labels: dict[str, Any] = book["labels"]
            moved: dict[str, int] = {}
            for code, uses in now.items():
                if uses > before.get(code, 0):
                    moved[code] = uses - before.get(code, 0)
            for code, uses in before.items():
                known = labels.get(code)
                if code not in now and known and known["max_uses"] and uses + 1 >= known["max_uses"]:
                    moved[code] = 1  # a single-use invite is deleted by Discord when it is used
            label: tuple[str, str] | None = None
            if len(moved) == 1:
                [(code, by)] = moved.items()
                if by == 1 and code in labels:
                    label = (str(labels[code]["label"]), str(labels[code].get("group", guild_id)))
            for code in [c for c in labels if labels[c]["guild"] == guild_id and c not in now]:
                del labels[code]  # used up, deleted or expired: it admits nobody any more
            book["uses"][guild_id] = now
            self._write_book(book)
        if label is None:
            log.info("discord: a join in server %s is not attributed (%d invites moved, none of ours alone)",
                     guild_id, len(moved))
        return label

    def approve_join(self, group_id: str, user_id: str) -> None:
        raise PlatformError("Discord has no join requests to approve",
                            zh="Discord 没有入群申请可以通过")

    def decline_join(self, group_id: str, user_id: str) -> None:
        raise PlatformError("Discord has no join requests to decline",
                            zh="Discord 没有入群申请可以拒绝")

    # --- messages ---
    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        if user_id not in self._dm_channels:
            self._dm_channels[user_id] = self.api.open_dm(user_id)
        return self._send(self._dm_channels[user_id], text, idempotency_key)

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult:
        return self._send(self._channel(group_id), text, idempotency_key)

    def _send(self, channel_id: str, text: str, key: str | None) -> SendResult:
        nonce = hashlib.sha256(key.encode()).hexdigest()[:25] if key else None  # a nonce is at most 25 chars
        return SendResult(str(self.api.send_message(channel_id, text, nonce=nonce)["id"]))

    # --- inbound: interactions over HTTP (signed), everything else over the Gateway ---
    def receive(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Inbound:
        """The interactions endpoint (/hooks/discord): Ed25519 over timestamp + body, checked first. A PING
        is answered with a PONG; other interactions get a short private answer. Joins never come this way."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        lower = {k.lower(): v for k, v in headers.items()}
        signature, stamp = lower.get("x-signature-ed25519", ""), lower.get("x-signature-timestamp", "")
        if not self.settings.public_key:
            raise Unauthorized("discord interactions refused: set public_key in [platforms.discord] (Developer "
                               "Portal → General Information → Public Key)",
                               zh="已拒绝 Discord 交互请求:请在 [platforms.discord] 里设置 public_key"
                                  "(Developer Portal → General Information → Public Key)")
        if not signature or not stamp:
            raise Unauthorized("discord interactions refused: X-Signature-Ed25519 or X-Signature-Timestamp missing",
                               zh="已拒绝 Discord 交互请求:缺少 X-Signature-Ed25519 或 X-Signature-Timestamp")
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.settings.public_key))
            key.verify(bytes.fromhex(signature), stamp.encode() + body)
        except (InvalidSignature, ValueError):
            raise Unauthorized("discord interactions refused: the signature does not match public_key",
                               zh="已拒绝 Discord 交互请求:签名与 public_key 不符") from None
        now = self._now()
        if not stamp.isdigit() or abs(now - int(stamp)) > SIGNATURE_WINDOW:
            raise Unauthorized("discord interactions refused: the signed timestamp is stale",
                               zh="已拒绝 Discord 交互请求:签名时间戳已过期")
        with self._lock:
            self._seen_signatures = {s: t for s, t in self._seen_signatures.items() if now - t <= SIGNATURE_WINDOW}
            if signature.lower() in self._seen_signatures:
                raise Unauthorized("discord interactions refused: this signed call was already received (a replay)",
                                   zh="已拒绝 Discord 交互请求:这个签名请求已经收到过(重放)")
            self._seen_signatures[signature.lower()] = now
        if method.upper() != "POST":
            raise InvalidInput("discord interactions arrive as POST requests",
                               zh="Discord 交互请求须以 POST 送达")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"discord interactions: the body is not JSON ({exc})",
                               zh=f"Discord 交互请求:请求体不是 JSON({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidInput("discord interactions: the body is not a JSON object",
                               zh="Discord 交互请求:请求体不是 JSON 对象")
        if data.get("type") == 1:  # PING
            return Inbound([], reply=b'{"type":1}')
        answer = {"type": 4, "data": {"content": "qunflow: nothing to do here / 这里没有可执行的操作", "flags": 64}}
        return Inbound([], reply=json.dumps(answer, ensure_ascii=False).encode())

    def _now(self) -> float:
        if self.host is not None:  # naive UTC
            return (self.host.clock() - datetime(1970, 1, 1)).total_seconds()
        return time.time()

    # --- the Gateway ---
    def start_gateway(self) -> Gateway:
        """The Gateway session, opened on first use. One that stopped (a refused token, a disallowed intent,
        Discord unreachable) is opened again only after a wait that doubles up to 5 minutes: Discord limits
        how many sessions a bot may start a day, and a refused token must not be retried in a tight loop."""
        gateway = self._gateway
        stopped = gateway is not None and not gateway.alive and gateway.failed is not None
        if gateway is None or (stopped and time.monotonic() >= self._restart_at):
            if stopped:
                self._restart_wait = min(self._restart_wait * 2, RESTART_WAIT_MAX)
            self._restart_at = time.monotonic() + self._restart_wait
            gateway = Gateway(self.settings.bot_token, self.settings.api_base, self.settings.message_content)
            gateway.start()
            self._gateway = gateway
        return gateway

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None

    def poll(self, timeout: float) -> list[Update]:
        """What the Gateway received since the last call (waiting up to `timeout` for the first). Joins are
        attributed here, one by one, in the order they arrived."""
        found: list[Update] = list(self._again)
        self._again.clear()
        gateway = self.start_gateway()
        if gateway.failed is not None and gateway.events.empty():
            time.sleep(min(timeout, max(0.0, self._restart_at - time.monotonic())))  # no tight loop meanwhile
            raise PlatformError(f"the Discord gateway stopped ({type(gateway.failed).__name__}); it is opened "
                                "again shortly. Check the bot token and the privileged intents",
                                zh=f"Discord 网关已断开({type(gateway.failed).__name__}),稍后会重新连接。"
                                   "请检查机器人令牌和特权 Intent")
        raw: list[tuple[str, dict[str, Any]]] = []
        if not found:
            with contextlib.suppress(queue.Empty):
                raw.append(gateway.events.get(timeout=timeout))
        while True:
            try:
                raw.append(gateway.events.get_nowait())
            except queue.Empty:
                break
        for name, payload in raw:
            try:
                update = self._parse(name, payload)
            except InvalidInput as exc:  # one bad event must not stop the rest
                log.warning("skipped a Discord %s event: %s", name, exc)
                continue
            if update is not None:
                found.append(update)
        self._last = found
        return found

    def rewind(self, key: str) -> None:
        """The update `key` was not handled: it and those after it come back on the next poll."""
        keys = [u.key for u in self._last]
        if key in keys:
            self._again.extend(self._last[keys.index(key):])

    def _parse(self, name: str, payload: dict[str, Any]) -> Update | None:
        if name == "GUILD_MEMBER_ADD":
            join = events.member_add(payload)
            if join is None:
                return None
            found = self.attribute(join.guild_id)
            group = found[1] if found else join.guild_id
            _guild, role = split_group(group)
            if role is not None:
                self._give_role(join.guild_id, join.user_id, role)
            return MemberJoined(platform="discord", at=join.at, group_id=group, user_id=join.user_id,
                                display_name=join.display_name, invite_label=found[0] if found else None,
                                key=join.key)
        if name == "GUILD_MEMBER_REMOVE":
            guild, user = events.member_remove(payload)
            at = self.host.clock() if self.host is not None else datetime.utcnow()  # noqa: DTZ003
            return MemberLeft(platform="discord", at=at, group_id=guild, user_id=user)
        if name == "MESSAGE_CREATE":
            message = events.message_create(payload)
            if message is None:
                return None
            return MessagePosted(platform="discord", at=message.at, user_id=message.user_id, text=message.text,
                                 group_id=message.guild_id, message_id=message.message_id,
                                 key=f"msg:{message.message_id}")
        return None

    def _give_role(self, guild_id: str, user_id: str, role_id: str) -> None:
        """A join through a tier's invite gets the tier's role (which opens the tier's channels)."""
        try:
            self.api.add_role(guild_id, user_id, role_id)
        except PlatformError as exc:  # the join still counts; the role is the moderators' to give then
            log.warning("discord: could not give role %s in server %s: %s", role_id, guild_id,
                        getattr(exc, "code", type(exc).__name__))

    # --- onboarding ---
    def bot_id(self) -> str:
        if self._bot_id is None:
            self._bot_id = str(self.api.me()["id"])
        return self._bot_id

    def check_group(self, group_id: str) -> list[str]:
        try:
            group_id, role = split_group(group_id)
        except InvalidInput as exc:
            return [Fix(str(exc), zh=exc.text("zh"))]
        try:
            guild = self.api.guild(group_id)
            member = self.api.guild_member(group_id, self.bot_id())
        except DiscordApiError as exc:
            return [Fix(f"the bot is not in server {group_id} (HTTP {exc.status}, code {exc.code}): invite it with "
                        "the OAuth2 URL generator (scope bot; Create Invite, Manage Server, View Channels, "
                        "Send Messages)",
                        zh=f"机器人不在服务器 {group_id} 里(HTTP {exc.status},错误码 {exc.code}):请用 OAuth2 "
                           "URL Generator 邀请它(scope 选 bot;权限选 Create Invite、Manage Server、View Channels、"
                           "Send Messages)")]
        roles = {str(r["id"]): r for r in guild.get("roles", [])}
        fixes: list[str] = []
        if role is not None:
            top = max((int(roles[str(r)].get("position", 0)) for r in member.get("roles", []) if str(r) in roles),
                      default=0)
            if role not in roles:
                return [Fix(f"server {guild.get('name', group_id)} has no role {role}: copy the tier's role id "
                            "(Server Settings → Roles → right-click → Copy Role ID)",
                            zh=f"服务器 {guild.get('name', group_id)} 没有身份组 {role}:请复制该层级的身份组 ID"
                               "(服务器设置 → 身份组 → 右键 → 复制身份组 ID)")]
            if int(roles[role].get("position", 0)) >= top:
                fixes.append(Fix(f"move the bot's role above the role {roles[role].get('name', role)} "
                                 "(Server Settings → Roles) so it can give it",
                                 zh=f"请把机器人的身份组移到身份组 {roles[role].get('name', role)} 之上"
                                    "(服务器设置 → 身份组),它才能授予该身份组"))
        if str(guild.get("owner_id")) == self.bot_id():
            return fixes
        granted = int(roles.get(group_id, {}).get("permissions", 0) or 0)  # @everyone has the guild's id
        for held in member.get("roles", []):
            granted |= int(roles.get(str(held), {}).get("permissions", 0) or 0)
        if granted & ADMINISTRATOR:
            return fixes
        needed = {**NEEDED, **({MANAGE_ROLES: "Manage Roles (to give the tier's role)"} if role else {})}
        return fixes + [Fix(f"give the bot the {what} permission in server {guild.get('name', group_id)}",
                            zh=f"请在服务器 {guild.get('name', group_id)} 里给机器人 {NEEDED_ZH[bit]} 权限")
                        for bit, what in needed.items() if not granted & bit]

    def connect(self) -> list[str]:
        """Check the token and the privileged intents; lines to print."""
        me = self.api.me()
        self._bot_id = str(me["id"])
        app = self.api.application()
        flags = int(app.get("flags", 0) or 0)
        if not flags & (GATEWAY_GUILD_MEMBERS | GATEWAY_GUILD_MEMBERS_LIMITED):
            raise InvalidInput("turn on the Server Members Intent (Developer Portal → Bot → Privileged Gateway "
                               "Intents): without it Discord sends no member joins",
                               zh="请打开 Server Members Intent(Developer Portal → Bot → Privileged Gateway Intents):"
                                  "否则 Discord 不会推送成员加入")
        lines = [f"Discord bot {me.get('username', me['id'])}: the token works; Server Members Intent is on."]
        if self.settings.message_content and not flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
            raise InvalidInput("turn on the Message Content Intent (Developer Portal → Bot), or pass "
                               "--no-message-content (keyword rules then see no text)",
                               zh="请打开 Message Content Intent(Developer Portal → Bot),或传 --no-message-content"
                                  "(关键词规则将看不到消息文字)")
        gateway = self.api.gateway_bot()
        lines += [f"Gateway: {gateway.get('url')} (`qunflow serve` keeps it open and reads joins, leaves, "
                  "messages)",
                  "Invite the bot with: scope bot; permissions Create Invite, Manage Server (invite use counts), "
                  "View Channels, Send Messages."]
        if self.settings.public_key and self.host is not None:
            lines.append(f"Interactions endpoint URL: {self.host.public_url.rstrip('/')}/hooks/discord")
        return lines


def split_group(group_id: str) -> tuple[str, str | None]:
    """A group's external id: a server id (the whole server), or SERVER_ID:ROLE_ID (a tier in the server:
    joins through its invites get the role, which opens the tier's channels)."""
    guild, _, role = group_id.partition(":")
    if not guild.isdigit() or (role and not role.isdigit()):
        raise InvalidInput(f"{group_id!r} is not a Discord server id, nor SERVER_ID:ROLE_ID (numbers: enable "
                           "Developer Mode, then right-click the server or the role → Copy ID)",
                           zh=f"{group_id!r} 不是 Discord 服务器 ID,也不是 SERVER_ID:ROLE_ID(均为数字:打开开发者模式,"
                              "再右键服务器或身份组 → 复制 ID)")
    return guild, role or None
