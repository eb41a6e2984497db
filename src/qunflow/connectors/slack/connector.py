"""qunflow's connector to Slack: join codes, DMs and channel posts through the Web API; events over HTTP.

A Slack channel has no invite link that comes back on the join, so an entry is a code the person sends the
bot. `create_invite` records the code for its channel (in `slack_codes.json` under the workspace home) and
hands out a link that opens a DM with the app; a DM with the code becomes a `JoinRequested`, and
`approve_join` adds the person with conversations.invite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from qunflow.connectors.base import Fix, Host, Inbound, InviteLink, JoinRequested, SendResult
from qunflow.connectors.slack import CAPABILITIES
from qunflow.connectors.slack.api import WebApi
from qunflow.connectors.slack.events import parse_event
from qunflow.connectors.slack.settings import SlackSettings
from qunflow.errors import InvalidInput, PlatformError, Unauthorized

WEBHOOK_PATH = "/hooks/slack"
MAX_AGE_SECONDS = 300  # Slack: refuse a request whose X-Slack-Request-Timestamp is over five minutes off
TEXT_MAX = 40_000  # chat.postMessage truncates text past 40,000 characters
CODES_FILE = "slack_codes.json"
APP_REDIRECT = "https://slack.com/app_redirect"


class SlackConnector:
    """Implements the `Connector` port over the Slack Web API and the Events API."""

    platform = "slack"
    capabilities = CAPABILITIES

    def __init__(self, settings: SlackSettings, host: Host | None = None, *, api: WebApi | None = None) -> None:
        self.settings = settings
        self.host = host
        self.api = api or WebApi(settings.bot_token, settings.api_base)
        self._ids: tuple[str, str] | None = ((settings.team_id, settings.app_id)
                                             if settings.team_id and settings.app_id else None)
        self._lock = threading.Lock()
        self._bot_user: str | None = None

    def __repr__(self) -> str:
        return f"SlackConnector(api_base={self.settings.api_base!r})"

    # --- join codes (the tracked entry) ---
    def create_invite(self, group_id: str, label: str, *, join_request: bool = False,
                      single_use: bool = False, expires_at: datetime | None = None) -> InviteLink:
        """A link that opens a DM with the app; the person sends `join <label>` and is asked in. Every Slack
        link is a request to the bot (join_request True): nobody gets into the channel by the link alone."""
        if not label or len(label) > CAPABILITIES.invite_label_max or any(c.isspace() for c in label):
            raise InvalidInput(f"invite label {label!r}: a Slack join code is 1-{CAPABILITIES.invite_label_max} "
                               "characters without spaces",
                               zh=f"邀请标签 {label!r}:Slack 入群码须为 1-{CAPABILITIES.invite_label_max} 个字符,"
                                  "且不含空格")
        with self._lock:
            state = self._load()
            channels = [c for c in state["codes"].get(label, []) if c != group_id]
            state["codes"][label] = [*channels, group_id]
            self._save(state)
        team, app = self.app_ids()
        url = f"{APP_REDIRECT}?{urlencode({'app': app, 'team': team})}"
        return InviteLink(url, label, True, handle=f"{group_id}:{label}")

    def revoke_invite(self, group_id: str, link: InviteLink) -> None:
        with self._lock:
            state = self._load()
            left = [c for c in state["codes"].get(link.label, []) if c != group_id]
            if left:
                state["codes"][link.label] = left
            else:
                state["codes"].pop(link.label, None)
            self._save(state)

    def approve_join(self, group_id: str, user_id: str) -> None:
        self.api.conversations_invite(group_id, user_id)

    def remove_member(self, group_id: str, user_id: str) -> None:
        self.api.conversations_kick(group_id, user_id)

    def decline_join(self, group_id: str, user_id: str) -> None:
        """Nothing to undo on Slack: a request the bot does not approve simply stays outside the channel."""
        with self._lock:
            state = self._load()
            state["invited"].pop(f"{group_id}:{user_id}", None)
            self._save(state)

    def app_ids(self) -> tuple[str, str]:
        """(team_id, app_id) for the app_redirect link: from the settings, else asked once (auth.test, bots.info)."""
        if self._ids is None:
            me = self.api.auth_test()
            bot = self.api.bots_info(str(me.get("bot_id") or ""))
            self._ids = (str(me.get("team_id") or ""), str(bot.get("app_id") or ""))
        return self._ids

    # --- messages ---
    def send_direct(self, user_id: str, text: str, *, context: str | None = None,
                    idempotency_key: str | None = None) -> SendResult:
        """To `context` (the DM channel the person wrote in) when given, else conversations.open first."""
        _check_text(text)
        channel = context or self.api.conversations_open(user_id)
        return SendResult(f"{channel}:{self.api.chat_post_message(channel, text)}")

    def post_to_group(self, group_id: str, text: str, *, idempotency_key: str | None = None) -> SendResult:
        _check_text(text)
        return SendResult(f"{group_id}:{self.api.chat_post_message(group_id, text)}")

    # --- events ---
    def receive(self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Inbound:
        """An Events API POST: the v0 signature and its timestamp are checked before the body is read."""
        self._verify(headers, body)
        if method.upper() != "POST":
            raise InvalidInput("Slack events arrive as POST requests",
                               zh="Slack 事件须以 POST 请求送达")
        try:
            envelope = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"Slack event: the body is not JSON ({exc})",
                               zh=f"Slack 事件:请求体不是 JSON({exc})") from exc
        if not isinstance(envelope, dict):
            raise InvalidInput("Slack event: the body is not a JSON object",
                               zh="Slack 事件:请求体不是 JSON 对象")
        kind = envelope.get("type")
        if kind == "url_verification":
            return Inbound([], reply=str(envelope.get("challenge") or "").encode(), media_type="text/plain")
        if kind != "event_callback":
            return Inbound([])
        updates = parse_event(envelope, self._channel_of, self._label_for)
        asked = {f"{u.group_id}:{u.user_id}": u.invite_label for u in updates if isinstance(u, JoinRequested)}
        if asked:  # the member_joined_channel that follows conversations.invite then carries the code
            with self._lock:
                state = self._load()
                state["invited"].update(asked)
                self._save(state)
        return Inbound(updates)

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        stamp, signature = lowered.get("x-slack-request-timestamp"), lowered.get("x-slack-signature")
        if not stamp or not signature:
            raise Unauthorized("Slack event refused: the X-Slack-Request-Timestamp or X-Slack-Signature header is "
                               "missing",
                               zh="已拒绝 Slack 事件:缺少 X-Slack-Request-Timestamp 或 X-Slack-Signature 请求头")
        try:
            sent = int(stamp)
        except ValueError:
            raise Unauthorized("Slack event refused: X-Slack-Request-Timestamp is not a Unix time",
                               zh="已拒绝 Slack 事件:X-Slack-Request-Timestamp 不是 Unix 时间") from None
        now = (self.host.clock().replace(tzinfo=UTC) if self.host else datetime.now(UTC)).timestamp()
        if abs(now - sent) > MAX_AGE_SECONDS:
            raise Unauthorized("Slack event refused: its timestamp is more than five minutes off (a replay, or "
                               "this machine's clock is wrong)",
                               zh="已拒绝 Slack 事件:时间戳偏差超过 5 分钟(疑为重放,或本机时钟不准)")
        base = b"v0:" + stamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self.settings.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Unauthorized("Slack event refused: X-Slack-Signature does not match the signing secret (copy it "
                               "again from Basic Information > App Credentials and run `qunflow connect slack`)",
                               zh="已拒绝 Slack 事件:X-Slack-Signature 与签名密钥不符(请从 Basic Information > "
                                  "App Credentials 重新复制,再运行 `qunflow connect slack`)")

    def _channel_of(self, code: str) -> str | None:
        with self._lock:
            channels = self._load()["codes"].get(code) or []
        return str(channels[-1]) if channels else None

    def _label_for(self, channel: str, user: str) -> str | None:
        with self._lock:
            found = self._load()["invited"].get(f"{channel}:{user}")
        return str(found) if found else None

    # --- onboarding ---
    def check_group(self, group_id: str) -> list[str]:
        me = self.api.auth_test()
        bot = f"@{me.get('user') or me.get('user_id')}"
        try:
            info = self.api.conversations_info(group_id)
        except PlatformError as exc:
            return [Fix(f"the bot {bot} cannot see channel {group_id} ({exc}): invite it with `/invite {bot}` in "
                        "the channel (a private channel needs the groups:read scope too)",
                        zh=f"机器人 {bot} 看不到频道 {group_id}({exc.text('zh')}):请在该频道里输入 "
                           f"`/invite {bot}` 邀请它(私有频道还需要 groups:read 权限范围)")]
        problems: list[str] = []
        if info.get("is_archived"):
            problems.append(Fix(f"channel {group_id} is archived: unarchive it or pick another channel",
                                zh=f"频道 {group_id} 已归档:请取消归档,或换一个频道"))
        if not info.get("is_member"):
            problems.append(Fix(f"the bot {bot} is not a member of channel {group_id}: type `/invite {bot}` in the "
                                "channel, or it cannot add people, post or see joins",
                                zh=f"机器人 {bot} 不是频道 {group_id} 的成员:请在该频道里输入 `/invite {bot}`,"
                                   "否则它无法拉人、发消息,也看不到谁加入"))
        return problems

    def connect(self) -> list[str]:
        """Check the token and learn the workspace and app ids (for the entry links)."""
        me = self.api.auth_test()
        if not me.get("bot_id"):
            raise InvalidInput("this token is not a bot token: use the Bot User OAuth Token (xoxb-...)",
                               zh="这个令牌不是机器人令牌:请使用 Bot User OAuth Token(xoxb-...)")
        self._ids = None
        team, app = self.app_ids()
        return [f"bot: @{me.get('user')} ({me.get('user_id')}) in {me.get('team')} ({team})", f"app: {app}"]

    # --- the code file: which channel a code leads to, and whom the bot invited with which code ---
    def _path(self) -> Path | None:
        return self.host.home / CODES_FILE if self.host else None

    def _load(self) -> dict[str, Any]:
        path = self._path()
        if path is None or not path.exists():
            return {"codes": {}, "invited": {}}
        data = json.loads(path.read_text())
        return {"codes": dict(data.get("codes") or {}), "invited": dict(data.get("invited") or {})}

    def _save(self, state: dict[str, Any]) -> None:
        path = self._path()
        if path is None:
            raise InvalidInput("the Slack connector keeps its join codes under the workspace home; it has none here",
                               zh="Slack 连接器把入群码保存在工作区目录下,而这里没有工作区目录")
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, sort_keys=True))
        os.replace(temporary, path)


def _check_text(text: str) -> None:
    if not 1 <= len(text) <= TEXT_MAX:
        raise InvalidInput(f"a Slack message holds 1-{TEXT_MAX} characters; this one has {len(text)}",
                           zh=f"Slack 消息须为 1-{TEXT_MAX} 个字符,这条有 {len(text)} 个")
