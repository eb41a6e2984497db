"""The whole chain on Feishu / Lark, over real HTTP against a local open platform (tests/fakes/feishu_server.py).

landing page -> the group's share link and its code -> the person sends the code to the bot -> the bot
adds them (im/v1/chats/:chat_id/members) -> im.chat.member.user.added_v1 (encrypted, signed) carries the
code -> the welcome DM (with `uuid`) -> the join under its channel in `qunflow metrics --by channel`;
then a join through the bare share link (not_reported), forged, stale and replayed calls, and 99991400.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.engine.outbox import deliver
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import LiveServer
from tests.fakes.feishu_server import FakeFeishu

runner = CliRunner()
ALICE, BOB, CAROL = "ou_" + "a" * 32, "ou_" + "b" * 32, "ou_" + "c" * 32


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--workspace", str(home)])
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


@pytest.fixture
def feishu() -> Iterator[FakeFeishu]:
    with FakeFeishu() as fake:
        yield fake


@pytest.fixture
def connected(request: pytest.FixtureRequest, tmp_path: Path,
              feishu: FakeFeishu) -> Iterator[tuple[Workspace, LiveServer, str]]:
    database = getattr(request, "param", "sqlite")
    if database == "postgres":  # the state database on PostgreSQL (made and dropped by tests/conftest.py)
        request.getfixturevalue("monkeypatch").setenv("QUNFLOW_DATABASE_URL", request.getfixturevalue("pg_url"))
    ws = init_workspace(tmp_path / "ws")
    assert ws.engine.dialect.name == {"sqlite": "sqlite", "postgres": "postgresql"}[database]
    server = LiveServer(ws)
    settings = ws.home / "qunflow.toml"
    settings.write_text(settings.read_text().replace("http://127.0.0.1:8000", server.url))
    ws.settings.public_url = server.url
    chat = feishu.make_chat("新人群")
    feishu.callback_url = f"{server.url}/hooks/feishu"
    with server:
        code, out = cli(ws.home, "connect", "feishu", "--app-id", feishu.app_id, "--app-secret", feishu.app_secret,
                        "--verification-token", feishu.verification_token, "--encrypt-key", feishu.encrypt_key,
                        "--domain", feishu.api_base)
        assert code == 0, out
        assert f"{server.url}/hooks/feishu" in out
        assert feishu.app_secret not in out and feishu.encrypt_key not in out
        assert cli(ws.home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "feishu",
                   "--external-id", chat)[0] == 0
        assert cli(ws.home, "channel", "add", "ads", "--kind", "ad")[0] == 0
        assert cli(ws.home, "entry", "add", "fs-ads", "--channel", "ads", "--platform", "feishu")[0] == 0
        yield ws, server, chat
    ws.close()


def count(ws: Workspace, kind: str | None = None) -> int:
    args = ("events", "count", "--type", kind) if kind else ("events", "count")
    return int(cli(ws.home, *args)[1].strip())


def cohort(ws: Workspace) -> dict[str, int]:
    code, out = cli(ws.home, "metrics", "--by", "channel", "--format", "json")
    assert code == 0, out
    return {row["channel"]: row["cohort_size"] for row in json.loads(out)["rows"]}


def attributions(ws: Workspace) -> list[str]:
    from qunflow.store.tables import events

    with ws.engine.connect() as conn:
        rows = conn.execute(events.select().with_only_columns(events.c.properties)
                            .where(events.c.type == "joined")).all()
    return sorted(row.properties["attribution"] for row in rows)


@pytest.mark.parametrize("connected", ["sqlite", "postgres"], indirect=True)
def test_url_check_code_to_the_bot_join_welcome_and_metrics(
        connected: tuple[Workspace, LiveServer, str], feishu: FakeFeishu) -> None:
    ws, server, chat = connected
    check = feishu.verify_url()
    assert check.status == 200 and json.loads(check.reply) == {"challenge": check.payload["challenge"]}

    page = httpx.get(f"{server.url}/j/fs-ads")
    assert page.status_code == 200
    [link] = feishu.state.chats[chat]["links"]
    assert f'href="{link}"' in page.text  # the group's share link
    assert "<code>join fs-ads</code>" in page.text  # and what to send the bot to be let in, attributed
    [made] = feishu.calls(f"/open-apis/im/v1/chats/{chat}/link")
    assert made.body == {"validity_period": "permanently"}

    assert feishu.send_text(ALICE, "join fs-ads").status == 200  # the message the page shows, to the bot
    assert ALICE in feishu.members(chat)
    [welcome] = feishu.messages_to(ALICE)
    assert welcome and count(ws, "joined") == 1
    assert cohort(ws)["ads"] == 1
    sends = feishu.calls("/open-apis/im/v1/messages")
    [send] = [c for c in sends if c.params["receive_id_type"] == "open_id"]
    assert send.params == {"receive_id_type": "open_id"} and send.body and send.body["uuid"]

    # Feishu delivers again what it saw no answer to: the same event_id does nothing twice.
    message, added = feishu.deliveries[-1], feishu.deliveries[-2]
    assert message.payload["header"]["event_type"] == "im.message.receive_v1"
    assert feishu.deliver(message.payload).status == 200 and feishu.deliver(added.payload).status == 200
    assert len(feishu.calls(f"/open-apis/im/v1/chats/{chat}/members")) == 1
    assert feishu.messages_to(ALICE) == [welcome] and count(ws, "joined") == 1

    # A join through the bare share link: Feishu does not say which link, so no channel is guessed.
    feishu.join_by_link(BOB, "Bob", chat)
    assert count(ws, "joined") == 2 and cohort(ws)["ads"] == 1
    assert attributions(ws) == ["entry_point", "not_reported"]

    feishu.leave(BOB, chat)
    assert count(ws, "left") == 1
    # Alice leaves and comes back through the bare share link: that return is not credited to her code.
    feishu.leave(ALICE, chat)
    feishu.join_by_link(ALICE, "Alice", chat)
    assert count(ws, "left") == 2 and count(ws, "joined") == 3
    assert attributions(ws) == ["entry_point", "known_identity", "not_reported"]


def test_forged_stale_and_wrong_token_calls_are_refused_and_change_nothing(
        connected: tuple[Workspace, LiveServer, str], feishu: FakeFeishu) -> None:
    ws, server, chat = connected
    httpx.get(f"{server.url}/j/fs-ads")
    before = count(ws)
    url = f"{server.url}/hooks/feishu"
    payload = feishu.message_event(ALICE, "fs-ads")
    headers, body = feishu.signed(payload)
    forged = httpx.post(url, content=body, headers={**headers, "x-lark-signature": "0" * 64})
    assert forged.status_code == 401 and forged.json()["error"].startswith("feishu event: X-Lark-Signature does not")
    assert forged.json()["error_zh"].startswith("飞书事件:X-Lark-Signature 签名不符;请确认 [platforms.feishu] 里的")
    headers, body = feishu.signed(payload, at=time.time() - 600)  # correctly signed, ten minutes old
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    headers, body = feishu.signed(feishu.envelope("im.message.receive_v1", payload["event"], token="wrong"))
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    plain = json.dumps(payload).encode()  # unencrypted, unsigned
    assert httpx.post(url, content=plain, headers={"content-type": "application/json"}).status_code == 401
    assert count(ws) == before and feishu.members(chat) == {}
    assert feishu.calls(f"/open-apis/im/v1/chats/{chat}/members") == []


def welcome_status(ws: Workspace) -> str:
    from qunflow.store.tables import deliveries

    with ws.engine.connect() as conn:
        row = conn.execute(deliveries.select().with_only_columns(deliveries.c.status)
                           .where(deliveries.c.kind == "welcome_dm").order_by(deliveries.c.id.desc())).first()
    assert row is not None
    return str(row.status)


def test_a_frequency_limit_waits_for_its_reset_and_the_send_is_not_repeated(
        connected: tuple[Workspace, LiveServer, str], feishu: FakeFeishu) -> None:
    ws, server, chat = connected
    httpx.get(f"{server.url}/j/fs-ads")
    feishu.rate_limit_next("/open-apis/im/v1/messages", reset=1)
    feishu.send_text(CAROL, "fs-ads")
    assert count(ws, "joined") == 1 and feishu.messages_to(CAROL) == []
    assert welcome_status(ws) == "retry"
    assert deliver(ws).sent == 0  # the reset has not passed: nothing is tried
    time.sleep(1.1)
    assert deliver(ws).sent == 1
    assert len(feishu.messages_to(CAROL)) == 1 and welcome_status(ws) == "sent"
    limited, sent = [c for c in feishu.calls("/open-apis/im/v1/messages")
                     if c.params["receive_id_type"] == "open_id"]
    assert limited.body and sent.body and limited.body["uuid"] == sent.body["uuid"]  # one key: Feishu dedups


def test_connect_refuses_a_wrong_secret_without_printing_it(tmp_path: Path, feishu: FakeFeishu) -> None:
    home = init_workspace(tmp_path / "ws").home
    code, out = cli(home, "connect", "feishu", "--app-id", feishu.app_id, "--app-secret", "wrong-secret",
                    "--verification-token", feishu.verification_token, "--encrypt-key", feishu.encrypt_key,
                    "--domain", feishu.api_base)
    assert code == 2 and "wrong-secret" not in out and "app_secret" in out
    assert "feishu" not in (home / "qunflow.toml").read_text()


def test_group_add_refuses_a_chat_the_bot_is_not_in(connected: tuple[Workspace, LiveServer, str],
                                                    feishu: FakeFeishu) -> None:
    ws, _server, _chat = connected
    other = feishu.make_chat("别的群", bot_in=False)
    code, out = cli(ws.home, "group", "add", "core-1", "--tier", "core", "--platform", "feishu",
                    "--external-id", other)
    assert code == 2 and "添加机器人" in out, out


def test_an_expired_token_is_fetched_again_and_a_repeated_uuid_sends_once(feishu: FakeFeishu) -> None:
    from qunflow.connectors.feishu.api import FeishuApi

    api = FeishuApi(feishu.app_id, feishu.app_secret, feishu.api_base)
    first = api.send_message("open_id", ALICE, "你好", uuid="welcome_dm:m_1")
    feishu.expire_tokens()  # answers 99991663 from now on: fetched again, the call repeated once
    again = api.send_message("open_id", ALICE, "你好", uuid="welcome_dm:m_1")
    assert again == first and feishu.messages_to(ALICE) == ["你好"]  # Feishu's uuid: one message
    assert len(feishu.calls("/open-apis/auth/v3/tenant_access_token/internal")) == 2
    api.close()


def test_the_domain_setting_names_feishu_or_lark(tmp_path: Path) -> None:
    from qunflow.connectors.feishu.settings import FeishuSettings

    common = {"app_id": "cli_x", "app_secret": "s", "verification_token": "t", "encrypt_key": "k"}
    assert FeishuSettings(**common).domain == "https://open.feishu.cn"
    assert FeishuSettings(**common, domain="lark").domain == "https://open.larksuite.com"
    assert "app_secret" not in repr(FeishuSettings(**common)) and "'s'" not in repr(FeishuSettings(**common))
    code, out = cli(init_workspace(tmp_path / "ws").home, "connect", "feishu", "--app-id", "cli_x", "--app-secret", "s",
                    "--verification-token", "t", "--encrypt-key", "k", "--domain", "ftp://x")
    assert code == 2 and "domain" in out and "http(s) URL" in out, out


def test_a_welcome_whose_outcome_a_crash_hid_is_sent_again_and_feishu_keeps_one(
        connected: tuple[Workspace, LiveServer, str], feishu: FakeFeishu) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from qunflow.store.tables import deliveries

    ws, server, _chat = connected
    httpx.get(f"{server.url}/j/fs-ads")
    feishu.send_text(ALICE, "fs-ads")
    [welcome] = feishu.messages_to(ALICE)
    # What a crash after Feishu took the message, before qunflow recorded it, leaves: a claimed row whose lease ran out.
    with ws.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.kind == "welcome_dm")
                     .values(status="pending", lease_until=ws.clock() - timedelta(minutes=1)))
    assert deliver(ws).sent == 1  # repeated with the same uuid (capabilities.idempotent_sends) ...
    assert feishu.messages_to(ALICE) == [welcome] and welcome_status(ws) == "sent"  # ... and Feishu kept one
    dms = [c for c in feishu.calls("/open-apis/im/v1/messages") if c.params["receive_id_type"] == "open_id"]
    assert len(dms) == 2 and dms[0].body and dms[1].body and dms[0].body["uuid"] == dms[1].body["uuid"]
