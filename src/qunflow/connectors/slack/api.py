"""A small synchronous client for the Slack Web API, and its errors mapped onto qunflow's.

Every method is an HTTP POST to `{api_base}/{method}` with the bot token as `Authorization: Bearer`, and
answers `{"ok": true, ...}` or `{"ok": false, "error": "<code>"}`. A rate-limited call is HTTP 429 with a
`Retry-After` header in seconds. The token never appears in a URL, a log line or an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from qunflow.errors import PlatformError, RateLimited, Unreachable

# Errors that mean this person cannot be messaged (left, deactivated, or not a person the bot may DM).
UNREACHABLE = frozenset({"user_not_found", "user_disabled", "cannot_dm_bot", "user_not_visible",
                         "messages_tab_disabled"})
TOKEN_REFUSED = frozenset({"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
                           "no_permission", "org_login_required"})


class WebApi:
    """`call(method, **params)` returns the method's JSON answer (ok is true) or raises qunflow's error."""

    def __init__(self, token: str, api_base: str = "https://slack.com/api", timeout: float = 15.0) -> None:
        self._base = api_base.rstrip("/") + "/"
        self.host = urlsplit(api_base).netloc or api_base
        self._http = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {token}"})

    def __repr__(self) -> str:
        return f"WebApi(host={self.host!r})"

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One Web API method, form-encoded (every method accepts that); None-valued parameters are left out."""
        form = {key: str(value) for key, value in params.items() if value is not None}
        try:
            response = self._http.post(self._base + method, data=form)
        except httpx.HTTPError as exc:
            raise PlatformError(f"could not reach the Slack Web API at {self.host} ({type(exc).__name__}): "
                                "check the network or api_base",
                                zh=f"连不上 {self.host} 的 Slack Web API({type(exc).__name__}):"
                                   "请检查网络或 api_base") from None
        if response.status_code == 429:
            wait = _seconds(response.headers.get("retry-after"))
            raise RateLimited(f"Slack {method}: rate limited (retry after {wait:g} s)", retry_after=wait,
                              zh=f"Slack {method} 调用过于频繁({wait:g} 秒后重试)")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or "ok" not in data:
            raise PlatformError(f"the Slack Web API at {self.host} answered {method} with HTTP "
                                f"{response.status_code} and no Web API JSON: check api_base",
                                zh=f"{self.host} 的 Slack Web API 对 {method} 返回了 HTTP {response.status_code},"
                                   "且不是 Web API 的 JSON:请检查 api_base")
        if data["ok"]:
            return data
        raise _error(method, str(data.get("error") or "unknown_error"))

    # --- one helper per method qunflow uses ---
    def auth_test(self) -> dict[str, Any]:
        return self.call("auth.test")

    def bots_info(self, bot: str) -> dict[str, Any]:
        return dict(self.call("bots.info", bot=bot).get("bot") or {})

    def conversations_open(self, user: str) -> str:
        """The id of the direct-message channel with `user` (opened if need be)."""
        return str(self.call("conversations.open", users=user)["channel"]["id"])

    def chat_post_message(self, channel: str, text: str) -> str:
        """Posts `text`; returns the message's `ts` (its id within the channel)."""
        return str(self.call("chat.postMessage", channel=channel, text=text)["ts"])

    def conversations_invite(self, channel: str, user: str) -> None:
        try:
            self.call("conversations.invite", channel=channel, users=user)
        except PlatformError as exc:
            if "already_in_channel" not in str(exc):  # the person is in: what we wanted
                raise

    def conversations_kick(self, channel: str, user: str) -> None:
        """conversations.kick (channels:manage / groups:write); someone not in the channel is out already."""
        try:
            self.call("conversations.kick", channel=channel, user=user)
        except PlatformError as exc:
            if "not_in_channel" not in str(exc):
                raise

    def conversations_info(self, channel: str) -> dict[str, Any]:
        return dict(self.call("conversations.info", channel=channel)["channel"])


def _seconds(value: str | None) -> float:
    try:
        return max(float(value or 1), 0.0)
    except ValueError:
        return 1.0


def _error(method: str, code: str) -> PlatformError:
    if code == "ratelimited":  # some answers say so in the body only
        return RateLimited(f"Slack {method}: ratelimited (retry after 1 s)", retry_after=1.0,
                           zh=f"Slack {method} 调用过于频繁(1 秒后重试)")
    if code in TOKEN_REFUSED:
        return PlatformError(f"Slack refused the bot token ({code}): copy the Bot User OAuth Token again from "
                             "your app's OAuth & Permissions page and run `qunflow connect slack`",
                             zh=f"Slack 拒绝了机器人令牌({code}):请在应用的 OAuth & Permissions 页面重新复制 "
                                "Bot User OAuth Token,再运行 `qunflow connect slack`")
    if code in UNREACHABLE and method in ("conversations.open", "chat.postMessage"):
        return Unreachable(f"Slack {method}: {code}",
                           zh=f"Slack {method}:对方无法接收({code})")
    if code == "missing_scope":
        return PlatformError(f"Slack {method}: missing_scope: add the scopes listed in docs/connectors.md (Slack) "
                             "to the app and reinstall it",
                             zh=f"Slack {method}:缺少权限范围(missing_scope):请给应用加上 docs/connectors.md(Slack)"
                                "列出的权限范围并重新安装")
    return PlatformError(f"Slack {method}: {code}",
                         zh=f"Slack {method} 调用失败:{code}")
