"""The Feishu / Lark open API calls qunflow makes, with the tenant access token handled here.

The token comes from auth/v3/tenant_access_token/internal and is cached until shortly before `expire`; a
call answered with a token code (99991661 missing, 99991663 invalid) refreshes it and is repeated once.
Frequency limits answer HTTP 429 (older APIs 400) with code 99991400 and an `x-ogw-ratelimit-reset`
header (seconds): that becomes RateLimited(retry_after). The token rides in the Authorization header, so
it never reaches a log line or an error message.
"""

from __future__ import annotations

import json as jsonlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from qunflow.errors import PlatformError, RateLimited, Unauthorized, Unreachable

Clock = Callable[[], datetime]

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
TOKEN_CODES = frozenset({99991661, 99991663})
RATE_LIMIT_CODE = 99991400
DEFAULT_RESET = 1.0  # seconds, when the reset header is missing
# 230013: the bot has no availability to this user (outside the app's 可用范围); 230002: bot not in the chat.
UNREACHABLE_CODES = frozenset({230013})
TOKEN_MARGIN = timedelta(minutes=5)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class FeishuApiError(PlatformError):
    """Feishu answered with a non-zero code (kept for callers that map codes to fixes)."""

    def __init__(self, message: str, code: int, *, zh: str | None = None) -> None:
        super().__init__(message, zh=zh)
        self.code = code


class FeishuApi:
    """One app's API client. Thread-safe token cache; every call returns the decoded `data` object."""

    def __init__(self, app_id: str, app_secret: str, domain: str = "https://open.feishu.cn",
                 clock: Clock = utc_now, *, timeout: float = 10.0) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.domain = domain.rstrip("/")
        self.clock = clock
        self._client = httpx.Client(base_url=self.domain, timeout=timeout)
        self._token: str | None = None
        self._token_until = datetime.min
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeishuApi(app_id={self.app_id!r}, domain={self.domain!r})"

    def close(self) -> None:
        self._client.close()

    # --- token ---
    def get_token(self, *, force: bool = False) -> str:
        with self._lock:
            if force or self._token is None or self.clock() >= self._token_until:
                body = self._request("POST", TOKEN_PATH, json={"app_id": self.app_id, "app_secret": self._secret})
                code = int(body.get("code", 0) or 0)
                if code != 0:
                    raise Unauthorized(f"feishu {TOKEN_PATH}: code {code} ({str(body.get('msg', ''))[:100]}): "
                                       "check app_id and app_secret (凭证与基础信息 in the developer console)",
                                       zh=f"飞书接口 {TOKEN_PATH} 返回错误码 {code}({str(body.get('msg', ''))[:100]}):"
                                          "请检查 app_id 和 app_secret(开发者后台的「凭证与基础信息」)")
                expire = int(body.get("expire", 7200))
                self._token = str(body["tenant_access_token"])
                self._token_until = self.clock() + timedelta(seconds=expire) - min(
                    TOKEN_MARGIN, timedelta(seconds=expire / 10))
            return self._token

    def _drop_token(self, stale: str) -> None:
        with self._lock:
            if self._token == stale:
                self._token = None

    # --- transport ---
    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 json: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = self._client.request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException:
            raise PlatformError(f"feishu {path}: no answer from {self.domain} in time; retry later",
                                zh=f"飞书接口 {path}:{self.domain} 未及时应答,请稍后重试") from None
        except httpx.HTTPError as exc:
            raise PlatformError(f"feishu {path}: cannot reach {self.domain} ({type(exc).__name__}); "
                                "check the domain and the network",
                                zh=f"飞书接口 {path}:连不上 {self.domain}({type(exc).__name__}),"
                                   "请检查 domain 和网络") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code == 429:
                raise RateLimited(f"feishu {path}: HTTP 429", retry_after=_reset(response),
                                  zh=f"飞书接口 {path}:HTTP 429,调用过于频繁")
            raise PlatformError(f"feishu {path}: HTTP {response.status_code}, not a JSON object",
                                zh=f"飞书接口 {path}:HTTP {response.status_code},应答不是 JSON 对象")
        if response.status_code == 429 or int(body.get("code", 0) or 0) == RATE_LIMIT_CODE:
            raise RateLimited(f"feishu {path}: code {RATE_LIMIT_CODE} (frequency limit)",
                              retry_after=_reset(response),
                              zh=f"飞书接口 {path}:错误码 {RATE_LIMIT_CODE}(调用频率超限)")
        return body

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             json: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call with the tenant token; a token code refreshes it and repeats the call once."""
        for attempt in range(2):
            token = self.get_token()
            body = self._request(method, path, params=params, json=json, token=token)
            code = int(body.get("code", 0) or 0)
            if code in TOKEN_CODES and attempt == 0:
                self._drop_token(token)
                continue
            if code == 0:
                data = body.get("data") or {}
                return data if isinstance(data, dict) else {}
            where = f"feishu {path}: code {code} ({str(body.get('msg', ''))[:200]})"
            where_zh = f"飞书接口 {path} 返回错误码 {code}({str(body.get('msg', ''))[:200]})"
            if code in UNREACHABLE_CODES:
                raise Unreachable(f"{where}: the person is outside the app's availability (可用范围)",
                                  zh=f"{where_zh}:此人不在应用的可用范围内")
            raise FeishuApiError(where, code, zh=where_zh)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- messages (im/v1/messages) ---
    def send_message(self, receive_id_type: str, receive_id: str, text: str, *, uuid: str | None = None) -> str:
        """A text message; `uuid`: at most one message per uuid within an hour. Returns its message_id."""
        body: dict[str, Any] = {"receive_id": receive_id, "msg_type": "text",
                                "content": jsonlib.dumps({"text": text}, ensure_ascii=False)}
        if uuid:
            body["uuid"] = uuid
        data = self.call("POST", "/open-apis/im/v1/messages", params={"receive_id_type": receive_id_type}, json=body)
        return str(data["message_id"])

    # --- chats ---
    def chat_link(self, chat_id: str, validity_period: str = "permanently") -> dict[str, Any]:
        """{share_link, expire_time, is_permanent}: a link anyone can open to join the chat."""
        return self.call("POST", f"/open-apis/im/v1/chats/{chat_id}/link",
                         json={"validity_period": validity_period})

    def add_members(self, chat_id: str, open_ids: list[str]) -> dict[str, Any]:
        """Adds people (by open_id) to a chat the bot is in; {invalid_id_list, not_existed_id_list, ...}."""
        return self.call("POST", f"/open-apis/im/v1/chats/{chat_id}/members",
                         params={"member_id_type": "open_id"}, json={"id_list": open_ids})

    def remove_members(self, chat_id: str, open_ids: list[str]) -> dict[str, Any]:
        """DELETE im/v1/chats/:chat_id/members: the bot (group owner or admin, or the app that made the group with
        im:chat:operate_as_owner) removes people; {invalid_id_list}."""
        return self.call("DELETE", f"/open-apis/im/v1/chats/{chat_id}/members",
                         params={"member_id_type": "open_id"}, json={"id_list": open_ids})

    def get_chat(self, chat_id: str) -> dict[str, Any]:
        return self.call("GET", f"/open-apis/im/v1/chats/{chat_id}")


def _reset(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("x-ogw-ratelimit-reset", DEFAULT_RESET)))
    except ValueError:
        return DEFAULT_RESET
