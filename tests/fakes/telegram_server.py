"""FakeTelegram: a local Bot API server (loopback only) with groups, people, invite links and join requests.

It speaks the Bot API's JSON for the methods qunflow uses, with the documented rules that shape a funnel:
invite link names (0-32 characters), member_limit (not with creates_join_request), expire_date (an expired
link admits nobody and makes no join request; revoking it still works), join requests whose
`user_chat_id` may be messaged for 5 minutes until the request is processed, chat_member updates only when
asked for by name and the bot is an admin, webhooks with the secret header (retried until a 2xx), getUpdates
offsets, and 429s with `retry_after`. Webhook delivery follows the reference server (tdlib/telegram-bot-api,
Client.cpp and WebhookActor.cpp): every update has a queue (a join request's and a chat_member update's is
the user's, a message's its chat's); a queue's updates go one at a time and in order, different queues side
by side over at most `max_connections` connections (setWebhook, 1-100, default 40). Error descriptions
follow what the Bot API is known to send; see docs in the Telegram connector's report for which were checked.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

TOKEN = "123456789:AAFakeTokenForQunflowTests_abcdefghij"
BOT_ID = 123456789
DM_WINDOW = 300.0  # seconds a join request's user_chat_id may be messaged
# Without allowed_updates Telegram sends every kind except these (they must be asked for by name).
NOT_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}
SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class Limits:
    """Telegram's published guidance: ~30 messages/s per bot, 20/min per group, ~1/s per private chat."""

    bot_per_second: int = 30
    group_per_minute: int = 20
    private_per_second: int = 1


@dataclass
class Person:
    id: int
    first_name: str
    last_name: str | None
    user_chat_id: int
    started_bot: bool = False
    blocked: bool = False

    def user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        return user


@dataclass
class Link:
    url: str
    name: str | None
    creates_join_request: bool
    member_limit: int | None
    revoked: bool = False
    joined: set[int] = field(default_factory=set)
    expire_date: int | None = None  # Unix time; from then on the link lets nobody in (nor asks to join)

    def expired(self, now: float) -> bool:
        return self.expire_date is not None and now >= self.expire_date

    def obj(self, bot: dict[str, Any]) -> dict[str, Any]:
        link: dict[str, Any] = {"invite_link": self.url, "creator": bot, "creates_join_request":
                                self.creates_join_request, "is_primary": False, "is_revoked": self.revoked}
        if self.name:
            link["name"] = self.name
        if self.expire_date is not None:
            link["expire_date"] = self.expire_date
        if self.member_limit is not None:
            link["member_limit"] = self.member_limit
        return link


@dataclass
class Request:
    user_id: int
    user_chat_id: int
    date: float
    link: Link | None
    status: str = "pending"  # approved, declined


@dataclass
class Chat:
    id: int
    title: str
    bot_admin: bool
    can_invite: bool
    privacy: bool
    status: dict[int, str] = field(default_factory=dict)  # user id -> member, left, kicked
    links: dict[str, Link] = field(default_factory=dict)
    requests: dict[int, Request] = field(default_factory=dict)
    next_message_id: int = 1

    def obj(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "type": "supergroup"}


