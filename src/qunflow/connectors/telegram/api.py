"""A small synchronous client for the Telegram Bot API, and its errors mapped onto qunflow's.

The bot token is part of every request's path (`/bot<token>/<method>`), so nothing here may print a URL:
httpx's request log is muted and redacted, errors name the host only, and `repr` hides the token.

Calls go straight to httpx's connection pool (`httpx.HTTPTransport`), not through `httpx.Client`: the client's
own work per call (merging URLs and headers, its cookie jar, the auth and redirect loops) was a third of a
call's CPU, and the Bot API needs none of it (no cookies, no redirects, no auth). The proxy the environment
names for `api_base` (HTTPS_PROXY, ALL_PROXY, NO_PROXY...) is still used, as `httpx.Client` would use it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from qunflow.errors import PlatformError, RateLimited, Unreachable

log = logging.getLogger(__name__)
_TOKEN_IN_TEXT = re.compile(r"bot[0-9]+:[A-Za-z0-9_-]+")


class _RedactToken(logging.Filter):
    """Replaces a bot token in a log record with `bot<token>` (httpx logs each request's URL at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN_IN_TEXT.search(message):
            record.msg, record.args = _TOKEN_IN_TEXT.sub("bot<token>", message), None
        return True


# httpx.Client logs "HTTP Request: POST https://api.telegram.org/bot<token>/getMe" at INFO (BotApi uses no
# Client, but nothing else in the process should log its URL either); httpcore traces at DEBUG.
for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    _logger.setLevel(max(_logger.level, logging.WARNING))
    _logger.addFilter(_RedactToken())


_JSON = {"Content-Type": "application/json"}


def environment_proxy(api_base: str) -> str | None:
    """The proxy the environment names for `api_base` (None: none, or NO_PROXY covers its host), read as
    httpx.Client reads it: HTTPS_PROXY or HTTP_PROXY by the URL's scheme, else ALL_PROXY."""
    url = httpx.URL(api_base)
    proxies = getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or proxy_bypass(url.host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class BotApi:
    """`call(method, **params)` POSTs JSON to `{api_base}/bot{token}/{method}` and returns `result`."""

    def __init__(self, token: str, api_base: str = "https://api.telegram.org", timeout: float = 15.0) -> None:
        self._url = f"{api_base.rstrip('/')}/bot{token}/"
        self.host = urlsplit(api_base).netloc or api_base
        self._http = httpx.HTTPTransport(proxy=environment_proxy(api_base))
        self._timeout = httpx.Timeout(timeout).as_dict()  # how a request carries its timeouts to the transport
        self._urls: dict[str, httpx.URL] = {}  # per method, parsed once (httpx parses a str URL on every call)

    def __repr__(self) -> str:
        return f"BotApi(host={self.host!r})"

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, _timeout: float | None = None, **params: Any) -> Any:
        """One Bot API method; None-valued parameters are left out. Raises RateLimited, Unreachable, PlatformError."""
        body = {key: value for key, value in params.items() if value is not None}
        url = self._urls.get(method)
        if url is None:
            url = self._urls[method] = httpx.URL(self._url + method)
        # JSON as httpx.Client would send it (json=body)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        timeout = self._timeout if _timeout is None else httpx.Timeout(_timeout).as_dict()
        request = httpx.Request("POST", url, content=content, headers=_JSON, extensions={"timeout": timeout})
        try:
            response = self._http.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.HTTPError as exc:
            # `from None`: httpx errors carry the request, and with it the URL holding the token.
            raise PlatformError(f"could not reach the Telegram Bot API at {self.host} "
                                f"({type(exc).__name__}): check the network or api_base",
                                zh=f"连不上 {self.host} 的 Telegram Bot API({type(exc).__name__}):"
                                   "请检查网络或 api_base") from None
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "ok" not in data:
            raise PlatformError(f"the Telegram Bot API at {self.host} answered {method} with HTTP "
                                f"{response.status_code} and no Bot API JSON: check api_base",
                                zh=f"{self.host} 的 Telegram Bot API 对 {method} 返回了 HTTP {response.status_code},"
                                   "且不是 Bot API 的 JSON:请检查 api_base")
        if data["ok"]:
            return data.get("result")
        raise _error(method, body, data, response.status_code)

    # --- typed helpers, one per method qunflow uses ---
    def get_me(self) -> dict[str, Any]:
        return dict(self.call("getMe"))

    def set_webhook(self, url: str, secret_token: str, allowed_updates: list[str]) -> bool:
        return bool(self.call("setWebhook", url=url, secret_token=secret_token, allowed_updates=allowed_updates))

    def delete_webhook(self) -> bool:
        return bool(self.call("deleteWebhook"))

    def get_updates(self, offset: int | None, timeout: int, allowed_updates: list[str],
                    limit: int | None = None) -> list[dict[str, Any]]:
        # The long poll holds the request open for `timeout` seconds: wait a little longer than that.
        result = self.call("getUpdates", _timeout=timeout + 10.0, offset=offset, limit=limit, timeout=timeout,
                           allowed_updates=allowed_updates)
        return list(result or [])

    def create_chat_invite_link(self, chat_id: int | str, name: str, creates_join_request: bool = False,
                                member_limit: int | None = None, expire_date: int | None = None) -> dict[str, Any]:
        """`expire_date`: the Unix time the link stops working."""
        return dict(self.call("createChatInviteLink", chat_id=chat_id, name=name, expire_date=expire_date,
                              creates_join_request=creates_join_request or None, member_limit=member_limit))

    def revoke_chat_invite_link(self, chat_id: int | str, invite_link: str) -> dict[str, Any]:
        return dict(self.call("revokeChatInviteLink", chat_id=chat_id, invite_link=invite_link))

    def approve_chat_join_request(self, chat_id: int | str, user_id: int) -> bool:
        return bool(self.call("approveChatJoinRequest", chat_id=chat_id, user_id=user_id))

    def decline_chat_join_request(self, chat_id: int | str, user_id: int) -> bool:
        return bool(self.call("declineChatJoinRequest", chat_id=chat_id, user_id=user_id))

    def ban_chat_member(self, chat_id: int | str, user_id: int) -> bool:
        """banChatMember: the bot (an admin with can_restrict_members) removes the person from the chat."""
        return bool(self.call("banChatMember", chat_id=chat_id, user_id=user_id))

    def unban_chat_member(self, chat_id: int | str, user_id: int, only_if_banned: bool = True) -> bool:
        """unbanChatMember: the person may come back through an invite link (they are not re-added)."""
        return bool(self.call("unbanChatMember", chat_id=chat_id, user_id=user_id, only_if_banned=only_if_banned))

    def send_message(self, chat_id: int | str, text: str) -> dict[str, Any]:
        return dict(self.call("sendMessage", chat_id=chat_id, text=text))

    def get_chat_member(self, chat_id: int | str, user_id: int) -> dict[str, Any]:
        return dict(self.call("getChatMember", chat_id=chat_id, user_id=user_id))


def _error(method: str, params: dict[str, Any], data: dict[str, Any], status: int) -> PlatformError:
    """The qunflow error for a Bot API answer `{"ok": false, "error_code", "description", "parameters"}`."""
    code = data.get("error_code") if isinstance(data.get("error_code"), int) else status
    description = str(data.get("description") or f"error {code}")
    parameters = data.get("parameters")
    if code == 429:
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        wait = float(retry_after) if isinstance(retry_after, int | float) else 1.0
        return RateLimited(f"Telegram {method}: {description} (retry after {wait:g} s)", retry_after=wait,
                           zh=f"Telegram {method} 调用过于频繁:{description}({wait:g} 秒后重试)")
    if code == 403:
        return Unreachable(f"Telegram {method}: {description}",
                           zh=f"Telegram {method}:对方无法接收({description})")
    lowered = description.lower()
    if code == 400 and ("chat not found" in lowered or "user not found" in lowered) and _private(params):
        return Unreachable(f"Telegram {method}: {description}",
                           zh=f"Telegram {method}:找不到此人,或对方未启动机器人({description})")
    if code in (401, 404):
        return PlatformError(f"Telegram refused the bot token ({code} {description}): copy the token again from "
                             "@BotFather (/mybots > API Token) and run `qunflow connect telegram`",
                             zh=f"Telegram 拒绝了机器人令牌({code} {description}):请在 @BotFather 重新复制令牌"
                                "(/mybots > API Token),再运行 `qunflow connect telegram`")
    return PlatformError(f"Telegram {method}: {description}",
                         zh=f"Telegram {method} 调用失败:{description}")


def _private(params: dict[str, Any]) -> bool:
    """User ids and private chats are positive; groups and channels negative or @usernames."""
    chat_id = params.get("chat_id")
    try:
        return int(chat_id) > 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
