"""A local Feishu / Lark open platform: the API qunflow calls and the events it sends, as documented.

API (open.feishu.cn/open-apis): auth/v3/tenant_access_token/internal; im/v1/messages (receive_id_type,
`uuid`: one message per uuid within an hour); im/v1/chats/:chat_id (get); im/v1/chats/:chat_id/link;
im/v1/chats/:chat_id/members (add, member_id_type=open_id). Answers are {"code", "msg", "data"}; a scripted
frequency limit is HTTP 429 with code 99991400 and `x-ogw-ratelimit-reset`.

Events (subscription v2): {"schema": "2.0", "header": {...}, "event": {...}}, encrypted with the Encrypt Key
(base64 of iv + AES-256-CBC, key = SHA-256(encrypt_key)) and signed with X-Lark-Signature = sha256(timestamp
+ nonce + encrypt_key + body). Adding members fires im.chat.member.user.added_v1 before the call answers.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from qunflow.connectors.feishu.crypto import FeishuCrypto

TOKEN_LIFETIME = 7200


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class Delivery:
    payload: dict[str, Any]
    status: int
    reply: bytes


@dataclass
class _State:
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    uuids: dict[str, tuple[float, str]] = field(default_factory=dict)  # uuid -> (when, message_id)
    calls: list[Call] = field(default_factory=list)
    limits: dict[str, deque[float]] = field(default_factory=dict)  # path pattern -> reset seconds


def ms(at: datetime) -> str:
    return str(int(at.replace(tzinfo=UTC).timestamp() * 1000))


class FakeFeishu:
    """`with FakeFeishu() as feishu:` then point qunflow's domain at `feishu.api_base`."""

    def __init__(self) -> None:
        self.app_id = "cli_" + secrets.token_hex(8)
        self.app_secret = secrets.token_urlsafe(24)
        self.verification_token = secrets.token_urlsafe(16)
        self.encrypt_key = secrets.token_urlsafe(16)
        self.tenant_key = secrets.token_hex(8)
        self.bot_open_id = "ou_bot" + secrets.token_hex(6)
        self.crypto = FeishuCrypto(self.encrypt_key)
        self.callback_url: str | None = None
        self.state = _State()
        self.deliveries: list[Delivery] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeFeishu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def api_base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- scripting and inspection ---
    def make_chat(self, name: str, *, bot_in: bool = True) -> str:
        chat_id = "oc_" + secrets.token_hex(16)
        with self._lock:
            self.state.chats[chat_id] = {"name": name, "members": {}, "bot_in": bot_in, "links": []}
        return chat_id

    def rate_limit_next(self, path: str, reset: float = 1.0) -> None:
        """The next call to `path` (a regex, e.g. /open-apis/im/v1/messages) answers 429 / 99991400."""
        with self._lock:
            self.state.limits.setdefault(path, deque()).append(reset)

    def expire_tokens(self) -> None:
        with self._lock:
            self.state.tokens = dict.fromkeys(self.state.tokens, 0.0)

    def calls(self, path: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.state.calls if path is None or c.path == path]

    def messages_to(self, receive_id: str) -> list[str]:
        with self._lock:
            return [m["text"] for m in self.state.messages if m["receive_id"] == receive_id]

    def members(self, chat_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self.state.chats[chat_id]["members"])

    # --- events ---
    def envelope(self, event_type: str, event: dict[str, Any], *, event_id: str | None = None,
                 token: str | None = None) -> dict[str, Any]:
        return {"schema": "2.0", "header": {
            "event_id": event_id or secrets.token_hex(16), "event_type": event_type,
            "create_time": ms(datetime.now(UTC).replace(tzinfo=None)),
            "token": self.verification_token if token is None else token, "app_id": self.app_id,
            "tenant_key": self.tenant_key}, "event": event}

    def signed(self, payload: dict[str, Any], *, at: float | None = None) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a POST as Feishu sends it: encrypted and signed."""
        body = json.dumps({"encrypt": self.crypto.encrypt(json.dumps(payload, ensure_ascii=False))}).encode()
        timestamp, nonce = str(int(time.time() if at is None else at)), secrets.token_hex(8)
        return ({"content-type": "application/json", "x-lark-request-timestamp": timestamp,
                 "x-lark-request-nonce": nonce, "x-lark-signature": self.crypto.signature(timestamp, nonce, body)},
                body)

    def deliver(self, payload: dict[str, Any]) -> Delivery:
        if not self.callback_url:
            raise RuntimeError("set FakeFeishu.callback_url to qunflow's event URL first")
        headers, body = self.signed(payload)
        response = httpx.post(self.callback_url, content=body, headers=headers, timeout=10)
        delivery = Delivery(payload, response.status_code, response.content)
        self.deliveries.append(delivery)
        return delivery

    def redeliver_last(self) -> Delivery:
        """Feishu's retry of an event it saw no 200 for in time: the same event_id, signed afresh."""
        return self.deliver(self.deliveries[-1].payload)

    def verify_url(self) -> Delivery:
        """The URL check on saving the request URL: encrypted, not signed; the reply must echo the challenge."""
        challenge = secrets.token_hex(8)
        body = json.dumps({"encrypt": self.crypto.encrypt(json.dumps(
            {"challenge": challenge, "token": self.verification_token, "type": "url_verification"}))}).encode()
        response = httpx.post(str(self.callback_url), content=body, headers={"content-type": "application/json"})
        return Delivery({"challenge": challenge}, response.status_code, response.content)

    @staticmethod
    def _user(open_id: str) -> dict[str, str]:
        return {"union_id": "on_" + open_id[3:], "user_id": open_id[3:11], "open_id": open_id}

    def _member_event(self, chat_id: str, open_id: str, name: str, operator: str) -> dict[str, Any]:
        return {"chat_id": chat_id, "operator_id": self._user(operator), "external": False,
                "operator_tenant_key": self.tenant_key, "name": self.state.chats[chat_id]["name"],
                "i18n_names": {}, "users": [{"name": name, "tenant_key": self.tenant_key,
                                             "user_id": self._user(open_id)}]}

    def join_by_link(self, open_id: str, name: str, chat_id: str) -> Delivery:
        """A person opens the group's share link and joins: the event names no link."""
        with self._lock:
            self.state.chats[chat_id]["members"][open_id] = name
        return self.deliver(self.envelope("im.chat.member.user.added_v1",
                                          self._member_event(chat_id, open_id, name, open_id)))

    def leave(self, open_id: str, chat_id: str) -> Delivery:
        with self._lock:
            name = self.state.chats[chat_id]["members"].pop(open_id, "")
        return self.deliver(self.envelope("im.chat.member.user.deleted_v1",
                                          self._member_event(chat_id, open_id, name, open_id)))

    def message_event(self, open_id: str, text: str, *, chat_id: str | None = None) -> dict[str, Any]:
        """im.message.receive_v1 for a text message: to the bot (p2p) or in a group (`chat_id`)."""
        now = ms(datetime.now(UTC).replace(tzinfo=None))
        return self.envelope("im.message.receive_v1", {
            "sender": {"sender_id": self._user(open_id), "sender_type": "user", "tenant_key": self.tenant_key},
            "message": {"message_id": "om_" + secrets.token_hex(16), "root_id": "", "parent_id": "",
                        "create_time": now, "update_time": now,
                        "chat_id": chat_id or "oc_p2p" + open_id[3:], "chat_type": "group" if chat_id else "p2p",
                        "message_type": "text", "content": json.dumps({"text": text}, ensure_ascii=False),
                        "mentions": []}})

    def send_text(self, open_id: str, text: str, *, chat_id: str | None = None) -> Delivery:
        return self.deliver(self.message_event(open_id, text, chat_id=chat_id))

    # --- the API ---
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                auth = self.headers.get("authorization", "")
                status, headers, result, after = fake._dispatch(self.command, parts.path, dict(parse_qsl(parts.query)),
                                                                body, auth.removeprefix("Bearer "))
                if after is not None:  # Feishu's event for this change goes out before the call answers
                    after()
                data = json.dumps(result, ensure_ascii=False).encode()
                self.send_response(status)
                for name, value in {"content-type": "application/json; charset=utf-8", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's API

        return Handler

    def _dispatch(self, method: str, path: str, params: dict[str, str], body: dict[str, Any] | None,
                  token: str) -> tuple[int, dict[str, str], dict[str, Any], Any]:
        with self._lock:
            self.state.calls.append(Call(method, path, params, body))
            for pattern, queued in self.state.limits.items():
                if queued and re.fullmatch(pattern, path):
                    reset = queued.popleft()
                    return (429, {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": str(reset)},
                            {"code": 99991400, "msg": "request trigger frequency limit"}, None)
            if path == "/open-apis/auth/v3/tenant_access_token/internal":
                return (200, {}, self._token(body or {}), None)
            expires = self.state.tokens.get(token)
            if expires is None or time.monotonic() >= expires:
                return (200, {}, {"code": 99991663, "msg": "Invalid access token for authorization."}, None)
            after = None
            try:
                if path == "/open-apis/im/v1/messages" and method == "POST":
                    data = self._send(params, body or {})
                elif (match := re.fullmatch(r"/open-apis/im/v1/chats/([^/]+)(/link|/members)?", path)):
                    chat = self.state.chats.get(match.group(1))
                    if chat is None or not chat["bot_in"]:
                        raise _Refused(232011, "Operator and chat can NOT be in different tenants, or the bot is "
                                       "not in the chat.")
                    if match.group(2) == "/link":
                        data = self._link(chat, body or {})
                    elif match.group(2) == "/members" and method == "DELETE":
                        data, after = self._remove(match.group(1), params, body or {})
                    elif match.group(2) == "/members":
                        data, after = self._add(match.group(1), params, body or {})
                    else:
                        data = {"name": chat["name"], "chat_mode": "group", "chat_status": "normal",
                                "user_count": str(len(chat["members"]))}
                else:
                    raise _Refused(404, f"fake has no {method} {path}")
            except _Refused as refused:
                return (400, {}, {"code": refused.code, "msg": refused.msg}, None)
            return (200, {}, {"code": 0, "msg": "success", "data": data}, after)

    def _token(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            return {"code": 10014, "msg": "app secret invalid"}
        token = "t-" + secrets.token_hex(16)
        self.state.tokens[token] = time.monotonic() + TOKEN_LIFETIME
        return {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": TOKEN_LIFETIME}

    def _send(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        kind = params.get("receive_id_type")
        if kind not in ("open_id", "chat_id", "user_id", "union_id", "email"):
            raise _Refused(99992402, "field validation failed: receive_id_type")
        if body.get("msg_type") != "text":
            raise _Refused(230001, "fake sends text only")
        uuid = body.get("uuid")
        if uuid is not None and len(str(uuid)) > 50:
            raise _Refused(99992402, "field validation failed: uuid is at most 50 characters")
        if uuid and uuid in self.state.uuids and time.monotonic() - self.state.uuids[uuid][0] < 3600:
            return {"message_id": self.state.uuids[uuid][1]}  # the same request again: no second message
        if kind == "chat_id" and body.get("receive_id") not in self.state.chats:
            raise _Refused(230002, "Bot/User can NOT be out of the chat.")
        message_id = "om_" + secrets.token_hex(16)
        text = json.loads(body["content"])["text"]
        self.state.messages.append({"message_id": message_id, "receive_id": body.get("receive_id"), "text": text})
        if uuid:
            self.state.uuids[uuid] = (time.monotonic(), message_id)
        return {"message_id": message_id, "msg_type": "text", "chat_id": body.get("receive_id")}

    def _link(self, chat: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        validity = body.get("validity_period", "week")
        if validity not in ("week", "year", "permanently"):
            raise _Refused(99992402, "field validation failed: validity_period")
        link = "https://applink.feishu.cn/client/chat/chatter/add_by_link?link_token=" + secrets.token_hex(12)
        chat["links"].append(link)
        expire = {"week": 7 * 86400, "year": 365 * 86400}.get(validity)
        return {"share_link": link, "is_permanent": validity == "permanently",
                "expire_time": str(int(time.time()) + expire) if expire else None}

    def _add(self, chat_id: str, params: dict[str, str], body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        if params.get("member_id_type", "open_id") != "open_id":
            raise _Refused(99992402, "fake adds by open_id only")
        ids = [str(i) for i in body.get("id_list") or []]
        members = self.state.chats[chat_id]["members"]
        new = [i for i in ids if i not in members]
        for open_id in new:
            members[open_id] = "用户" + open_id[-4:]

        def announce() -> None:
            for open_id in new:
                self.deliver(self.envelope("im.chat.member.user.added_v1",
                                           self._member_event(chat_id, open_id, members[open_id], self.bot_open_id)))

        return {"invalid_id_list": [], "not_existed_id_list": [], "pending_approval_id_list": []}, announce


    def _remove(self, chat_id: str, params: dict[str, str], body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Removing members: the bot must own or manage the group (`bot_admin`), as Feishu's page says."""
        if params.get("member_id_type", "open_id") != "open_id":
            raise _Refused(99992402, "fake removes by open_id only")
        chat = self.state.chats[chat_id]
        if not chat.get("bot_admin", True):
            raise _Refused(232017, "The operator is not the group owner or an admin.")
        ids = [str(i) for i in body.get("id_list") or []]
        gone = [(i, chat["members"].pop(i)) for i in ids if i in chat["members"]]

        def announce() -> None:
            for open_id, name in gone:
                self.deliver(self.envelope("im.chat.member.user.deleted_v1",
                                           self._member_event(chat_id, open_id, name, self.bot_open_id)))

        return {"invalid_id_list": [i for i in ids if i not in dict(gone)]}, announce


class _Refused(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