class FakeTelegram:
    """A Bot API server on 127.0.0.1. Use as a context manager; `api_base` goes into TelegramSettings."""

    def __init__(self, token: str = TOKEN, *, clock: Callable[[], float] = time.time, limits: Limits | None = None,
                 privacy_mode: bool = False, distinct_user_chat_id: bool = True, poll_cap: float = 2.0,
                 username: str = "qunflow_test_bot") -> None:
        self.token, self.clock, self.limits = token, clock, limits or Limits()
        self.privacy_mode, self.distinct_user_chat_id, self.poll_cap = privacy_mode, distinct_user_chat_id, poll_cap
        self.bot = {"id": BOT_ID, "is_bot": True, "first_name": "Qunflow Test", "username": username}
        self.chats: dict[int, Chat] = {}
        self.people: dict[int, Person] = {}
        self.webhook: dict[str, Any] | None = None  # url, secret_token, max_connections
        self.allowed_updates: set[str] | None = None  # None: Telegram's default set
        self.delivered: list[dict[str, Any]] = []  # updates a webhook answered 2xx
        self._pending: list[dict[str, Any]] = []  # unconfirmed updates, oldest first
        self._log: dict[int, dict[str, Any]] = {}
        self._next_update_id = 500_000_001
        self._sent: list[dict[str, Any]] = []
        self._calls: list[tuple[str, dict[str, Any], float]] = []
        self._failures: dict[str, deque[ApiError]] = {}
        self._held: dict[str, threading.Event] = {}
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        serve = lambda: self._server.serve_forever(poll_interval=0.02)  # noqa: E731 - quick shutdown in tests
        self._threads = [threading.Thread(target=serve, daemon=True)]
        self._senders: list[threading.Thread] = []  # webhook connections, started as parallel work appears
        # One client for every sender (each thread gets its own connection from its pool): a client per sender
        # built an SSL context each, about 30 ms of CPU under this process's GIL, so the first burst of updates
        # starting 40 senders stalled the fake's own API answers by 0.4 s (bench/bench_connectors.py).
        self._http = httpx.Client(timeout=5.0, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100))
        self._sending: set[tuple[str, int]] = set()  # queues with an update on its way
        self._retry_at: dict[tuple[str, int], float] = {}  # a queue whose last try failed waits until then
        self._backoff: dict[tuple[str, int], float] = {}

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeTelegram:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for sender in self._senders:  # each sees _stopping at its next update, or after the POST in flight
            sender.join(6.0)
        self._http.close()

    # --- the world: groups, people and what they do ---
    def make_group(self, title: str, bot_admin: bool = True, can_invite: bool = True, privacy: bool = False) -> str:
        """A supergroup with the bot in it. `privacy`: the bot's privacy mode when it was added (Telegram applies
        a /setprivacy change when the bot is re-added), which getMe reports from then on."""
        with self._lock:
            chat_id = -1001000000000 - len(self.chats) - 1
            self.chats[chat_id] = Chat(chat_id, title, bot_admin, can_invite and bot_admin, privacy)
            self.privacy_mode = privacy
            return str(chat_id)

    def person(self, name: str, started_bot: bool = False) -> str:
        first, _, last = name.partition(" ")
        with self._lock:
            user_id = 700_000_001 + len(self.people)
            # The docs do not promise user_chat_id == from.id; keeping them apart catches code that mixes them.
            user_chat_id = user_id + 9_000_000_000 if self.distinct_user_chat_id else user_id
            self.people[user_id] = Person(user_id, first, last or None, user_chat_id, started_bot)
            return str(user_id)

    def block(self, user_id: str) -> None:
        with self._lock:
            self.people[int(user_id)].blocked = True

    def start_bot(self, user_id: str) -> None:
        self.say(user_id, "/start")

    def open_link(self, user_id: str, url: str) -> str:
        """The person opens an invite link: 'joined', 'requested' or 'refused' (revoked, used up, banned)."""
        with self._lock:
            person = self.people[int(user_id)]
            chat, link = next(((c, c.links[url]) for c in self.chats.values() if url in c.links), (None, None))
            if chat is None or link is None or link.revoked or chat.status.get(person.id) == "kicked":
                return "refused"
            if link.expired(self.clock()):  # the app says the link expired: no join, no request
                return "refused"
            if chat.status.get(person.id) == "member":
                return "joined"
            if link.member_limit is not None and len(
                    [u for u in link.joined if chat.status.get(u) == "member"]) >= link.member_limit:
                return "refused"
            if link.creates_join_request:
                existing = chat.requests.get(person.id)
                if existing is None or existing.status != "pending":
                    request = Request(person.id, person.user_chat_id, self.clock(), link)
                    chat.requests[person.id] = request
                    if chat.can_invite:  # the bot needs can_invite_users to receive join requests
                        self._emit("chat_join_request", {
                            "chat": chat.obj(), "from": person.user(), "user_chat_id": person.user_chat_id,
                            "date": int(request.date), "invite_link": link.obj(self.bot)})
                return "requested"
            self._add_member(chat, person, link, by=person.user(), via_join_request=False)
            return "joined"

    def leave(self, user_id: str, chat_id: str) -> None:
        with self._lock:
            chat, person = self.chats[int(chat_id)], self.people[int(user_id)]
            if chat.status.get(person.id) != "member":
                return
            chat.status[person.id] = "left"
            self._member_update(chat, person, person.user(), "member", "left")
            self._service(chat, person, {"left_chat_member": person.user()})

    def say(self, user_id: str, text: str, chat_id: str | None = None) -> None:
        """The person writes in a group they belong to, or privately to the bot when chat_id is None."""
        with self._lock:
            person = self.people[int(user_id)]
            message: dict[str, Any] = {"from": person.user(), "date": int(self.clock()), "text": text}
            if text.startswith("/"):
                length = len(text.split()[0])
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            if chat_id is None:
                person.started_bot = True  # a person can write to a bot only after pressing Start
                chat_obj = {"id": person.id, "type": "private", "first_name": person.first_name}
                self._emit("message", {"message_id": self._message_id(None), "chat": chat_obj, **message})
                return
            chat = self.chats[int(chat_id)]
            if chat.status.get(person.id) != "member":
                raise ValueError(f"{user_id} is not a member of {chat_id}")
            # Privacy mode: only commands reach a bot that is not an admin.
            if chat.bot_admin or not chat.privacy or text.startswith("/"):
                self._emit("message", {"message_id": self._message_id(chat), "chat": chat.obj(), **message})

    # --- scripting ---
    def fail_next(self, method: str, error_code: int, description: str, retry_after: int | None = None) -> None:
        """The next call of `method` answers this error instead of running."""
        with self._lock:
            self._failures.setdefault(method, deque()).append(ApiError(error_code, description, retry_after))

    def hold(self, method: str) -> threading.Event:
        """Calls of `method` wait (without running) until the returned event is set, then answer 503 without
        running: a call cut off mid-way, as when the caller is killed while waiting for the answer."""
        with self._lock:
            event = self._held[method] = threading.Event()
        return event

    def redeliver(self, update_id: int) -> None:
        """Send an update again, as Telegram does when it did not see the webhook's answer."""
        with self._changed:
            self._pending.append(self._log[update_id])
            self.wake_senders()

    def wait_delivered(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until the webhook has accepted `count` updates in all; returns them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.delivered) < count and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            return list(self.delivered)

    # --- inspection ---
    def sent(self, chat_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._sent if chat_id is None or m["chat_id"] == chat_id]

    def members(self, chat_id: str) -> set[str]:
        with self._lock:
            return {str(u) for u, s in self.chats[int(chat_id)].status.items() if s == "member"}

    def calls(self, method: str | None = None) -> list[tuple[str, dict[str, Any], float]]:
        with self._lock:
            return [c for c in self._calls if method is None or c[0] == method]

    def pending_requests(self, chat_id: str) -> list[str]:
        with self._lock:
            return [str(u) for u, r in self.chats[int(chat_id)].requests.items() if r.status == "pending"]

    def pending_updates(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._pending)

    # --- updates ---
    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        allowed = self.allowed_updates
        if (kind not in allowed) if allowed else (kind in NOT_BY_DEFAULT):
            return
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._log[update["update_id"]] = update
        self._pending.append(update)
        self.wake_senders()

    def _add_member(self, chat: Chat, person: Person, link: Link | None, by: dict[str, Any],
                    via_join_request: bool) -> None:
        old = chat.status.get(person.id, "left")
        chat.status[person.id] = "member"
        if link is not None:
            link.joined.add(person.id)
        self._member_update(chat, person, by, old, "member", link, via_join_request)
        self._service(chat, person, {"new_chat_members": [person.user()]})

    def _member_update(self, chat: Chat, person: Person, by: dict[str, Any], old: str, new: str,
                       link: Link | None = None, via_join_request: bool = False) -> None:
        if not chat.bot_admin:  # chat_member updates reach administrators only
            return
        change: dict[str, Any] = {
            "chat": chat.obj(), "from": by, "date": int(self.clock()),
            "old_chat_member": {"status": old, "user": person.user()},
            "new_chat_member": {"status": new, "user": person.user()}}
        if link is not None:
            change["invite_link"] = link.obj(self.bot)
        if via_join_request:
            change["via_join_request"] = True
        self._emit("chat_member", change)

    def _service(self, chat: Chat, person: Person, fields: dict[str, Any]) -> None:
        self._emit("message", {"message_id": self._message_id(chat), "from": person.user(), "chat": chat.obj(),
                               "date": int(self.clock()), **fields})

    def _message_id(self, chat: Chat | None) -> int:
        if chat is None:
            return secrets.randbelow(1_000_000) + 1
        chat.next_message_id += 1
        return chat.next_message_id - 1

    def wake_senders(self) -> None:
        """(With the lock held.) New work: open another webhook connection while there are queues waiting and
        fewer than max_connections are open, then wake them."""
        if self.webhook is not None and not self._stopping:
            waiting = {_queue_of(u) for u in self._pending} - self._sending
            limit = int(self.webhook.get("max_connections") or 40)
            while len(self._senders) < min(limit, len(self._sending) + len(waiting)):
                sender = threading.Thread(target=self._send_loop, daemon=True)
                self._senders.append(sender)
                sender.start()
        self._changed.notify_all()

    def _next_update(self) -> tuple[dict[str, Any] | None, float]:
        """(With the lock held.) The oldest pending update whose queue is free, or None and how long to wait."""
        now, wait = time.monotonic(), 1.0
        blocked: set[tuple[str, int]] = set()
        for update in self._pending:
            queue = _queue_of(update)
            if queue in blocked or queue in self._sending:
                blocked.add(queue)  # a queue's later updates wait for its earlier ones
                continue
            due = self._retry_at.get(queue, 0.0)
            if due > now:
                blocked.add(queue)
                wait = min(wait, due - now)
                continue
            return update, 0.0
        return None, wait

    def _send_loop(self) -> None:
        """One webhook connection: POST the next deliverable update, until it is answered 2xx (per queue)."""
        http = self._http
        while True:
            with self._changed:
                while True:
                    if self._stopping:
                        return
                    limit = int((self.webhook or {}).get("max_connections") or 40)
                    update, wait = self._next_update() if self.webhook else (None, 1.0)
                    if update is not None and len(self._sending) < limit:
                        break
                    self._changed.wait(wait)
                queue, hook = _queue_of(update), dict(self.webhook or {})
                self._sending.add(queue)
            headers = {"content-type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            try:
                ok = http.post(hook["url"], content=json.dumps(update), headers=headers).is_success
            except httpx.HTTPError:
                ok = False
            with self._changed:
                self._sending.discard(queue)
                if ok:
                    if any(u is update for u in self._pending):
                        self._pending.remove(update)
                    self.delivered.append(update)
                    self._backoff.pop(queue, None)
                    self._retry_at.pop(queue, None)
                else:  # Telegram tries the queue again later, the other queues go on
                    backoff = self._backoff[queue] = min(self._backoff.get(queue, 0.01) * 2, 0.5)
                    self._retry_at[queue] = time.monotonic() + backoff
                self._changed.notify_all()

    # --- the HTTP side ---
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as api.telegram.org does
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:  # noqa: N802 - http.server's API
                self._answer({})

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                kind = self.headers.get("content-type", "")
                if "json" in kind:
                    params = json.loads(raw or b"{}")
                else:
                    params = {k: _value(v) for k, v in parse_qsl(raw.decode())}
                self._answer(params)

            def _answer(self, params: dict[str, Any]) -> None:
                parts = urlsplit(self.path)
                params = {**{k: _value(v) for k, v in parse_qsl(parts.query)}, **params}
                status, body = fake.dispatch(parts.path, params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def dispatch(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        prefix = f"/bot{self.token}/"
        if not path.startswith(prefix):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        method = path[len(prefix):]
        from tests.fakes import telegram_methods

        handler = telegram_methods.METHODS.get(method)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        with self._lock:
            self._calls.append((method, params, time.monotonic()))
            failures = self._failures.get(method)
            failure = failures.popleft() if failures else None
            held = self._held.pop(method, None)
        if held is not None:
            held.wait(30)
            return 503, {"ok": False, "error_code": 503, "description": "Service Unavailable: the call was cut off"}
        if failure is not None:
            return failure.code, failure.body()
        try:
            if method == "getUpdates":  # a long poll waits without holding the lock
                return 200, {"ok": True, "result": handler(self, params)}
            with self._lock:
                return 200, {"ok": True, "result": handler(self, params)}
        except ApiError as exc:
            return exc.code, exc.body()

    def check_rate(self, *buckets: tuple[str, int, float]) -> None:
        """429 with retry_after (whole seconds) when any (key, limit, per seconds) window is full."""
        now = self.clock()
        waits = []
        for key, limit, per in buckets:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - per:
                window.popleft()
            if len(window) >= limit:
                waits.append(window[0] + per - now)
        if waits:
            retry = max(1, math.ceil(max(waits)))
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)
        for key, _limit, _per in buckets:
            self._windows[key].append(now)

    def record_sent(self, message: dict[str, Any]) -> None:
        self._sent.append(message)

    @staticmethod
    def clock_monotonic() -> float:
        """Long-poll waits use real time whatever `clock` says (a test clock does not advance by itself)."""
        return time.monotonic()


def _value(text: str) -> Any:
    """Form and query values are strings; Telegram reads JSON in them (arrays, numbers, booleans)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _queue_of(update: dict[str, Any]) -> tuple[str, int]:
    """The reference server's webhook queue of an update: the user for join requests and member changes (the
    bot's own member changes go by chat), the chat for messages."""
    if "chat_join_request" in update:
        return ("user", int(update["chat_join_request"]["from"]["id"]))
    if "chat_member" in update:
        change = update["chat_member"]
        return ("user", int(change["new_chat_member"]["user"]["id"]))
    if "my_chat_member" in update:
        return ("chat", int(update["my_chat_member"]["chat"]["id"]))
    for kind in ("message", "edited_message", "channel_post"):
        if kind in update:
            return ("chat", int(update[kind]["chat"]["id"]))
    return ("update", int(update["update_id"]))
