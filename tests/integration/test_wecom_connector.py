"""The WeCom connector against FakeWeCom: real HTTP on 127.0.0.1, encrypted callbacks, documented errcodes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import typer
from typer.testing import CliRunner

from qunflow.connectors.base import ContactAdded, Host, MemberJoined, MemberLeft, Update
from qunflow.connectors.wecom import PLATFORM
from qunflow.connectors.wecom.connector import WeComConnector
from qunflow.connectors.wecom.settings import WeComSettings
from qunflow.errors import InvalidInput, QunflowError, RateLimited, Unauthorized, Unreachable
from tests.fakes.wecom_server import FakeWeCom

WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"
GETTOKEN = "/cgi-bin/gettoken"


class Clock:
    """A settable naive-UTC clock shared by the fake and the connector."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Hook:
    """qunflow's callback endpoint in miniature: hands each call to connector.receive and keeps the updates."""

    def __init__(self, connector: WeComConnector) -> None:
        self.connector = connector
        self.updates: list[Update] = []
        self.errors: list[QunflowError] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    inbound = hook.connector.receive(self.command, dict(parse_qsl(parts.query)),
                                                     dict(self.headers), body)
                except QunflowError as exc:
                    hook.errors.append(exc)
                    self.send_response(exc.http_status)
                    self.end_headers()
                    return
                hook.updates.extend(inbound.updates)
                self.send_response(200)
                self.send_header("content-type", inbound.media_type)
                self.send_header("content-length", str(len(inbound.reply)))
                self.end_headers()
                self.wfile.write(inbound.reply)

            do_GET = _serve
            do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}/hooks/wecom"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wecom(clock: Clock) -> Iterator[FakeWeCom]:
    with FakeWeCom(clock=clock) as fake:
        yield fake


def make_connector(wecom: FakeWeCom, clock: Clock, tmp_path: Path, **overrides: Any) -> WeComConnector:
    settings = WeComSettings(corp_id=wecom.corp_id, secret=wecom.secret, callback_token=wecom.token,
                             aes_key=wecom.aes_key, api_base=wecom.api_base, staff_user_ids=["zhangsan"],
                             **overrides)
    return WeComConnector(settings, Host(public_url="https://qf.example.com", home=tmp_path, clock=clock,
                                         secret="s"))


@pytest.fixture
def connector(wecom: FakeWeCom, clock: Clock, tmp_path: Path) -> Iterator[WeComConnector]:
    built = make_connector(wecom, clock, tmp_path)
    yield built
    built.api.close()


@pytest.fixture
def hook(wecom: FakeWeCom, connector: WeComConnector) -> Iterator[Hook]:
    receiver = Hook(connector)
    wecom.callback_url = receiver.url
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


# --- the access token ---
def test_token_is_fetched_once_and_reused(wecom: FakeWeCom, connector: WeComConnector) -> None:
    connector.api.get_follow_user_list()
    connector.api.get_follow_user_list()
    assert len(wecom.calls(GETTOKEN)) == 1


def test_expired_token_is_refreshed_once_and_the_call_repeated(wecom: FakeWeCom, connector: WeComConnector) -> None:
    connector.api.get_follow_user_list()
    wecom.expire_tokens()
    assert connector.api.get_follow_user_list() == ["zhangsan", "lisi"]
    assert len(wecom.calls(GETTOKEN)) == 2
    assert len(wecom.calls("/cgi-bin/externalcontact/get_follow_user_list")) == 3  # ok, 42001, repeated


def test_invalid_token_errcode_also_refreshes(wecom: FakeWeCom, connector: WeComConnector) -> None:
    connector.api.get_follow_user_list()
    wecom.fail_next("/cgi-bin/externalcontact/get_follow_user_list", 40014, "invalid access_token")
    connector.api.get_follow_user_list()
    assert len(wecom.calls(GETTOKEN)) == 2


def test_token_is_refetched_when_near_expiry(wecom: FakeWeCom, connector: WeComConnector, clock: Clock) -> None:
    connector.api.get_follow_user_list()
    clock.advance(7200 - 60)  # inside the safety margin before expires_in
    connector.api.get_follow_user_list()
    assert len(wecom.calls(GETTOKEN)) == 2


