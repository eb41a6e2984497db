"""FakeWeCom: a local WeCom API server speaking the documented JSON, and WeCom's side of the callbacks.

A real HTTP server on 127.0.0.1 (stdlib, a daemon thread). It answers gettoken, 联系我 (92572), 加入群聊
(92229), send_welcome_msg (92137), groupchat/get (92707), externalcontact/get, add_msg_template (92135)
and get_groupmsg_send_result, 入群欢迎语素材 group_welcome_template/add|edit|get|del (92366: at least one
part, else 40063; text at most 3,000 bytes, else 45002; an unknown template_id 40058 and a full library of
100 also 40058, codes the page does not list and are assumed), judging tokens like WeCom (40014 unknown,
42001 expired). Its simulators
make WeCom's callbacks to `callback_url`, encrypted and signed as WeCom does (91144), so a test drives
the whole path: a person adds a staff member, joins a group, leaves it; a callback is redelivered.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from qunflow.connectors.wecom.crypto import WeComCrypto

Clock = Callable[[], datetime]
WELCOME_WINDOW = timedelta(seconds=20)
TOKEN_LIFETIME = 7200


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _epoch(at: datetime) -> int:
    return int((at - datetime(1970, 1, 1)).total_seconds())


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]  # without access_token / corpsecret
    body: dict[str, Any] | None


@dataclass
class Delivery:
    xml: str
    status: int = 0
    reply: bytes = b""


@dataclass
class _State:
    tokens: dict[str, datetime] = field(default_factory=dict)
    failures: dict[str, deque[tuple[int, str]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)  # time.monotonic() of each call, as `calls`
    contact_ways: dict[str, dict[str, Any]] = field(default_factory=dict)
    join_ways: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcome_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcomes: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcome_templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # 入群欢迎语素材 by template_id


class FakeWeCom:
    """`with FakeWeCom() as wecom:` then point qunflow's api_base at `wecom.api_base`."""

    def __init__(self, *, staff: tuple[str, ...] = ("zhangsan", "lisi"), clock: Clock = utc_now) -> None:
        self.corp_id = "ww" + secrets.token_hex(8)
        self.secret = secrets.token_urlsafe(32)
        self.token = secrets.token_urlsafe(16)
        self.aes_key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
        self.staff = list(staff)
        self.clock = clock
        self.callback_url: str | None = None
        # None: each callback is a one-off httpx.get/post (builds a client, ~tens of ms of CPU). A benchmark
        # driving 100 callbacks/s sets an httpx.Client here so that cost is not charged to the system under test.
        self.callback_client: httpx.Client | None = None
        self.crypto = WeComCrypto(self.token, self.aes_key, self.corp_id)
        self.state = _State()
        self.deliveries: list[Delivery] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle ---
    def __enter__(self) -> FakeWeCom:
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
    def fail_next(self, path: str, errcode: int, errmsg: str = "scripted failure") -> None:
        """The next call to `path` (e.g. /cgi-bin/externalcontact/send_welcome_msg) answers this errcode."""
        with self._lock:
            self.state.failures.setdefault(path, deque()).append((errcode, errmsg))

    def expire_tokens(self) -> None:
        """Every access token handed out so far answers 42001 from now on."""
        with self._lock:
            past = self.clock() - timedelta(seconds=1)
            self.state.tokens = dict.fromkeys(self.state.tokens, past)

    def calls(self, path: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.state.calls if path is None or c.path == path]

    def timed_calls(self, path: str | None = None) -> list[tuple[Call, float]]:
        """`calls()` with the time.monotonic() at which each arrived (benchmarks time the path with it)."""
        with self._lock:
            return [(c, at) for c, at in zip(self.state.calls, self.state.call_times, strict=True)
                    if path is None or c.path == path]

    def welcome_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.state.welcomes)

    def templates(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.state.templates)

    def welcome_templates(self) -> dict[str, dict[str, Any]]:
        """The group welcome templates (入群欢迎语素材) by template_id."""
        with self._lock:
            return {k: dict(v) for k, v in self.state.welcome_templates.items()}

    def delete_welcome_template(self, template_id: str) -> None:
        """An admin deletes a template in the admin console."""
        with self._lock:
            del self.state.welcome_templates[template_id]

    def confirm_template(self, msgid: str) -> None:
        """Staff pressed send: every target of the task is marked sent (status 1)."""
        with self._lock:
            task = self.state.templates[msgid]
            for row in task["send_list"]:
                row["status"], row["send_time"] = 1, _epoch(self.clock())

    # --- groups and contacts ---
    def make_group(self, owner: str, name: str) -> str:
        chat_id = "wr" + secrets.token_hex(12)
        with self._lock:
            self.state.groups[chat_id] = {
                "chat_id": chat_id, "name": name, "owner": owner, "create_time": _epoch(self.clock()),
                "notice": "", "admin_list": [],
                "member_list": [{"userid": owner, "type": 1, "join_time": _epoch(self.clock()), "join_scene": 1,
                                 "name": owner}],
            }
        return chat_id

    def group(self, chat_id: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.state.groups[chat_id]))

    # --- WeCom calling qunflow ---
    def _deliver(self, xml: str, *, method: str = "POST") -> Delivery:
        if not self.callback_url:
            raise RuntimeError("set FakeWeCom.callback_url to qunflow's callback URL first")
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        encrypted, signature = self.crypto.encrypt(xml, timestamp, nonce)
        query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        http: Any = self.callback_client or httpx
        if method == "GET":
            response = http.get(self.callback_url, params={**query, "echostr": encrypted}, timeout=5)
        else:
            body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                    f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>")
            response = http.post(self.callback_url, params=query, content=body.encode(), timeout=5)
        delivery = Delivery(xml, response.status_code, response.content)
        if method == "POST":
            self.deliveries.append(delivery)
        return delivery

    def verify_url(self) -> Delivery:
        """The GET WeCom sends when the admin saves the callback URL; `.reply` must be the echo."""
        echo = str(secrets.randbelow(10**19))
        delivery = self._deliver(echo, method="GET")
        delivery.xml = echo
        return delivery

    def redeliver_last(self) -> Delivery:
        """WeCom's retry of the last event callback (no answer in 5 s): same XML, new encryption."""
        return self._deliver(self.deliveries[-1].xml)

    def add_contact(self, external_userid: str, name: str, config_id: str) -> str:
        """A person scans a 联系我 code and adds its staff member; returns the WelcomeCode sent."""
        with self._lock:
            way = self.state.contact_ways[config_id]
            staff = way["user"][0]
            code = "WC" + secrets.token_urlsafe(12)
            now = self.clock()
            self.state.contacts[external_userid] = {"external_userid": external_userid, "name": name, "type": 1,
                                                    "follow_user": [{"userid": staff, "state": way["state"],
                                                                     "createtime": _epoch(now)}]}
            self.state.welcome_codes[code] = {"issued": now, "used": False, "external_userid": external_userid}
        self._deliver(_event_xml(self.corp_id, now, "change_external_contact", "add_external_contact",
                                 UserID=staff, ExternalUserID=external_userid, State=way["state"],
                                 WelcomeCode=code))
        return code

    def join_group(self, external_userid: str, name: str, chat_id: str, state: str | None = None) -> Delivery:
        """A person scans a join code (join_scene 3) and WeCom reports add_member."""
        now = self.clock()
        with self._lock:
            member: dict[str, Any] = {"userid": external_userid, "type": 2, "join_time": _epoch(now),
                                      "join_scene": 3, "name": name, "group_nickname": ""}
            if state:
                member["state"] = state
            members = self.state.groups[chat_id]["member_list"]
            members[:] = [m for m in members if m["userid"] != external_userid] + [member]
        return self._deliver(_event_xml(self.corp_id, now, "change_external_chat", "update", ChatId=chat_id,
                                        UpdateDetail="add_member", JoinScene="3", QuitScene="0",
                                        MemChangeCnt="1", MemChangeList=[external_userid]))

    def leave_group(self, external_userid: str, chat_id: str) -> Delivery:
        now = self.clock()
        with self._lock:
            members = self.state.groups[chat_id]["member_list"]
            members[:] = [m for m in members if m["userid"] != external_userid]
        return self._deliver(_event_xml(self.corp_id, now, "change_external_chat", "update", ChatId=chat_id,
                                        UpdateDetail="del_member", JoinScene="0", QuitScene="0",
                                        MemChangeCnt="1", MemChangeList=[external_userid]))

    # --- the API ---
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as qyapi.weixin.qq.com does
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                result = fake._dispatch(self.command, parts.path, params, body)
                data = json.dumps(result, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

        return Handler

    def _dispatch(self, method: str, path: str, params: dict[str, str], body: dict[str, Any] | None) -> dict[str, Any]:
        with self._lock:
            shown = {k: v for k, v in params.items() if k not in ("access_token", "corpsecret")}
            self.state.calls.append(Call(method, path, shown, body))
            self.state.call_times.append(time.monotonic())
            queued = self.state.failures.get(path)
            if queued:
                errcode, errmsg = queued.popleft()
                return {"errcode": errcode, "errmsg": errmsg}
            if path == "/cgi-bin/gettoken":
                return self._gettoken(params)
            expires = self.state.tokens.get(params.get("access_token", ""))
            if expires is None:
                return {"errcode": 40014, "errmsg": "invalid access_token"}
            if self.clock() >= expires:
                return {"errcode": 42001, "errmsg": "access_token expired"}
            handler = _ROUTES.get(path)
            if handler is None:
                return {"errcode": 404, "errmsg": f"fake has no {path}"}
            try:
                return {"errcode": 0, "errmsg": "ok", **handler(self, params, body or {})}
            except _Refused as refused:
                return {"errcode": refused.errcode, "errmsg": refused.errmsg}

    def _gettoken(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("corpid") != self.corp_id:
            return {"errcode": 40013, "errmsg": "invalid corpid"}
        if params.get("corpsecret") != self.secret:
            return {"errcode": 40001, "errmsg": "invalid credential"}
        token = secrets.token_urlsafe(24)
        self.state.tokens[token] = self.clock() + timedelta(seconds=TOKEN_LIFETIME)
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": TOKEN_LIFETIME}

    def _add_contact_way(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        state = str(body.get("state", ""))
        if len(state) > 30:
            raise _Refused(40058, "state exceeds 30 characters")
        users = list(body.get("user", []))
        if not users or any(u not in self.staff for u in users):
            raise _Refused(40098, "user not in the 客户联系 range")
        config_id = secrets.token_hex(16)
        qr = f"https://wework.qpic.cn/wwpic/{config_id}/0"
        self.state.contact_ways[config_id] = {**body, "config_id": config_id, "qr_code": qr}
        return {"config_id": config_id, "qr_code": qr}

    def _get_contact_way(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        way = self.state.contact_ways.get(str(body.get("config_id")))
        if way is None:
            raise _Refused(41044, "invalid config_id")
        return {"contact_way": way}

    def _del_contact_way(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if self.state.contact_ways.pop(str(body.get("config_id")), None) is None:
            raise _Refused(41044, "invalid config_id")
        return {}

    def _add_join_way(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        chats = list(body.get("chat_id_list", []))
        if not 1 <= len(chats) <= 5 or any(c not in self.state.groups for c in chats):
            raise _Refused(40050, "invalid chat_id_list")
        if len(str(body.get("state", ""))) > 30:
            raise _Refused(40058, "state exceeds 30 characters")
        config_id = secrets.token_hex(16)
        self.state.join_ways[config_id] = {"config_id": config_id, "scene": body.get("scene", 2),
                                           "remark": body.get("remark", ""),
                                           "auto_create_room": body.get("auto_create_room", 1),
                                           "chat_id_list": chats, "state": body.get("state", ""),
                                           "qr_code": f"https://wework.qpic.cn/wwpic/join/{config_id}/0"}
        return {"config_id": config_id}  # no QR here: it comes from get_join_way

    def _get_join_way(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        way = self.state.join_ways.get(str(body.get("config_id")))
        if way is None:
            raise _Refused(41044, "invalid config_id")
        return {"join_way": way}

    def _del_join_way(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if self.state.join_ways.pop(str(body.get("config_id")), None) is None:
            raise _Refused(41044, "invalid config_id")
        return {}

    def _send_welcome_msg(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        code = self.state.welcome_codes.get(str(body.get("welcome_code")))
        if code is None or code["used"] or self.clock() - code["issued"] > WELCOME_WINDOW:
            raise _Refused(41051, "externaluser has started chatting")
        code["used"] = True
        self.state.welcomes.append({"external_userid": code["external_userid"],
                                    "text": (body.get("text") or {}).get("content", ""),
                                    "attachments": body.get("attachments", [])})
        return {}

    def _groupchat_get(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        chat = self.state.groups.get(str(body.get("chat_id")))
        if chat is None:
            raise _Refused(40050, "invalid chatid")
        shown = json.loads(json.dumps(chat))
        if not body.get("need_name"):
            for member in shown["member_list"]:
                member.pop("name", None)
        return {"group_chat": shown}

    def _external_contact_get(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        contact = self.state.contacts.get(params.get("external_userid", ""))
        if contact is None:
            raise _Refused(84061, "not external contact")
        follow = contact["follow_user"]
        return {"external_contact": {k: v for k, v in contact.items() if k != "follow_user"}, "follow_user": follow}

    def _follow_users(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        return {"follow_user": list(self.staff)}

    def _add_msg_template(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        chat_type = body.get("chat_type", "single")
        msgid = "msg" + secrets.token_hex(10)
        if chat_type == "group":
            sender = body.get("sender")
            if not sender:
                raise _Refused(41048, "sender is required for chat_type group")
            chats = [c for c in body.get("chat_id_list", []) if self.state.groups.get(c, {}).get("owner") == sender]
            rows = [{"chat_id": c, "userid": sender, "status": 0} for c in chats]
            fail: list[str] = []
        else:
            targets = list(body.get("external_userid", []))
            fail = [t for t in targets if t not in self.state.contacts]
            rows = [{"external_userid": t, "userid": self.state.contacts[t]["follow_user"][0]["userid"],
                     "status": 0} for t in targets if t in self.state.contacts]
        self.state.templates[msgid] = {"request": body, "send_list": rows}
        return {"msgid": msgid, "fail_list": fail}

    def _groupmsg_send_result(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        task = self.state.templates.get(str(body.get("msgid")))
        if task is None:
            raise _Refused(41063, "invalid msgid")
        rows = [dict(r) for r in task["send_list"] if r["userid"] == body.get("userid")]
        return {"send_list": rows, "next_cursor": ""}

    # --- 入群欢迎语素材 (document/path/92366) ---
    def _welcome_template_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The message parts of an add/edit: at least one; text.content at most 3000 bytes."""
        parts = {k: body[k] for k in WELCOME_PARTS if body.get(k)}
        if "text" in parts and not str(parts["text"].get("content") or ""):
            del parts["text"]
        if not parts:  # "text、image、link、miniprogram、file、video不能全部为空"
            raise _Refused(40063, "some parameters are empty")
        if len(str(parts.get("text", {}).get("content") or "").encode("utf-8")) > 3000:
            raise _Refused(45002, "content size out of limit")
        return parts

    def _existing_template(self, body: dict[str, Any]) -> dict[str, Any]:
        found = self.state.welcome_templates.get(str(body.get("template_id") or ""))
        if found is None:
            raise _Refused(40058, "invalid template_id")
        return found

    def _welcome_template_add(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if len(self.state.welcome_templates) >= 100:  # "每个企业的入群欢迎语素材库中,最多容纳100个素材"
            raise _Refused(40058, "the group welcome template library is full (100)")
        template_id = "msg" + secrets.token_hex(12)
        self.state.welcome_templates[template_id] = {**self._welcome_template_body(body),
                                                     "notify": int(body.get("notify", 1))}
        return {"template_id": template_id}

    def _welcome_template_edit(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        template = self._existing_template(body)
        parts = self._welcome_template_body(body)
        for name in WELCOME_PARTS:
            template.pop(name, None)
        template.update(parts)
        return {}

    def _welcome_template_get(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        template = self._existing_template(body)
        return {k: v for k, v in template.items() if k in WELCOME_PARTS}

    def _welcome_template_del(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self._existing_template(body)
        del self.state.welcome_templates[str(body["template_id"])]
        return {}


WELCOME_PARTS = ("text", "image", "link", "miniprogram", "file", "video")


class _Refused(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg = errcode, errmsg


Route = Callable[[FakeWeCom, dict[str, str], dict[str, Any]], dict[str, Any]]
_ROUTES: dict[str, Route] = {
    "/cgi-bin/externalcontact/add_contact_way": FakeWeCom._add_contact_way,
    "/cgi-bin/externalcontact/get_contact_way": FakeWeCom._get_contact_way,
    "/cgi-bin/externalcontact/del_contact_way": FakeWeCom._del_contact_way,
    "/cgi-bin/externalcontact/groupchat/add_join_way": FakeWeCom._add_join_way,
    "/cgi-bin/externalcontact/groupchat/get_join_way": FakeWeCom._get_join_way,
    "/cgi-bin/externalcontact/groupchat/del_join_way": FakeWeCom._del_join_way,
    "/cgi-bin/externalcontact/send_welcome_msg": FakeWeCom._send_welcome_msg,
    "/cgi-bin/externalcontact/groupchat/get": FakeWeCom._groupchat_get,
    "/cgi-bin/externalcontact/get": FakeWeCom._external_contact_get,
    "/cgi-bin/externalcontact/get_follow_user_list": FakeWeCom._follow_users,
    "/cgi-bin/externalcontact/add_msg_template": FakeWeCom._add_msg_template,
    "/cgi-bin/externalcontact/get_groupmsg_send_result": FakeWeCom._groupmsg_send_result,
    "/cgi-bin/externalcontact/group_welcome_template/add": FakeWeCom._welcome_template_add,
    "/cgi-bin/externalcontact/group_welcome_template/edit": FakeWeCom._welcome_template_edit,
    "/cgi-bin/externalcontact/group_welcome_template/get": FakeWeCom._welcome_template_get,
    "/cgi-bin/externalcontact/group_welcome_template/del": FakeWeCom._welcome_template_del,
}


def _event_xml(corp_id: str, at: datetime, event: str, change_type: str, **fields: str | list[str]) -> str:
    """An event as WeCom's callback plaintext (document/path/92130 for self-built apps)."""
    parts = [f"<ToUserName><![CDATA[{corp_id}]]></ToUserName>", "<FromUserName><![CDATA[sys]]></FromUserName>",
             f"<CreateTime>{_epoch(at)}</CreateTime>", "<MsgType><![CDATA[event]]></MsgType>",
             f"<Event><![CDATA[{event}]]></Event>", f"<ChangeType><![CDATA[{change_type}]]></ChangeType>"]
    for tag, value in fields.items():
        if isinstance(value, list):
            items = "".join(f"<Item><![CDATA[{v}]]></Item>" for v in value)
            parts.append(f"<{tag}>{items}</{tag}>")
        elif tag in ("JoinScene", "QuitScene", "MemChangeCnt"):
            parts.append(f"<{tag}>{value}</{tag}>")
        else:
            parts.append(f"<{tag}><![CDATA[{value}]]></{tag}>")
    return "<xml>" + "".join(parts) + "</xml>"
