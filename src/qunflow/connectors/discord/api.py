"""The Discord REST calls qunflow makes, with per-route rate-limit buckets read from the responses.

Discord's limits are per route and announced in headers (X-RateLimit-Bucket, -Remaining, -Reset-After);
routes share a bucket when they return the same bucket hash, and the top-level ids (channel, guild,
webhook) split a bucket further. A bucket seen empty is waited out before the next call when the wait is
short, and otherwise refused as `RateLimited` without asking (too many 429s get a bot banned for a while).
A 429 answer carries `retry_after` (seconds, a float) and `global`: it becomes `RateLimited(retry_after)`,
which the outbox turns into a later retry. The token rides in the Authorization header only; it never goes
into an error message.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from qunflow.errors import PlatformError, RateLimited, Unauthorized, Unreachable

WAIT_AT_MOST = 2.0  # a bucket that refills within this is waited out; a longer wait is the caller's
# JSON error codes (discord.com/developers/docs/topics/opcodes-and-status-codes#json)
CANNOT_DM = frozenset({50007})  # Cannot send messages to this user (DMs closed, no shared server, blocked)
MISSING = {50001: "Missing Access", 50013: "Missing Permissions", 10004: "Unknown Guild", 10003: "Unknown Channel",
           10006: "Unknown Invite"}
MAJOR = re.compile(r"^/(channels|guilds|webhooks)/(\d+)")
SNOWFLAKE = re.compile(r"/\d{5,}")


def route_key(method: str, path: str) -> str:
    """The route a bucket is tracked by: the top-level id kept (it splits buckets), other ids folded."""
    major = MAJOR.match(path)
    head = major.group(0) if major else ""
    return f"{method} {head}{SNOWFLAKE.sub('/{id}', path[len(head):])}"


@dataclass
class Bucket:
    remaining: int = 1
    reset_at: float = 0.0  # monotonic seconds


class DiscordApiError(PlatformError):
    def __init__(self, message: str, status: int, code: int, *, zh: str | None = None) -> None:
        super().__init__(message, zh=zh)
        self.status = status
        self.code = code


class DiscordApi:
    """A bot's REST client (thread-safe bucket book-keeping); every call returns the decoded JSON."""

    def __init__(self, token: str, api_base: str = "https://discord.com/api/v10", *, timeout: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api_base = api_base.rstrip("/")
        self._client = httpx.Client(base_url=self.api_base, timeout=timeout,
                                    headers={"Authorization": f"Bot {token}",
                                             "User-Agent": "DiscordBot (https://github.com/qunflow, 1)"})
        self._monotonic, self._sleep = monotonic, sleep
        self._lock = threading.Lock()
        self._bucket_of: dict[str, str] = {}  # route key -> bucket hash (+ major id)
        self._buckets: dict[str, Bucket] = {}
        self._global_until = 0.0

    def __repr__(self) -> str:
        return f"DiscordApi(api_base={self.api_base!r})"

    def close(self) -> None:
        self._client.close()

    # --- transport ---
    def _wait_for(self, route: str) -> None:
        with self._lock:
            now = self._monotonic()
            waits = [self._global_until - now]
            bucket = self._buckets.get(self._bucket_of.get(route, ""))
            if bucket is not None and bucket.remaining <= 0:
                waits.append(bucket.reset_at - now)
            wait = max(waits)
        if wait <= 0:
            return
        if wait > WAIT_AT_MOST:
            raise RateLimited(f"discord {route}: the rate-limit bucket is empty", retry_after=wait,
                              zh=f"Discord 接口 {route}:限流额度已用完,{wait:g} 秒后重试")
        self._sleep(wait)

    def _learn(self, route: str, path: str, headers: httpx.Headers) -> None:
        name = headers.get("x-ratelimit-bucket")
        if not name:
            return
        major = MAJOR.match(path)
        key = f"{name}:{major.group(2) if major else ''}"
        try:
            remaining = int(headers.get("x-ratelimit-remaining", "1"))
            reset_after = float(headers.get("x-ratelimit-reset-after", "0"))
        except ValueError:
            return
        with self._lock:
            self._bucket_of[route] = key
            self._buckets[key] = Bucket(remaining, self._monotonic() + reset_after)

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             reason: str | None = None) -> Any:
        route = route_key(method, path)
        self._wait_for(route)
        headers = {"X-Audit-Log-Reason": reason} if reason else None
        try:
            response = self._client.request(method, path, json=json, params=params, headers=headers)
        except httpx.TimeoutException:
            raise PlatformError(f"discord {route}: no answer from {self.api_base} in time; retry later",
                                zh=f"Discord 接口 {route}:{self.api_base} 未及时应答,请稍后重试") from None
        except httpx.HTTPError as exc:
            raise PlatformError(f"discord {route}: cannot reach {self.api_base} ({type(exc).__name__}); "
                                "check api_base and the network",
                                zh=f"Discord 接口 {route}:连不上 {self.api_base}({type(exc).__name__}),"
                                   "请检查 api_base 和网络") from None
        self._learn(route, path, response.headers)
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if response.status_code == 429:
            raise self._limited(route, response, body if isinstance(body, dict) else {})
        if response.status_code >= 400:
            raise self._error(route, response.status_code, body if isinstance(body, dict) else {})
        return body

    def _limited(self, route: str, response: httpx.Response, body: dict[str, Any]) -> RateLimited:
        try:
            retry_after = float(body.get("retry_after") or response.headers.get("retry-after") or 1.0)
        except (TypeError, ValueError):
            retry_after = 1.0
        if body.get("global") or response.headers.get("x-ratelimit-global"):
            with self._lock:
                self._global_until = self._monotonic() + retry_after
        return RateLimited(f"discord {route}: 429 Too Many Requests", retry_after=retry_after,
                           zh=f"Discord 接口 {route}:429 调用过于频繁")

    def _error(self, route: str, status: int, body: dict[str, Any]) -> Exception:
        code = int(body.get("code") or 0) if str(body.get("code") or "0").isdigit() else 0
        message = str(body.get("message", ""))[:200]
        where = f"discord {route}: HTTP {status}, code {code} ({message})"
        where_zh = f"Discord 接口 {route} 返回 HTTP {status},错误码 {code}({message})"
        if status == 401:
            return Unauthorized(f"{where}: Discord refused the bot token; copy it again from the Developer "
                                "Portal (Bot → Reset Token)",
                                zh=f"{where_zh}:Discord 拒绝了机器人令牌;请在 Developer Portal 重新复制"
                                   "(Bot → Reset Token)")
        if code in CANNOT_DM:
            return Unreachable(f"{where}: the person does not accept direct messages from this bot",
                               zh=f"{where_zh}:对方不接收这个机器人的私信")
        return DiscordApiError(where, status, code, zh=where_zh)

    # --- the calls ---
    def me(self) -> dict[str, Any]:
        return dict(self.call("GET", "/users/@me"))

    def application(self) -> dict[str, Any]:
        return dict(self.call("GET", "/applications/@me"))

    def gateway_bot(self) -> dict[str, Any]:
        return dict(self.call("GET", "/gateway/bot"))

    def guild(self, guild_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/guilds/{guild_id}"))

    def guild_channels(self, guild_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/guilds/{guild_id}/channels"))

    def guild_member(self, guild_id: str, user_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/guilds/{guild_id}/members/{user_id}"))

    def add_role(self, guild_id: str, user_id: str, role_id: str) -> None:
        """PUT /guilds/{id}/members/{user}/roles/{role}: needs Manage Roles and a higher role than the one given."""
        self.call("PUT", f"/guilds/{guild_id}/members/{user_id}/roles/{role_id}", reason="qunflow tier")

    def create_invite(self, channel_id: str, *, max_age: int, max_uses: int, unique: bool = True,
                      reason: str | None = None) -> dict[str, Any]:
        """POST /channels/{id}/invites: max_age seconds (0: never expires), max_uses (0: unlimited)."""
        return dict(self.call("POST", f"/channels/{channel_id}/invites", reason=reason,
                              json={"max_age": max_age, "max_uses": max_uses, "unique": unique,
                                    "temporary": False}))

    def guild_invites(self, guild_id: str) -> list[dict[str, Any]]:
        """GET /guilds/{id}/invites: invites with metadata (uses, max_uses); needs Manage Server."""
        return list(self.call("GET", f"/guilds/{guild_id}/invites"))

    def delete_invite(self, code: str) -> None:
        self.call("DELETE", f"/invites/{code}")

    def open_dm(self, user_id: str) -> str:
        """POST /users/@me/channels: the DM channel with a person (the same one each time)."""
        return str(self.call("POST", "/users/@me/channels", json={"recipient_id": user_id})["id"])

    def send_message(self, channel_id: str, content: str, *, nonce: str | None = None) -> dict[str, Any]:
        """POST /channels/{id}/messages. With a nonce and enforce_nonce, Discord answers a repeat within a few
        minutes with the message the first call created instead of posting it twice."""
        body: dict[str, Any] = {"content": content[:2000], "allowed_mentions": {"parse": []}}
        if nonce:
            body["nonce"] = nonce[:25]
            body["enforce_nonce"] = True
        return dict(self.call("POST", f"/channels/{channel_id}/messages", json=body))