def test_frequency_limit_is_rate_limited_with_retry_after(wecom: FakeWeCom, connector: WeComConnector) -> None:
    wecom.fail_next("/cgi-bin/externalcontact/add_contact_way", 45009, "api freq out of limit")
    with pytest.raises(RateLimited) as caught:
        connector.create_invite("wr1", "poster-a")
    assert caught.value.retry_after >= 1


def test_refused_secret_is_unauthorized(wecom: FakeWeCom, clock: Clock, tmp_path: Path) -> None:
    settings = WeComSettings(corp_id=wecom.corp_id, secret="wrong", callback_token="t", aes_key=wecom.aes_key,
                             api_base=wecom.api_base)
    bad = WeComConnector(settings, Host("https://qf.example.com", tmp_path, clock, "s"))
    with pytest.raises(Unauthorized, match="secret"):
        bad.connect()


def test_secret_and_token_never_reach_the_logs(wecom: FakeWeCom, connector: WeComConnector,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # on, even where another module quieted it
    connector.api.get_follow_user_list()
    wecom.fail_next("/cgi-bin/externalcontact/get_follow_user_list", 40014)
    connector.api.get_follow_user_list()
    token = connector.api.get_token()
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log the requests
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert wecom.secret not in logged
    assert token not in logged
    assert wecom.secret not in repr(connector.settings) and wecom.secret not in repr(connector.api)


# --- callbacks ---
def test_url_check_answers_the_plain_echo(wecom: FakeWeCom, hook: Hook) -> None:
    delivery = wecom.verify_url()
    assert delivery.status == 200
    assert delivery.reply == delivery.xml.encode()  # no quotes, BOM or newline


def test_contact_added_carries_state_name_and_welcome_code(wecom: FakeWeCom, connector: WeComConnector,
                                                           hook: Hook, clock: Clock) -> None:
    link = connector.create_invite("wr-any", "poster-a")
    code = wecom.add_contact("wmAlice", "Alice", link.handle or "")
    assert wecom.deliveries[-1].status == 200 and wecom.deliveries[-1].reply == b""
    [update] = hook.updates
    assert isinstance(update, ContactAdded)
    assert (update.staff_id, update.user_id, update.display_name) == ("zhangsan", "wmAlice", "Alice")
    assert update.invite_label == "poster-a"
    assert update.dm_context == code
    assert update.at == clock.now and update.key


def test_welcome_from_the_callback_is_delivered_once(wecom: FakeWeCom, connector: WeComConnector,
                                                     hook: Hook) -> None:
    link = connector.create_invite("wr-any", "poster-a")
    code = wecom.add_contact("wmAlice", "Alice", link.handle or "")
    connector.send_direct("wmAlice", "欢迎! 群邀请: https://example.com/g", context=code)
    assert wecom.welcome_messages() == [{"external_userid": "wmAlice", "text": "欢迎! 群邀请: https://example.com/g",
                                         "attachments": []}]
    with pytest.raises(Unreachable):
        connector.send_direct("wmAlice", "again", context=code)


def test_welcome_after_20_seconds_is_unreachable(wecom: FakeWeCom, connector: WeComConnector, hook: Hook,
                                                 clock: Clock) -> None:
    link = connector.create_invite("wr-any", "poster-a")
    code = wecom.add_contact("wmAlice", "Alice", link.handle or "")
    clock.advance(21)
    with pytest.raises(Unreachable, match="20 s"):
        connector.send_direct("wmAlice", "too late", context=code)
    assert wecom.welcome_messages() == []


def test_contact_name_failure_still_gives_the_update(wecom: FakeWeCom, connector: WeComConnector,
                                                     hook: Hook) -> None:
    link = connector.create_invite("wr-any", "poster-a")
    wecom.fail_next("/cgi-bin/externalcontact/get", 45009)
    wecom.add_contact("wmAlice", "Alice", link.handle or "")
    [update] = hook.updates
    assert isinstance(update, ContactAdded) and update.display_name == ""


def test_group_join_reports_the_state_from_groupchat_get(wecom: FakeWeCom, connector: WeComConnector,
                                                         hook: Hook) -> None:
    chat = wecom.make_group("zhangsan", "VIP 1")
    wecom.join_group("wmBob", "Bob", chat, state="poster-b")
    [update] = hook.updates
    assert isinstance(update, MemberJoined)
    assert (update.group_id, update.user_id, update.display_name, update.invite_label) \
        == (chat, "wmBob", "Bob", "poster-b")
    assert wecom.calls("/cgi-bin/externalcontact/groupchat/get")[-1].body == {"chat_id": chat, "need_name": 1}


def test_join_without_a_join_way_has_no_label(wecom: FakeWeCom, connector: WeComConnector, hook: Hook) -> None:
    chat = wecom.make_group("zhangsan", "VIP 1")
    wecom.join_group("wmBob", "Bob", chat)
    [update] = hook.updates
    assert isinstance(update, MemberJoined) and update.invite_label is None


def test_leaving_reports_member_left(wecom: FakeWeCom, connector: WeComConnector, hook: Hook) -> None:
    chat = wecom.make_group("zhangsan", "VIP 1")
    wecom.join_group("wmBob", "Bob", chat)
    wecom.leave_group("wmBob", chat)
    assert isinstance(hook.updates[-1], MemberLeft)
    assert (hook.updates[-1].group_id, hook.updates[-1].user_id) == (chat, "wmBob")


def test_redelivered_callback_maps_to_the_same_key(wecom: FakeWeCom, connector: WeComConnector,
                                                   hook: Hook) -> None:
    chat = wecom.make_group("zhangsan", "VIP 1")
    wecom.join_group("wmBob", "Bob", chat, state="poster-b")
    wecom.join_group("wmCarol", "Carol", chat, state="poster-b")
    again = wecom.redeliver_last()
    assert again.status == 200
    first_bob, carol, carol_again = hook.updates
    assert carol.key == carol_again.key
    assert first_bob.key != carol.key


def test_bad_signature_is_refused(wecom: FakeWeCom, connector: WeComConnector) -> None:
    xml = "<xml><CreateTime>1</CreateTime></xml>"
    encrypted, _ = wecom.crypto.encrypt(xml, "1", "n")
    body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()
    with pytest.raises(Unauthorized):
        connector.receive("POST", {"msg_signature": "f" * 40, "timestamp": "1", "nonce": "n"}, {}, body)


def test_malformed_callback_is_invalid_input(connector: WeComConnector) -> None:
    with pytest.raises(InvalidInput):
        connector.receive("POST", {"msg_signature": "x", "timestamp": "1", "nonce": "n"}, {}, b"<xml")


# --- invites and sends ---
def test_contact_mode_invite_is_a_contact_way_with_the_label_as_state(wecom: FakeWeCom,
                                                                     connector: WeComConnector) -> None:
    link = connector.create_invite("wr-any", "x" * 30)
    way = wecom.calls("/cgi-bin/externalcontact/add_contact_way")[-1].body or {}
    assert (way["scene"], way["state"], way["user"], way["skip_verify"]) == (2, "x" * 30, ["zhangsan"], True)
    assert link.url == link.qr_url and link.qr_url.startswith("https://")
    assert link.handle and not link.join_request
    connector.revoke_invite("wr-any", link)
    assert link.handle not in wecom.state.contact_ways


def test_group_mode_invite_is_a_join_way_whose_qr_comes_from_get_join_way(wecom: FakeWeCom, clock: Clock,
                                                                          tmp_path: Path) -> None:
    connector = make_connector(wecom, clock, tmp_path, entry_mode="group")
    chat = wecom.make_group("zhangsan", "VIP 1")
    link = connector.create_invite(chat, "poster-c")
    way = wecom.calls("/cgi-bin/externalcontact/groupchat/add_join_way")[-1].body or {}
    assert (way["chat_id_list"], way["state"], way["auto_create_room"]) == ([chat], "poster-c", 1)
    assert link.qr_url == wecom.state.join_ways[link.handle or ""]["qr_code"]
    connector.revoke_invite(chat, link)
    assert not wecom.state.join_ways


def test_label_over_30_characters_is_refused(connector: WeComConnector) -> None:
    with pytest.raises(InvalidInput, match="30"):
        connector.create_invite("wr-any", "x" * 31)


def test_join_requests_do_not_exist_on_wecom(connector: WeComConnector) -> None:
    assert not connector.capabilities.join_requests
    with pytest.raises(InvalidInput):
        connector.approve_join("wr", "wm")


def test_direct_message_without_window_is_a_task_staff_confirm(wecom: FakeWeCom, connector: WeComConnector,
                                                              hook: Hook) -> None:
    link = connector.create_invite("wr-any", "poster-a")
    wecom.add_contact("wmAlice", "Alice", link.handle or "")
    sent = connector.send_direct("wmAlice", "周末活动")
    assert wecom.templates()[sent.message_id]["request"]["external_userid"] == ["wmAlice"]
    assert connector.template_results(sent.message_id)["pending"] == 1
    wecom.confirm_template(sent.message_id)
    assert connector.template_results(sent.message_id)["sent"] == 1


def test_post_to_group_targets_that_one_chat_through_its_owner(wecom: FakeWeCom, connector: WeComConnector) -> None:
    chat = wecom.make_group("zhangsan", "VIP 1")
    sent = connector.post_to_group(chat, "今晚 8 点直播")
    request = wecom.templates()[sent.message_id]["request"]
    assert (request["chat_type"], request["chat_id_list"], request["sender"]) == ("group", [chat], "zhangsan")


def test_check_group_passes_for_a_staff_owned_customer_group(wecom: FakeWeCom, connector: WeComConnector) -> None:
    assert connector.check_group(wecom.make_group("zhangsan", "VIP 1")) == []
    assert "not a customer group" in connector.check_group("wr-unknown")[0]
    wecom.fail_next("/cgi-bin/externalcontact/groupchat/get", 48002, "api forbidden")
    assert "客户联系" in connector.check_group("wr-unknown")[0]


def test_connect_names_the_callback_url(connector: WeComConnector) -> None:
    lines = connector.connect()
    assert any("https://qf.example.com/hooks/wecom" in line for line in lines)


# --- the CLI ---
def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """connect"""

    assert PLATFORM.cli is not None
    PLATFORM.cli(app)
    return app


def test_cli_connect_writes_the_section(wecom: FakeWeCom, tmp_path: Path) -> None:
    from qunflow.settings import platform_sections
    from qunflow.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    result = CliRunner().invoke(cli_app(), [
        "wecom", "--corp-id", wecom.corp_id, "--secret", wecom.secret, "--callback-token", wecom.token,
        "--aes-key", wecom.aes_key, "--api-base", wecom.api_base, "--staff", "zhangsan", "--staff", "lisi",
        "-w", str(ws.home)])
    assert result.exit_code == 0, result.output
    assert "/hooks/wecom" in result.output
    assert wecom.secret not in result.output and wecom.token not in result.output
    section = platform_sections(ws.home)["wecom"]
    assert section["corp_id"] == wecom.corp_id and section["staff_user_ids"] == ["zhangsan", "lisi"]
    assert section["secret"] == wecom.secret
    ws.close()


def test_cli_refused_secret_is_one_line_and_exit_2(wecom: FakeWeCom, tmp_path: Path) -> None:
    from qunflow.cli.common import ErrorMappingGroup
    from qunflow.settings import platform_sections
    from qunflow.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    app = typer.Typer(cls=ErrorMappingGroup)

    @app.callback()
    def main() -> None:
        """connect"""

    assert PLATFORM.cli is not None
    PLATFORM.cli(app)
    result = CliRunner().invoke(app, [
        "wecom", "--corp-id", wecom.corp_id, "--secret", "not-the-secret", "--callback-token", "t",
        "--aes-key", wecom.aes_key, "--api-base", wecom.api_base, "-w", str(ws.home)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "secret" in result.output and "not-the-secret" not in result.output
    assert "wecom" not in platform_sections(ws.home)
    ws.close()
