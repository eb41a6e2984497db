"""Feishu event crypto and parsing against payloads shaped as the open platform documents them
(tests/fixtures/feishu/), through the connector's `receive` as /hooks/feishu calls it."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from qunflow.connectors.base import Host, MemberJoined, MemberLeft, MessagePosted
from qunflow.connectors.feishu.api import FeishuApi
from qunflow.connectors.feishu.connector import FeishuConnector
from qunflow.connectors.feishu.crypto import FeishuCrypto
from qunflow.connectors.feishu.settings import FeishuSettings
from qunflow.errors import InvalidInput, RateLimited, Unauthorized

FIXTURES = Path(__file__).parents[1] / "fixtures" / "feishu"
TOKEN = "rvaYgkND1GOiu5MM0E1rncYC6PLtF7JV"  # the fixtures' header.token
KEY = "fixture-encrypt-key"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


@pytest.fixture
def connector(tmp_path: Path) -> FeishuConnector:
    settings = FeishuSettings(app_id="cli_9f5343c580712544", app_secret="s", verification_token=TOKEN,
                              encrypt_key=KEY, domain="http://127.0.0.1:9")  # never called here
    return FeishuConnector(settings, Host(public_url="http://127.0.0.1:9", home=tmp_path,
                                          clock=lambda: datetime.now(UTC).replace(tzinfo=None), secret="x"))


def signed(payload: dict[str, Any], key: str = KEY, at: float | None = None) -> tuple[dict[str, str], bytes]:
    crypto = FeishuCrypto(key)
    body = json.dumps({"encrypt": crypto.encrypt(json.dumps(payload, ensure_ascii=False))}).encode()
    timestamp, nonce = str(int(time.time() if at is None else at)), secrets.token_hex(4)
    return ({"X-Lark-Request-Timestamp": timestamp, "X-Lark-Request-Nonce": nonce,
             "X-Lark-Signature": crypto.signature(timestamp, nonce, body)}, body)


def test_the_documented_example_decrypts() -> None:
    # The open platform's own example (事件订阅 → 接收事件 → 解密示例): key "test key".
    assert FeishuCrypto("test key").decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == "hello world"


def test_a_wrong_key_or_a_bent_ciphertext_is_refused() -> None:
    encrypted = FeishuCrypto(KEY).encrypt('{"a": 1}')
    with pytest.raises(Unauthorized):
        FeishuCrypto("another key").decrypt(encrypted)
    with pytest.raises(InvalidInput):
        FeishuCrypto(KEY).decrypt("not base64!")
    with pytest.raises(InvalidInput):
        FeishuCrypto(KEY).decrypt("QUJD")  # three bytes: no IV, no blocks


def test_member_added_gives_one_join_per_user_keyed_on_the_event_id(connector: FeishuConnector) -> None:
    headers, body = signed(fixture("im.chat.member.user.added_v1.json"))
    inbound = connector.receive("POST", {}, headers, body)
    assert all(isinstance(u, MemberJoined) for u in inbound.updates)
    assert [(u.user_id, u.display_name, u.invite_label, u.key) for u in inbound.updates] == [  # type: ignore[attr-defined]
        ("ou_84aad35d084aa403a838cf73ee18467", "张三", None, "feishu:5e3702a84e847582be8db7fb73283c02:"
         "ou_84aad35d084aa403a838cf73ee18467"),
        ("ou_5ad573a6411d72b8305fda3a9c15c70e", "Li Si", None, "feishu:5e3702a84e847582be8db7fb73283c02:"
         "ou_5ad573a6411d72b8305fda3a9c15c70e")]
    assert inbound.updates[0].group_id == "oc_413871e2b3f6e0b3cbd6b1b2c5e8f3a1"  # type: ignore[attr-defined]
    assert inbound.updates[0].at == datetime(2020, 12, 23, 12, 19, 49)


def test_member_deleted_and_a_group_message(connector: FeishuConnector) -> None:
    [left] = connector.receive("POST", {}, *signed(fixture("im.chat.member.user.deleted_v1.json"))).updates
    assert isinstance(left, MemberLeft) and left.user_id == "ou_84aad35d084aa403a838cf73ee18467"
    [posted] = connector.receive("POST", {}, *signed(fixture("im.message.receive_v1.json"))).updates
    assert isinstance(posted, MessagePosted) and posted.text == "签到"
    assert posted.group_id == "oc_413871e2b3f6e0b3cbd6b1b2c5e8f3a1"
    assert posted.message_id == "om_5ce6d572455d361153b7cb51da133945"


def test_the_url_check_echoes_the_challenge_and_needs_the_token(connector: FeishuConnector) -> None:
    check = fixture("url_verification.json")
    body = json.dumps({"encrypt": FeishuCrypto(KEY).encrypt(json.dumps(check))}).encode()
    assert json.loads(connector.receive("POST", {}, {}, body).reply) == {"challenge": "ajls384kdjx98XX"}
    bad = json.dumps({"encrypt": FeishuCrypto(KEY).encrypt(json.dumps({**check, "token": "x"}))}).encode()
    with pytest.raises(Unauthorized):
        connector.receive("POST", {}, {}, bad)


def test_unsigned_stale_mis_signed_and_wrong_token_events_are_refused(connector: FeishuConnector) -> None:
    payload = fixture("im.message.receive_v1.json")
    headers, body = signed(payload)
    with pytest.raises(Unauthorized):
        connector.receive("POST", {}, {k: v for k, v in headers.items() if k != "X-Lark-Signature"}, body)
    with pytest.raises(Unauthorized):
        connector.receive("POST", {}, {**headers, "X-Lark-Signature": "f" * 64}, body)
    with pytest.raises(Unauthorized):
        connector.receive("POST", {}, *signed(payload, at=time.time() - 301))
    with pytest.raises(Unauthorized):
        connector.receive("POST", {}, *signed({**payload, "header": {**payload["header"], "token": "other"}}))
    with pytest.raises(Unauthorized):
        connector.receive("POST", {}, *signed(payload, key="another key"))
    with pytest.raises(InvalidInput):
        connector.receive("POST", {}, *signed({"schema": "1.0", "event": {}}))


def test_the_documented_frequency_limit_answer_is_rate_limited_with_its_reset() -> None:
    raw = (FIXTURES / "rate_limited.http").read_bytes().replace(b"\r\n", b"\n")
    head, _, payload = raw.partition(b"\n\n")
    answer = head.replace(b"\n", b"\r\n") + b"\r\ncontent-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve() -> None:  # every call gets the limited answer, until the test closes the socket
        while True:
            try:
                conn, _addr = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(answer)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    api = FeishuApi("cli_x", "s", f"http://127.0.0.1:{server.getsockname()[1]}")
    with pytest.raises(RateLimited) as limited:
        api.get_token()
    assert limited.value.retry_after == 52
    api.close()
    server.close()
