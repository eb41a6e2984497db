"""FakeSlack: a local Slack Web API speaking the documented JSON, and Slack's side of the Events API.

A real HTTP server on 127.0.0.1 (stdlib, a daemon thread). Web API methods are POSTs to `/api/<method>`
with `Authorization: Bearer <token>` (form-encoded or JSON), answering `{"ok": true, ...}` or
`{"ok": false, "error": "<code>"}`; a scripted rate limit is HTTP 429 with `Retry-After` (seconds), as
docs.slack.dev/apis/web-api/rate-limits describes. It answers auth.test, bots.info, conversations.open,
chat.postMessage, conversations.invite (already_in_channel, not_in_channel, user_not_found),
conversations.kick (not_in_channel, cant_kick_self) and conversations.info.

Events go to `events_url` as Slack sends them: an `event_callback` envelope (token, team_id, api_app_id,
event, type, event_id, event_time), signed with v0 = HMAC-SHA256(signing_secret, "v0:<ts>:<body>") in
X-Slack-Signature and X-Slack-Request-Timestamp; a retry is the same body with X-Slack-Retry-Num and
X-Slack-Retry-Reason. conversations.invite queues the member_joined_channel (with `inviter`) Slack then
sends; `deliver_pending()` sends the queue (Slack delivers events asynchronously).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx


def _id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    status: int = 0
    reply: bytes = b""
    content_type: str = ""


@dataclass
class Channel:
    name: str
    members: set[str] = field(default_factory=set)
    archived: bool = False
    is_im: bool = False
    private: bool = False  # a private channel is invisible (channel_not_found) to a bot outside it


@dataclass
class _State:
    users: dict[str, str] = field(default_factory=dict)  # user id -> name
    channels: dict[str, Channel] = field(default_factory=dict)
    ims: dict[str, str] = field(default_factory=dict)  # user id -> D channel id
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)
    rate_limits: dict[str, deque[int]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)  # events Slack will send


class FakeSlack:
    """`with FakeSlack() as slack:` then point qunflow's api_base at `slack.api_base`."""

    def __init__(self) -> None:
        self.bot_token = "xoxb-" + secrets.token_hex(12)
        self.signing_secret = secrets.token_hex(16)
        self.team_id, self.app_id, self.bot_id = _id("T"), _id("A"), _id("B")
        self.bot_user = _id("U")
        self.events_url: str | None = None
        self.state = _State()
        self.state.users[self.bot_user] = "qunflow"
        self.deliveries: list[Delivery] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api"

    # --- the workspace ---
    def person(self, name: str) -> str:
        user = _id("U")
        with self._lock:
            self.state.users[user] = name
        return user

    def make_channel(self, name: str, *, bot_member: bool = True, private: bool = False) -> str:
        channel = _id("C")
        with self._lock:
            self.state.channels[channel] = Channel(name, {self.bot_user} if bot_member else set(), private=private)
        return channel

    def members(self, channel: str) -> set[str]:
        with self._lock:
            return set(self.state.channels[channel].members)

    def rate_limit_next(self, method: str, retry_after: int = 1) -> None:
        """The next call to `method` answers HTTP 429 with Retry-After: `retry_after`."""
        with self._lock:
            self.state.rate_limits.setdefault(method, deque()).append(retry_after)

    def sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.state.messages)

    def direct_messages(self, user: str) -> list[str]:
        with self._lock:
            im = self.state.ims.get(user)
            return [m["text"] for m in self.state.messages if im and m["channel"] == im and m["user"] == self.bot_user]

    def calls(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [params for name, params in self.state.calls if name == method]

    # --- people acting (Slack then sends events) ---
    def dm(self, user: str, text: str) -> Delivery:
        """The person writes to the app in its Messages tab: a message.im event."""
        with self._lock:
            im = self._im(user)
        return self.deliver({"type": "message", "channel": im, "user": user, "text": text, "ts": _ts(),
                             "event_ts": _ts(), "channel_type": "im"})

    def say(self, user: str, channel: str, text: str) -> Delivery:
        return self.deliver({"type": "message", "channel": channel, "user": user, "text": text, "ts": _ts(),
                             "event_ts": _ts(), "channel_type": "channel"})

    def join_channel(self, user: str, channel: str) -> Delivery:
        """The person joins a public channel on their own (no inviter)."""
        with self._lock:
            self.state.channels[channel].members.add(user)
        return self.deliver(self._joined(user, channel, None))

    def deliver_pending(self) -> list[Delivery]:
        with self._lock:
            queued, self.state.pending = self.state.pending, []
        return [self.deliver(event) for event in queued]

    def envelope(self, event: dict[str, Any]) -> bytes:
        return json.dumps({"token": "unused-verification-token", "team_id": self.team_id, "api_app_id": self.app_id,
                           "event": event, "type": "event_callback", "event_id": _id("Ev"),
                           "event_time": int(time.time()),
                           "authorizations": [{"team_id": self.team_id, "user_id": self.bot_user, "is_bot": True,
                                               "is_enterprise_install": False}]}).encode()

    def signed(self, body: bytes, timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new((secret or self.signing_secret).encode(), b"v0:" + stamp.encode() + b":" + body,
                          hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": f"v0={digest}"}

    def deliver(self, event: dict[str, Any]) -> Delivery:
        body = self.envelope(event)
        return self.post(body, self.signed(body))

    def verify_url(self) -> Delivery:
        """What Slack sends when the Request URL is entered: url_verification with a challenge."""
        body = json.dumps({"token": "unused-verification-token", "challenge": secrets.token_urlsafe(32),
                           "type": "url_verification"}).encode()
        return self.post(body, self.signed(body))

    def redeliver_last(self, retry_num: int = 1) -> Delivery:
        """Slack retries an event it saw no timely 2xx for: the same body (same event_id), signed anew."""
        body = self.deliveries[-1].body
        headers = self.signed(body) | {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return self.post(body, headers)

    def post(self, body: bytes, headers: dict[str, str]) -> Delivery:
        if self.events_url is None:
            raise RuntimeError("set events_url first")
        delivery = Delivery(body, headers)
        answer = httpx.post(self.events_url, content=body, headers=headers, timeout=30)
        delivery.status, delivery.reply = answer.status_code, answer.content
        delivery.content_type = answer.headers.get("content-type", "")
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def _joined(self, user: str, channel: str, inviter: str | None) -> dict[str, Any]:
        event = {"type": "member_joined_channel", "user": user, "channel": channel, "channel_type": "C",
                 "team": self.team_id, "event_ts": _ts()}
        if inviter:
            event["inviter"] = inviter
        return event

    def _im(self, user: str) -> str:
        if user not in self.state.ims:
            im = _id("D")
            self.state.ims[user] = im
            self.state.channels[im] = Channel("", {user, self.bot_user}, is_im=True)
        return self.state.ims[user]

    # --- the Web API ---
    def _method(self, name: str, params: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.state.calls.append((name, params))
            self.state.call_times.append(time.monotonic())
            limits = self.state.rate_limits.get(name)
            if limits:
                wait = limits.popleft()
                return 429, {"Retry-After": str(wait)}, {"ok": False, "error": "ratelimited"}
            handler = getattr(self, "_m_" + name.replace(".", "_"), None)
            if handler is None:
                return 404, {}, {"ok": False, "error": "unknown_method"}
            return 200, {}, handler(params)

    def _m_auth_test(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake-workspace.slack.com/", "team": "Fake Workspace", "user": "qunflow",
                "team_id": self.team_id, "user_id": self.bot_user, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _m_bots_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("bot") != self.bot_id:
            return {"ok": False, "error": "bot_not_found"}
        return {"ok": True, "bot": {"id": self.bot_id, "deleted": False, "name": "qunflow", "updated": 1700000000,
                                    "app_id": self.app_id, "user_id": self.bot_user}}

    def _m_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("users") or "")
        if user not in self.state.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": self._im(user)}}

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - Slack's method name
        channel = self.state.channels.get(str(p.get("channel") or ""))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if self.bot_user not in channel.members:
            return {"ok": False, "error": "not_in_channel"}
        text = str(p.get("text") or "")
        if not text:
            return {"ok": False, "error": "no_text"}
        ts = _ts()
        self.state.messages.append({"channel": p["channel"], "user": self.bot_user, "text": text, "ts": ts})
        return {"ok": True, "channel": p["channel"], "ts": ts,
                "message": {"type": "message", "user": self.bot_user, "text": text, "ts": ts, "bot_id": self.bot_id}}

    def _m_conversations_invite(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.channels.get(str(p.get("channel") or ""))
        if channel is None or channel.is_im:
            return {"ok": False, "error": "channel_not_found"}
        if self.bot_user not in channel.members:
            return {"ok": False, "error": "not_in_channel"}
        users = [u for u in str(p.get("users") or "").split(",") if u]
        if not users or any(u not in self.state.users for u in users):
            return {"ok": False, "error": "user_not_found"}
        if all(u in channel.members for u in users):
            return {"ok": False, "error": "already_in_channel"}
        for user in users:
            if user not in channel.members:
                channel.members.add(user)
                self.state.pending.append(self._joined(user, str(p["channel"]), self.bot_user))
        return {"ok": True, "channel": self._info(str(p["channel"]), channel)}

    def _m_conversations_kick(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.channels.get(str(p.get("channel") or ""))
        if channel is None or channel.is_im:
            return {"ok": False, "error": "channel_not_found"}
        user = str(p.get("user") or "")
        if user not in self.state.users:
            return {"ok": False, "error": "user_not_found"}
        if user == self.bot_user:
            return {"ok": False, "error": "cant_kick_self"}
        if user not in channel.members:
            return {"ok": False, "error": "not_in_channel"}
        channel.members.discard(user)
        self.state.pending.append({"type": "member_left_channel", "user": user, "channel": str(p["channel"]),
                                   "channel_type": "C", "team": self.team_id, "event_ts": _ts()})
        return {"ok": True}

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.channels.get(str(p.get("channel") or ""))
        if channel is None or (channel.private and self.bot_user not in channel.members):
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": self._info(str(p["channel"]), channel)}

    def _info(self, channel_id: str, channel: Channel) -> dict[str, Any]:
        return {"id": channel_id, "name": channel.name, "is_channel": True, "is_archived": channel.archived,
                "is_member": self.bot_user in channel.members, "num_members": len(channel.members)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if not self.path.startswith("/api/"):
                    return self._answer(404, {}, {"ok": False, "error": "unknown_method"})
                if self.headers.get("authorization") != f"Bearer {fake.bot_token}":
                    return self._answer(200, {}, {"ok": False, "error": "invalid_auth"})
                if (self.headers.get("content-type") or "").startswith("application/json"):
                    params = json.loads(raw or b"{}")
                else:
                    params = dict(parse_qsl(raw.decode()))
                status, headers, body = fake._method(self.path.removeprefix("/api/"), params)
                self._answer(status, headers, body)

            def _answer(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


_last_ts = [0.0]
_ts_lock = threading.Lock()


def _ts() -> str:
    """A message ts: Unix seconds with six decimals, unique within the fake."""
    with _ts_lock:
        now = max(time.time(), _last_ts[0] + 0.000001)
        _last_ts[0] = now
        return f"{now:.6f}"
