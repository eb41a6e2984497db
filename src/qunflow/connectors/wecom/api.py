"""The WeCom server API calls qunflow makes (客户联系 and 客户群), with the access token handled here.

The token comes from gettoken and is cached until shortly before `expires_in`; a call answered with a
token errcode (40014 invalid, 42001 expired) refreshes it and is repeated once. Errors are judged on
`errcode`, never on `errmsg` (document/path/90455). The secret and the token ride in query strings, so
they never go into an error message, and httpx's request log line is redacted (see `_RedactTokens`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from qunflow.errors import PlatformError, RateLimited, Unauthorized, Unreachable

Clock = Callable[[], datetime]

TOKEN_ERRCODES = frozenset({40014, 42001})  # 不合法的access_token, access_token已过期
CREDENTIAL_ERRCODES = {40001: "the secret", 40013: "the corp id", 40091: "the secret"}
CREDENTIAL_ZH = {40001: "Secret", 40013: "企业 ID(corp id)", 40091: "Secret"}
# 45009: 接口调用超过限制 (per-minute/per-hour quotas) -> wait a minute; 45033: 接口并发调用超过限制 -> 1 s.
RATE_LIMIT_ERRCODES = {45009: 60.0, 45033: 1.0}
# send_welcome_msg (document/path/92137): only within 20 s of the event and once; a late or repeated
# call, or one after another app used the code, fails with 41051.
WELCOME_CLOSED_ERRCODES = frozenset({41051})
PERMISSION_ERRCODES = frozenset({48002, 60011})  # API接口无权限调用; no privilege to access
TOKEN_MARGIN = timedelta(minutes=5)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class WeComApiError(PlatformError):
    """WeCom answered with a non-zero errcode (kept for callers that map codes to fixes)."""

    def __init__(self, message: str, errcode: int, errmsg: str, *, zh: str | None = None) -> None:
        super().__init__(message, zh=zh)
        self.errcode = errcode
        self.errmsg = errmsg


class _RedactTokens(logging.Filter):
    """httpx logs every request URL at INFO; ours carry access_token / corpsecret in the query."""

    pattern = re.compile(r"(access_token|corpsecret)=[^&\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(self.pattern.sub(r"\1=***", str(a)) if isinstance(a, str | httpx.URL) else a
                                for a in args)
        if isinstance(record.msg, str):
            record.msg = self.pattern.sub(r"\1=***", record.msg)
        return True


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in target.filters):
            target.addFilter(_RedactTokens())


_install_redaction()


class WeComApi:
    """One corp's API client. Thread-safe token cache; every call returns the decoded JSON body."""

    def __init__(self, corp_id: str, secret: str, api_base: str = "https://qyapi.weixin.qq.com",
                 clock: Clock = utc_now, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self.api_base = api_base.rstrip("/")
        self.clock = clock
        self._client = httpx.Client(base_url=self.api_base, timeout=timeout, transport=transport)
        self._token: str | None = None
        self._token_until: datetime = datetime.min
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WeComApi(corp_id={self.corp_id!r}, api_base={self.api_base!r})"

    def close(self) -> None:
        self._client.close()

    # --- token ---
    def get_token(self, *, force: bool = False) -> str:
        """The cached access token, fetched again when it is near its expiry or `force`."""
        with self._lock:
            if force or self._token is None or self.clock() >= self._token_until:
                body = self._request("GET", "/cgi-bin/gettoken",
                                     params={"corpid": self.corp_id, "corpsecret": self._secret})
                self._check(body, "/cgi-bin/gettoken")
                expires_in = int(body.get("expires_in", 7200))
                margin = min(TOKEN_MARGIN, timedelta(seconds=expires_in / 10))
                self._token = str(body["access_token"])
                self._token_until = self.clock() + timedelta(seconds=expires_in) - margin
            return self._token

    def _drop_token(self, stale: str) -> None:
        with self._lock:
            if self._token == stale:
                self._token = None

    # --- transport ---
    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 json: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, params=params, json=json)
        except httpx.TimeoutException:
            raise PlatformError(f"wecom {path}: no answer from {self.api_base} in time; retry later",
                                zh=f"企业微信接口 {path}:{self.api_base} 未及时应答,请稍后重试") from None
        except httpx.HTTPError as exc:
            raise PlatformError(f"wecom {path}: cannot reach {self.api_base} ({type(exc).__name__}); "
                                "check api_base and the network",
                                zh=f"企业微信接口 {path}:连不上 {self.api_base}({type(exc).__name__}),"
                                   "请检查 api_base 和网络") from None
        if response.status_code >= 400:
            raise PlatformError(f"wecom {path}: HTTP {response.status_code} from {self.api_base}",
                                zh=f"企业微信接口 {path}:{self.api_base} 返回 HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise PlatformError(f"wecom {path}: the answer is not JSON",
                                zh=f"企业微信接口 {path}:应答不是 JSON") from None
        if not isinstance(body, dict):
            raise PlatformError(f"wecom {path}: the answer is not a JSON object",
                                zh=f"企业微信接口 {path}:应答不是 JSON 对象")
        return body

    def _check(self, body: dict[str, Any], path: str) -> dict[str, Any]:
        code = int(body.get("errcode", 0) or 0)
        if code == 0:
            return body
        errmsg = str(body.get("errmsg", ""))[:200]
        where = f"wecom {path}: errcode {code} ({errmsg})"
        where_zh = f"企业微信接口 {path} 返回错误码 {code}({errmsg})"
        if code in CREDENTIAL_ERRCODES:
            raise Unauthorized(f"{where}: WeCom refused {CREDENTIAL_ERRCODES[code]}; use the corp id from "
                               "我的企业 and the 客户联系 secret (客户联系 → API → Secret)",
                               zh=f"{where_zh}:企业微信不认可该{CREDENTIAL_ZH[code]};请使用「我的企业」里的企业 ID "
                                  "和客户联系的 Secret(客户联系 → API → Secret)")
        if code in RATE_LIMIT_ERRCODES:
            raise RateLimited(where, retry_after=RATE_LIMIT_ERRCODES[code],
                              zh=f"{where_zh}:调用过于频繁,{RATE_LIMIT_ERRCODES[code]:g} 秒后重试")
        if code in WELCOME_CLOSED_ERRCODES:
            raise Unreachable(f"{where}: the welcome window closed (the code is used, older than 20 s, "
                              "or the person already chatted)",
                              zh=f"{where_zh}:欢迎语的发送时机已过(欢迎码已用过、已超过 20 秒,或对方已经发过消息)")
        raise WeComApiError(where, code, errmsg, zh=where_zh)

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             json: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call with the token; a token errcode refreshes it and repeats the call once."""
        for attempt in range(2):
            token = self.get_token()
            body = self._request(method, path, params={**(params or {}), "access_token": token}, json=json)
            code = int(body.get("errcode", 0) or 0)
            if code in TOKEN_ERRCODES and attempt == 0:
                self._drop_token(token)
                continue
            return self._check(body, path)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- 客户联系「联系我」 (document/path/92572) ---
    def add_contact_way(self, *, users: list[str], state: str, remark: str = "",
                        skip_verify: bool = True) -> dict[str, Any]:
        """A QR code (scene 2) that adds one of `users`; returns {config_id, qr_code}."""
        body = {"type": 1 if len(users) == 1 else 2, "scene": 2, "skip_verify": skip_verify,
                "state": state, "user": users}
        if remark:
            body["remark"] = remark[:30]
        return self.call("POST", "/cgi-bin/externalcontact/add_contact_way", json=body)

    def get_contact_way(self, config_id: str) -> dict[str, Any]:
        return self.call("POST", "/cgi-bin/externalcontact/get_contact_way",
                         json={"config_id": config_id})["contact_way"]

    def del_contact_way(self, config_id: str) -> None:
        self.call("POST", "/cgi-bin/externalcontact/del_contact_way", json={"config_id": config_id})

    # --- 客户群「加入群聊」 (document/path/92229) ---
    def add_join_way(self, *, chat_ids: list[str], state: str, remark: str = "",
                     auto_create_room: bool = True, room_base_name: str = "",
                     room_base_id: int | None = None) -> str:
        """A join way into up to 5 customer groups; returns its config_id (the QR is in get_join_way)."""
        body: dict[str, Any] = {"scene": 2, "chat_id_list": chat_ids, "state": state,
                                "auto_create_room": 1 if auto_create_room else 0}
        if remark:
            body["remark"] = remark[:30]
        if auto_create_room and room_base_name:
            body["room_base_name"] = room_base_name
            body["room_base_id"] = room_base_id or 1
        return str(self.call("POST", "/cgi-bin/externalcontact/groupchat/add_join_way", json=body)["config_id"])

    def get_join_way(self, config_id: str) -> dict[str, Any]:
        return self.call("POST", "/cgi-bin/externalcontact/groupchat/get_join_way",
                         json={"config_id": config_id})["join_way"]

    def del_join_way(self, config_id: str) -> None:
        self.call("POST", "/cgi-bin/externalcontact/groupchat/del_join_way", json={"config_id": config_id})

    # --- messages (92137 welcome, 92135 mass-send task) ---
    def send_welcome_msg(self, welcome_code: str, text: str) -> None:
        """The welcome: once, within 20 s of the add_external_contact event; else Unreachable."""
        self.call("POST", "/cgi-bin/externalcontact/send_welcome_msg",
                  json={"welcome_code": welcome_code, "text": {"content": text}})

    def add_msg_template(self, *, text: str, chat_type: str = "single", external_userids: list[str] | None = None,
                         chat_ids: list[str] | None = None, sender: str | None = None) -> dict[str, Any]:
        """A mass-send task staff confirm in their client; returns {msgid, fail_list}."""
        body: dict[str, Any] = {"chat_type": chat_type, "text": {"content": text}}
        if external_userids:
            body["external_userid"] = external_userids
        if chat_ids:
            body["chat_id_list"] = chat_ids
        if sender:
            body["sender"] = sender
        return self.call("POST", "/cgi-bin/externalcontact/add_msg_template", json=body)

    def get_groupmsg_send_result(self, msgid: str, userid: str, *, cursor: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"msgid": msgid, "userid": userid, "limit": 1000}
        if cursor:
            body["cursor"] = cursor
        return self.call("POST", "/cgi-bin/externalcontact/get_groupmsg_send_result", json=body)

    # --- 入群欢迎语素材 (document/path/92366): a text greeting staff bind to customer groups ---
    def add_group_welcome_template(self, text: str, *, notify: bool = True) -> str:
        """A new template in the company's library (at most 100); `notify`: tell staff to apply it to their
        groups. Returns its template_id."""
        return str(self.call("POST", "/cgi-bin/externalcontact/group_welcome_template/add",
                             json={"text": {"content": text}, "notify": 1 if notify else 0})["template_id"])

    def edit_group_welcome_template(self, template_id: str, text: str) -> None:
        """Only templates this app created can be edited."""
        self.call("POST", "/cgi-bin/externalcontact/group_welcome_template/edit",
                  json={"template_id": template_id, "text": {"content": text}})

    def get_group_welcome_template(self, template_id: str) -> dict[str, Any]:
        return self.call("POST", "/cgi-bin/externalcontact/group_welcome_template/get",
                         json={"template_id": template_id})

    def del_group_welcome_template(self, template_id: str) -> None:
        self.call("POST", "/cgi-bin/externalcontact/group_welcome_template/del", json={"template_id": template_id})

    # --- reads ---
    def groupchat_get(self, chat_id: str) -> dict[str, Any]:
        """A customer group with member_list (userid, type, join_time, join_scene, state, name)."""
        return self.call("POST", "/cgi-bin/externalcontact/groupchat/get",
                         json={"chat_id": chat_id, "need_name": 1})["group_chat"]

    def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        return self.call("GET", "/cgi-bin/externalcontact/get", params={"external_userid": external_userid})

    def get_follow_user_list(self) -> list[str]:
        """Staff with the 客户联系 feature: the check that the secret can use 客户联系 at all."""
        return [str(u) for u in self.call("GET", "/cgi-bin/externalcontact/get_follow_user_list")
                .get("follow_user", [])]
