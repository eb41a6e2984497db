"""FakeDiscord: a local Discord (loopback only): the REST API qunflow calls and a Gateway over WebSocket.

REST (discord.com/developers/docs/reference): `Authorization: Bot TOKEN`, JSON errors `{"code", "message"}`,
rate-limit headers on every answer (X-RateLimit-Limit, -Remaining, -Reset, -Reset-After, -Bucket) and 429s
with `retry_after` (seconds, float), `global` and a Retry-After header. Invites (POST /channels/{id}/invites,
GET /guilds/{id}/invites with `uses`, DELETE /invites/{code}; a max_uses invite is deleted when used up), DM
channels (POST /users/@me/channels) and messages (POST /channels/{id}/messages; a repeated `nonce` with
`enforce_nonce` answers the first message instead of posting again; a person who closed their DMs is 403
code 50007).

Gateway (discord.com/developers/docs/events/gateway): HELLO (op 10, heartbeat_interval) on connect,
IDENTIFY (op 2: token, intents) answered with the READY dispatch, heartbeats (op 1) answered with
HEARTBEAT_ACK (op 11), dispatches (op 0) with a sequence number per session, RESUME (op 6) answered with
INVALID_SESSION (op 9, not resumable), zlib-stream or zstd-stream transport compression when the URL asks for it.
GUILD_MEMBER_ADD / REMOVE go only to sessions with the GUILD_MEMBERS intent; MESSAGE_CREATE content in a
server is empty without MESSAGE_CONTENT.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.sync.server import Server, ServerConnection, serve

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.FakeTk.qunflow-tests-not-a-real-token"
BOT_ID = "1100000000000000001"
APP_ID = "1100000000000000002"
GUILD_MEMBERS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 1, 1 << 9, 1 << 12, 1 << 15
# Application flags: GATEWAY_GUILD_MEMBERS and GATEWAY_MESSAGE_CONTENT (the intents turned on in the portal).
APP_FLAGS = (1 << 14) | (1 << 18)
ALL_PERMISSIONS = (1 << 41) - 1
BASIC = (1 << 0) | (1 << 5) | (1 << 10) | (1 << 11) | (1 << 28)  # invite, manage server, view, send, roles
HEARTBEAT_MS = 41250
ZLIB_SUFFIX = b"\x00\x00\xff\xff"


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_ids = iter(range(1, 1 << 40))
_id_lock = threading.Lock()


def snowflake() -> str:
    """A Discord-shaped id: milliseconds since 2015 shifted by 22 bits, plus a counter."""
    with _id_lock:
        n = next(_ids)
    return str(((int(time.time() * 1000) - 1420070400000) << 22) | (n & 0x3FFFFF))


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


@dataclass
class Person:
    id: str
    username: str
    dms_open: bool = True

    def user(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username.lower(), "discriminator": "0",
                "global_name": self.username, "avatar": None, "public_flags": 0}


@dataclass
class Guild:
    id: str
    name: str
    system_channel_id: str | None
    channels: list[dict[str, Any]]
    bot_permissions: int
    members: dict[str, str] = field(default_factory=dict)  # user id -> joined_at
    roles: list[dict[str, Any]] = field(default_factory=list)  # the server's own roles (tiers), below the bot's
    member_roles: dict[str, set[str]] = field(default_factory=dict)

    def obj(self) -> dict[str, Any]:
        role = {"id": f"{int(self.id) + 1}", "name": "qunflow", "permissions": str(self.bot_permissions),
                "position": 1, "color": 0, "hoist": False, "managed": True, "mentionable": False}
        everyone = {"id": self.id, "name": "@everyone", "permissions": "0", "position": 0, "color": 0,
                    "hoist": False, "managed": False, "mentionable": False}
        return {"id": self.id, "name": self.name, "owner_id": "1100000000000000099",
                "roles": [everyone, role, *self.roles],
                "system_channel_id": self.system_channel_id, "features": [], "icon": None}


@dataclass
class Invite:
    code: str
    guild_id: str
    channel_id: str
    max_uses: int
    max_age: int
    created: float
    uses: int = 0

    def obj(self, guild: Guild, metadata: bool) -> dict[str, Any]:
        channel = next(c for c in guild.channels if c["id"] == self.channel_id)
        body: dict[str, Any] = {"type": 0, "code": self.code, "guild": {"id": guild.id, "name": guild.name},
                                "channel": {"id": channel["id"], "name": channel["name"], "type": 0},
                                "inviter": {"id": BOT_ID, "username": "qunflow", "discriminator": "0",
                                            "avatar": None, "bot": True},
                                "expires_at": iso(self.created + self.max_age) if self.max_age else None}
        if metadata:
            body.update({"uses": self.uses, "max_uses": self.max_uses, "max_age": self.max_age,
                         "temporary": False, "created_at": iso(self.created)})
        return body


class Session:
    """One Gateway connection after IDENTIFY."""

    def __init__(self, ws: ServerConnection, compress: str | None) -> None:
        self.ws, self.compress = ws, compress
        self.deflate = zlib.compressobj() if compress == "zlib-stream" else None
        self.zstd: Any = None
        if compress == "zstd-stream":
            from backports.zstd import ZstdCompressor  # Python 3.14 has it as compression.zstd

            self.zstd = ZstdCompressor()
        self.seq = 0
        self.intents = 0
        self.identified = False
        self.lock = threading.Lock()

    def send(self, payload: dict[str, Any], dispatch: str | None = None) -> None:
        with self.lock:
            if dispatch is not None:
                self.seq += 1
                payload = {"op": 0, "t": dispatch, "s": self.seq, "d": payload}
            data = json.dumps(payload).encode()
            if self.deflate is not None:
                self.ws.send(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))
            elif self.zstd is not None:
                self.ws.send(self.zstd.compress(data, self.zstd.FLUSH_BLOCK))
            else:
                self.ws.send(data.decode())


class FakeDiscord:
    def __init__(self, token: str = TOKEN, *, bucket_limit: int = 5, bucket_seconds: float = 1.0) -> None:
        self.token = token
        self.lock = threading.RLock()
        self.people: dict[str, Person] = {}
        self.guilds: dict[str, Guild] = {}
        self.invites: dict[str, Invite] = {}
        self.dm_channels: dict[str, str] = {}  # user id -> channel id
        self.messages: list[dict[str, Any]] = []
        self.nonces: dict[tuple[str, str], dict[str, Any]] = {}
        self.log: list[tuple[str, str, dict[str, Any], float, str]] = []  # (method, route, body, at, path)
        self.failures: dict[str, list[tuple[int, float]]] = {}
        self.sessions: list[Session] = []
        self.identifies: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.bucket_limit, self.bucket_seconds = bucket_limit, bucket_seconds
        self.windows: dict[str, tuple[float, int]] = {}
        self.app_flags = APP_FLAGS  # which privileged intents the portal has on
        self.signing_key = Ed25519PrivateKey.generate()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.gateway: Server = serve(self._gateway_session, "127.0.0.1", 0)

    # --- lifecycle ---
    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.http.server_port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway.socket.getsockname()[1]}"

    @property
    def public_key(self) -> str:
        return self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    def __enter__(self) -> FakeDiscord:
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        threading.Thread(target=self.gateway.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.gateway.shutdown()
        self.http.shutdown()
        self.http.server_close()

    # --- the world ---
    def make_guild(self, name: str, *, permissions: int = BASIC, system_channel: bool = True) -> str:
        guild_id = snowflake()
        general = {"id": snowflake(), "name": "general", "type": 0, "position": 0, "guild_id": guild_id}
        with self.lock:
            self.guilds[guild_id] = Guild(guild_id, name, general["id"] if system_channel else None, [general],
                                          permissions)
        return guild_id

    def make_role(self, guild_id: str, name: str, *, position: int = 0) -> str:
        """A role of the server (position 0: below the bot's role, which is at 1)."""
        role_id = snowflake()
        with self.lock:
            self.guilds[guild_id].roles.append({"id": role_id, "name": name, "permissions": "0",
                                                "position": position, "color": 0, "hoist": False,
                                                "managed": False, "mentionable": False})
        return role_id

    def person(self, name: str) -> str:
        person = Person(snowflake(), name)
        with self.lock:
            self.people[person.id] = person
        return person.id

    def close_dms(self, user_id: str) -> None:
        self.people[user_id].dms_open = False

    def join(self, user_id: str, url_or_code: str) -> str:
        """The person accepts an invite: the invite's use count moves, then GUILD_MEMBER_ADD is dispatched."""
        code = url_or_code.rstrip("/").rsplit("/", 1)[-1]
        with self.lock:
            invite = self.invites.get(code)
            if invite is None:
                raise ApiError(404, 10006, "Unknown Invite")
            invite.uses += 1
            if invite.max_uses and invite.uses >= invite.max_uses:
                del self.invites[code]  # a used-up invite is deleted
            guild = self.guilds[invite.guild_id]
            joined = iso(time.time())
            guild.members[user_id] = joined
        self.member_event("GUILD_MEMBER_ADD", guild.id, user_id, joined)
        return guild.id

    def member_event(self, kind: str, guild_id: str, user_id: str, joined_at: str | None = None) -> None:
        person = self.people[user_id]
        if kind == "GUILD_MEMBER_ADD":
            payload = {"guild_id": guild_id, "user": person.user(), "nick": None, "roles": [],
                       "joined_at": joined_at or iso(time.time()), "deaf": False, "mute": False, "flags": 0,
                       "pending": False}
        else:
            payload = {"guild_id": guild_id, "user": person.user()}
        self.dispatch(kind, payload, GUILD_MEMBERS)

    def leave(self, user_id: str, guild_id: str) -> None:
        with self.lock:
            self.guilds[guild_id].members.pop(user_id, None)
        self.member_event("GUILD_MEMBER_REMOVE", guild_id, user_id)

    def say(self, user_id: str, text: str, guild_id: str) -> str:
        guild = self.guilds[guild_id]
        message_id = snowflake()
        payload = {"id": message_id, "channel_id": guild.channels[0]["id"], "guild_id": guild_id,
                   "author": self.people[user_id].user(), "content": text, "timestamp": iso(time.time()),
                   "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
                   "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0}
        for session in self._sessions(GUILD_MESSAGES):
            seen = payload if session.intents & MESSAGE_CONTENT else {**payload, "content": ""}
            session.send(seen, dispatch="MESSAGE_CREATE")
        return message_id

    def dispatch(self, kind: str, payload: dict[str, Any], intent: int) -> None:
        for session in self._sessions(intent):
            session.send(payload, dispatch=kind)

    def _sessions(self, intent: int) -> list[Session]:
        with self.lock:
            return [s for s in self.sessions if s.identified and s.intents & intent]

    def wait_identified(self, timeout: float = 15.0) -> Session:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                ready = [s for s in self.sessions if s.identified]
            if ready:
                return ready[0]
            time.sleep(0.02)
        raise AssertionError("no Gateway session identified in time")

    def fail_next(self, route: str, retry_after: float = 1.0) -> None:
        """The next call to `route` (e.g. "POST /channels/{id}/messages") is answered 429 once."""
        self.failures.setdefault(route, []).append((429, retry_after))

    def calls(self, route: str | None = None) -> list[tuple[str, str, dict[str, Any], float, str]]:
        with self.lock:
            return [c for c in self.log if route is None or f"{c[0]} {c[1]}" == route]

    def sent(self, *, private: bool | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if private is None or m["private"] == private]

    def sign(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        """The headers Discord sends with an interaction: Ed25519 over timestamp + body."""
        stamp = timestamp or str(int(time.time()))
        return {"X-Signature-Ed25519": self.signing_key.sign(stamp.encode() + body).hex(),
                "X-Signature-Timestamp": stamp, "Content-Type": "application/json"}

    # --- the Gateway ---
    def _gateway_session(self, ws: ServerConnection) -> None:
        query = dict(parse_qsl(urlsplit(ws.request.path if ws.request else "/").query))
        session = Session(ws, query.get("compress"))
        session.send({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}, "s": None, "t": None})
        try:
            for raw in ws:
                message = json.loads(raw)
                op, data = message.get("op"), message.get("d")
                if op == 1:
                    self.heartbeats += 1
                    session.send({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    if data.get("token") != self.token:
                        ws.close(4004, "Authentication failed.")
                        return
                    session.intents = int(data.get("intents", 0))
                    with self.lock:
                        self.identifies.append(data)
                    session.send(self._ready(), dispatch="READY")
                    with self.lock:
                        session.identified = True
                        self.sessions.append(session)
                elif op == 6:
                    session.send({"op": 9, "d": False, "s": None, "t": None})
        except Exception:  # a closed connection ends the session
            pass
        finally:
            with self.lock:
                if session in self.sessions:
                    self.sessions.remove(session)

    def _ready(self) -> dict[str, Any]:
        with self.lock:
            guilds = [{"id": g, "unavailable": True} for g in self.guilds]
        return {"v": 10, "user": {"id": BOT_ID, "username": "qunflow", "discriminator": "0", "global_name": None,
                                  "avatar": None, "bot": True, "flags": 0, "mfa_enabled": False,
                                  "verified": True},
                "guilds": guilds, "session_id": secrets.token_hex(16),
                "resume_gateway_url": self.gateway_url, "shard": [0, 1],
                "application": {"id": APP_ID, "flags": self.app_flags}}

    # --- REST ---
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path.removeprefix("/api/v10")
                status, body, headers = fake.route(self.command, path, raw, self.headers.get("authorization", ""))
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve  # noqa: N815 - http.server's API

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def route(self, method: str, path: str, raw: bytes, auth: str) -> tuple[int, Any, dict[str, str]]:
        template = re.sub(r"/\d{5,}", "/{id}", path)
        template = re.sub(r"^/invites/[^/]+$", "/invites/{code}", template)
        route = f"{method} {template}"
        if auth != f"Bot {self.token}":
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"message": "400: Bad Request", "code": 50109}, {}
        with self.lock:
            self.log.append((method, template, body, time.time(), path))
            failing = self.failures.get(route)
            if failing:
                _status, retry_after = failing.pop(0)
                return 429, {"message": "You are being rate limited.", "retry_after": retry_after,
                             "global": False, "code": 0}, {
                    "Retry-After": str(max(1, round(retry_after))), "X-RateLimit-Scope": "user",
                    **self._bucket_headers(route, path, consume=False)}
            limit = self._bucket_headers(route, path, consume=True)
        if int(limit["X-RateLimit-Remaining"]) < 0:  # over the bucket: a 429, as Discord would
            wait = float(limit["X-RateLimit-Reset-After"])
            return 429, {"message": "You are being rate limited.", "retry_after": wait, "global": False,
                         "code": 0}, {**limit, "X-RateLimit-Remaining": "0"}
        try:
            with self.lock:
                status, answer = self._answer(method, template, path, body)
        except ApiError as exc:
            return exc.status, {"message": exc.message, "code": exc.code}, limit
        return status, answer, limit

    def _bucket_headers(self, route: str, path: str, *, consume: bool) -> dict[str, str]:
        major = re.match(r"^/(channels|guilds|webhooks)/(\d+)", path)
        bucket = f"{abs(hash(route)) % 10**12:012x}"
        key = f"{bucket}:{major.group(2) if major else ''}"
        now = time.monotonic()
        start, used = self.windows.get(key, (now, 0))
        if now - start >= self.bucket_seconds:
            start, used = now, 0
        if consume:
            used += 1
            self.windows[key] = (start, used)
        reset_after = max(0.0, self.bucket_seconds - (now - start))
        return {"X-RateLimit-Limit": str(self.bucket_limit),
                "X-RateLimit-Remaining": str(self.bucket_limit - used),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}", "X-RateLimit-Bucket": bucket}

    def _guild(self, guild_id: str) -> Guild:
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    def _channel(self, channel_id: str) -> tuple[Guild | None, dict[str, Any]]:
        for guild in self.guilds.values():
            for channel in guild.channels:
                if channel["id"] == channel_id:
                    return guild, channel
        if channel_id in self.dm_channels.values():
            user = next(u for u, c in self.dm_channels.items() if c == channel_id)
            return None, {"id": channel_id, "type": 1, "recipients": [self.people[user].user()]}
        raise ApiError(404, 10003, "Unknown Channel")

    def _answer(self, method: str, template: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        ids = re.findall(r"\d{5,}", path)
        if (method, template) == ("GET", "/users/@me"):
            return 200, {"id": BOT_ID, "username": "qunflow", "discriminator": "0", "avatar": None, "bot": True,
                         "flags": 0, "mfa_enabled": False, "verified": True}
        if (method, template) == ("GET", "/applications/@me"):
            return 200, {"id": APP_ID, "name": "qunflow", "flags": self.app_flags, "bot_public": False}
        if (method, template) == ("GET", "/gateway/bot"):
            return 200, {"url": self.gateway_url, "shards": 1,
                         "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 86_400_000,
                                                 "max_concurrency": 1}}
        if (method, template) == ("GET", "/guilds/{id}"):
            return 200, self._guild(ids[0]).obj()
        if (method, template) == ("GET", "/guilds/{id}/channels"):
            return 200, self._guild(ids[0]).channels
        if (method, template) == ("GET", "/guilds/{id}/members/{id}"):
            guild = self._guild(ids[0])
            if ids[1] != BOT_ID and ids[1] not in guild.members:
                raise ApiError(404, 10007, "Unknown Member")
            roles = [f"{int(guild.id) + 1}"] if ids[1] == BOT_ID else []
            return 200, {"user": {"id": ids[1]}, "roles": roles, "joined_at": iso(time.time())}
        if (method, template) == ("PUT", "/guilds/{id}/members/{id}/roles/{id}"):
            guild = self._guild(ids[0])
            if ids[1] not in guild.members:
                raise ApiError(404, 10007, "Unknown Member")
            role = next((r for r in guild.roles if r["id"] == ids[2]), None)
            if role is None:
                raise ApiError(404, 10011, "Unknown Role")
            if not guild.bot_permissions & (1 << 28) or role["position"] >= 1:
                raise ApiError(403, 50013, "Missing Permissions")
            guild.member_roles.setdefault(ids[1], set()).add(ids[2])
            return 204, None
        if (method, template) == ("POST", "/channels/{id}/invites"):
            guild, channel = self._channel(ids[0])
            if guild is None:
                raise ApiError(400, 50024, "Cannot execute action on this channel type")
            if not guild.bot_permissions & 1:
                raise ApiError(403, 50013, "Missing Permissions")
            invite = Invite(secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")[:8], guild.id,
                            channel["id"], int(body.get("max_uses", 0)), int(body.get("max_age", 86400)), time.time())
            self.invites[invite.code] = invite
            return 200, invite.obj(guild, metadata=True)
        if (method, template) == ("GET", "/guilds/{id}/invites"):
            guild = self._guild(ids[0])
            if not guild.bot_permissions & (1 << 5):
                raise ApiError(403, 50013, "Missing Permissions")
            return 200, [i.obj(guild, metadata=True) for i in self.invites.values() if i.guild_id == guild.id]
        if (method, template) == ("DELETE", "/invites/{code}"):
            code = path.rsplit("/", 1)[-1]
            invite = self.invites.pop(code, None)
            if invite is None:
                raise ApiError(404, 10006, "Unknown Invite")
            return 200, invite.obj(self.guilds[invite.guild_id], metadata=False)
        if (method, template) == ("POST", "/users/@me/channels"):
            user = str(body.get("recipient_id", ""))
            if user not in self.people:
                raise ApiError(400, 50035, "Invalid Form Body")
            channel_id = self.dm_channels.setdefault(user, snowflake())
            return 200, {"id": channel_id, "type": 1, "recipients": [self.people[user].user()]}
        if (method, template) == ("POST", "/channels/{id}/messages"):
            return 200, self._message(ids[0], body)
        raise ApiError(404, 0, "404: Not Found")

    def _message(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        guild, channel = self._channel(channel_id)
        content = str(body.get("content", ""))
        if not content or len(content) > 2000:
            raise ApiError(400, 50035, "Invalid Form Body")
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            raise ApiError(400, 50035, "Invalid Form Body")
        if nonce is not None and body.get("enforce_nonce") and (channel_id, str(nonce)) in self.nonces:
            return self.nonces[(channel_id, str(nonce))]  # the message the first call created
        user = None
        if guild is None:
            user = channel["recipients"][0]["id"]
            if not self.people[user].dms_open:
                raise ApiError(403, 50007, "Cannot send messages to this user")
        message = {"id": snowflake(), "channel_id": channel_id, "content": content, "nonce": nonce,
                   "author": {"id": BOT_ID, "username": "qunflow", "bot": True}, "timestamp": iso(time.time()),
                   "type": 0}
        self.messages.append({**message, "private": guild is None, "user_id": user,
                              "guild_id": guild.id if guild else None})
        if nonce is not None and body.get("enforce_nonce"):
            self.nonces[(channel_id, str(nonce))] = message
        return message
