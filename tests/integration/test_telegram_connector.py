"""The Telegram connector against FakeTelegram, a Bot API server on loopback."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from qunflow.connectors.base import Host, JoinRequested, MemberJoined, MemberLeft, MessagePosted, Update
from qunflow.connectors.telegram import CAPABILITIES, PLATFORM
from qunflow.connectors.telegram.api import BotApi
from qunflow.connectors.telegram.connector import TelegramConnector
from qunflow.connectors.telegram.settings import TelegramSettings
from qunflow.errors import InvalidInput, PlatformError, RateLimited, Unauthorized, Unreachable
from tests.fakes.telegram_server import TOKEN, FakeTelegram, Limits

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
SECRET = "s3cret_for-tests"


class Clock:
    """A hand-moved clock for the 5-minute window (Unix seconds)."""

    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def connector(tg: FakeTelegram, **settings: Any) -> TelegramConnector:
    return TelegramConnector(TelegramSettings(bot_token=TOKEN, api_base=tg.api_base, **settings))


# --- invite links ---
def test_invite_link_carries_its_name_and_asks_for_approval_when_told(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    link = connector(tg).create_invite(group, "poster-spring", join_request=True)
    assert (link.label, link.join_request, link.handle) == ("poster-spring", True, link.url)
    assert link.url.startswith("https://t.me/+")
    [(_, params, _)] = tg.calls("createChatInviteLink")
    assert params == {"chat_id": int(group), "name": "poster-spring", "creates_join_request": True}


def test_label_longer_than_32_is_refused_before_calling_telegram(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    with pytest.raises(InvalidInput, match="at most 32"):
        connector(tg).create_invite(group, "x" * 33)
    assert tg.calls("createChatInviteLink") == []
    assert connector(tg).create_invite(group, "x" * 32).label == "x" * 32


def test_single_use_link_lets_one_person_in_and_refuses_the_next(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    link = connector(tg).create_invite(group, "for-ann", single_use=True)
    ann, bob = tg.person("Ann Lee"), tg.person("Bob Wu")
    assert tg.open_link(ann, link.url) == "joined"
    assert tg.open_link(bob, link.url) == "refused"
    assert tg.members(group) == {ann}
    assert tg.calls("createChatInviteLink")[0][1]["member_limit"] == 1


def test_single_use_join_request_link_leaves_member_limit_out(tg: FakeTelegram) -> None:
    # Telegram refuses member_limit together with creates_join_request; each request is approved instead.
    group = tg.make_group("Growth")
    connector(tg).create_invite(group, "gate", join_request=True, single_use=True)
    assert "member_limit" not in tg.calls("createChatInviteLink")[0][1]


def test_fake_refuses_member_limit_with_join_requests_like_telegram(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    c = connector(tg)
    with pytest.raises(PlatformError, match="member_limit"):
        c.api.create_chat_invite_link(int(group), "both", creates_join_request=True, member_limit=1)


def test_revoked_link_lets_nobody_in(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    c = connector(tg)
    link = c.create_invite(group, "old-poster")
    c.revoke_invite(group, link)
    assert tg.open_link(tg.person("Ann"), link.url) == "refused"


# --- join requests and the private-message window ---
def test_welcome_reaches_user_chat_id_before_approval_and_not_after() -> None:
    clock = Clock()
    with FakeTelegram(clock=clock) as tg:
        group = tg.make_group("Growth")
        c = connector(tg)
        link = c.create_invite(group, "gate", join_request=True)
        ann = tg.person("Ann Lee")
        assert tg.open_link(ann, link.url) == "requested"
        [request] = c.poll(0)
        assert isinstance(request, JoinRequested)
        assert request.dm_context != ann  # user_chat_id, which the fake keeps apart from the user id
        c.send_direct(ann, "Welcome! Answer one question to get in.", context=request.dm_context)
        with pytest.raises(Unreachable, match="initiate conversation"):
            c.send_direct(ann, "no context: Ann never started the bot")
        c.approve_join(group, ann)
        clock.now += 2  # past the 1 message/s per private chat limit
        with pytest.raises(Unreachable, match="initiate conversation"):
            c.send_direct(ann, "too late", context=request.dm_context)
        assert tg.members(group) == {ann}
        assert [m["text"] for m in tg.sent() if m["user_id"] == ann] == ["Welcome! Answer one question to get in."]
        [joined] = c.poll(0)
        assert isinstance(joined, MemberJoined) and joined.invite_label == "gate"


def test_private_window_closes_after_five_minutes() -> None:
    clock = Clock()
    with FakeTelegram(clock=clock) as tg:
        group = tg.make_group("Growth")
        c = connector(tg)
        ann = tg.person("Ann")
        tg.open_link(ann, c.create_invite(group, "gate", join_request=True).url)
        [request] = c.poll(0)
        clock.now += 301
        with pytest.raises(Unreachable):
            c.send_direct(ann, "hello", context=request.dm_context)
        assert tg.pending_requests(group) == [ann]  # the request itself stays until it is answered


def test_declined_request_adds_nobody(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    c = connector(tg)
    ann = tg.person("Ann")
    tg.open_link(ann, c.create_invite(group, "gate", join_request=True).url)
    c.decline_join(group, ann)
    assert tg.members(group) == set() and tg.pending_requests(group) == []
    with pytest.raises(PlatformError, match="HIDE_REQUESTER_MISSING"):
        c.approve_join(group, ann)


def test_person_who_started_the_bot_can_be_messaged_by_user_id(tg: FakeTelegram) -> None:
    ann = tg.person("Ann")
    tg.start_bot(ann)
    result = connector(tg).send_direct(ann, "hi")
    assert tg.sent(ann)[0]["message_id"] == int(result.message_id)


# --- errors ---
def fixture_error(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def test_429_becomes_rate_limited_with_retry_after(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    body = fixture_error("error_429")
    tg.fail_next("sendMessage", body["error_code"], body["description"], body["parameters"]["retry_after"])
    with pytest.raises(RateLimited) as caught:
        connector(tg).post_to_group(group, "hello")
    assert caught.value.retry_after == 7


def test_group_limit_of_20_a_minute_answers_429() -> None:
    clock = Clock()
    with FakeTelegram(clock=clock, limits=Limits(group_per_minute=20)) as tg:
        group = tg.make_group("Growth")
        c = connector(tg)
        for n in range(20):
            clock.now += 0.1
            c.post_to_group(group, f"post {n}")
        with pytest.raises(RateLimited) as caught:
            c.post_to_group(group, "one too many")
        assert 55 <= caught.value.retry_after <= 60
        clock.now += caught.value.retry_after
        c.post_to_group(group, "after waiting")
        assert len(tg.sent(group)) == 21


def test_blocked_person_is_unreachable(tg: FakeTelegram) -> None:
    ann = tg.person("Ann", started_bot=True)
    tg.block(ann)
    with pytest.raises(Unreachable, match="blocked"):
        connector(tg).send_direct(ann, "hi")


def test_scripted_403_is_unreachable(tg: FakeTelegram) -> None:
    body = fixture_error("error_403_blocked")
    tg.fail_next("sendMessage", body["error_code"], body["description"])
    with pytest.raises(Unreachable, match="blocked by the user"):
        connector(tg).send_direct(tg.person("Ann", started_bot=True), "hi")


def test_unknown_private_chat_is_unreachable_but_unknown_group_is_a_platform_error(tg: FakeTelegram) -> None:
    c = connector(tg)
    with pytest.raises(Unreachable, match="chat not found"):
        c.send_direct("424242", "hi")
    with pytest.raises(PlatformError, match="chat not found") as caught:
        c.post_to_group("-100999", "hi")
    assert not isinstance(caught.value, Unreachable)


def test_refused_token_says_so_without_the_token(tg: FakeTelegram) -> None:
    wrong = "987654321:AAWrongTokenWrongTokenWrongToken_xyz"
    c = TelegramConnector(TelegramSettings(bot_token=wrong, api_base=tg.api_base))
    with pytest.raises(PlatformError, match="refused the bot token") as caught:
        c.connect("https://example.org")
    assert wrong not in str(caught.value) and "987654321" not in str(caught.value)


def test_unreachable_api_names_the_host_only() -> None:
    c = TelegramConnector(TelegramSettings(bot_token=TOKEN, api_base="http://127.0.0.1:9"))
    with pytest.raises(PlatformError, match=r"could not reach the Telegram Bot API at 127\.0\.0\.1:9") as caught:
        c.check_group("-100")
    assert TOKEN not in str(caught.value) and caught.value.__cause__ is None


class Loopback:
    """An HTTP server on a loopback port, in a thread of its own."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=lambda: self.server.serve_forever(poll_interval=0.02), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ForwardingProxy(Loopback):
    """An HTTP proxy on loopback: forwards each request (its target a full URL, as proxies get them) and keeps
    the URLs it forwarded."""

    def __init__(self) -> None:
        self.forwarded: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                body = self.rfile.read(int(self.headers["content-length"]))
                proxy.forwarded.append(self.path)
                request = urllib.request.Request(self.path, body, {"content-type": self.headers["content-type"]})
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request) as answer:
                    self.send_response(answer.status)
                    for name in ("content-type", "content-length"):
                        self.send_header(name, answer.headers[name])
                    self.end_headers()
                    self.wfile.write(answer.read())

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


def test_calls_go_through_the_proxy_the_environment_names(tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = ForwardingProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert BotApi(TOKEN, tg.api_base).get_me()["is_bot"]
        assert proxy.forwarded == [f"{tg.api_base}/bot{TOKEN}/getMe"]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the API's host: straight to it
        assert BotApi(TOKEN, tg.api_base).get_me()["is_bot"]
        assert len(proxy.forwarded) == 1 and len(tg.calls("getMe")) == 2
    finally:
        proxy.close()


# --- webhooks ---
class Receiver(Loopback):
    """qunflow's side of the webhook on loopback: hands each POST to `receive` and answers its status."""

    def __init__(self, connector: TelegramConnector, fail_first: int = 0) -> None:
        self.updates: list[Update] = []
        self.refused: list[str] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 200
                if receiver.fail_first:
                    receiver.fail_first -= 1
                    status = 500
                else:
                    try:
                        receiver.updates.extend(connector.receive("POST", {}, dict(self.headers), body).updates)
                    except Unauthorized as exc:
                        receiver.refused.append(str(exc))
                        status = 401
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)
        self.public_url = self.url


def test_join_request_arrives_by_webhook_with_the_secret(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    c = connector(tg, mode="webhook", webhook_secret=SECRET)
    receiver = Receiver(c, fail_first=2)  # Telegram repeats a delivery until it gets a 2xx
    try:
        lines = c.connect(receiver.public_url)  # a local Bot API server accepts http
        assert f"webhook: {receiver.public_url}/hooks/telegram" in lines
        [(_, params, _)] = tg.calls("setWebhook")
        assert params["secret_token"] == SECRET
        assert params["allowed_updates"] == ["chat_join_request", "chat_member", "message"]
        ann = tg.person("Ann Lee")
        tg.open_link(ann, c.create_invite(group, "poster-A", join_request=True).url)
        [delivered] = tg.wait_delivered(1)
        assert [type(u) for u in receiver.updates] == [JoinRequested]
        assert receiver.updates[0].key == str(delivered["update_id"])
        tg.redeliver(delivered["update_id"])  # the same update again: the key lets qunflow skip it
        tg.wait_delivered(2)
        assert receiver.updates[0] == receiver.updates[1]
    finally:
        receiver.close()


def test_webhook_with_a_wrong_secret_is_refused_and_retried(tg: FakeTelegram) -> None:
    tg.make_group("Growth")
    c = connector(tg, mode="webhook", webhook_secret=SECRET)
    receiver = Receiver(c)
    try:
        c.api.set_webhook(f"{receiver.public_url}/hooks/telegram", "another-secret", ["message"])
        tg.say(tg.person("Ann"), "hello")
        while len(receiver.refused) < 2:  # refused with 401, then tried again
            threading.Event().wait(0.01)
        assert "does not match" in receiver.refused[0] and tg.delivered == []
    finally:
        receiver.close()


@pytest.mark.parametrize(("secret", "headers", "says"), [
    (SECRET, {}, "header is missing"),
    (SECRET, {"X-Telegram-Bot-Api-Secret-Token": "guess"}, "does not match"),
    ("", {"X-Telegram-Bot-Api-Secret-Token": ""}, "no webhook_secret is configured"),
])
def test_receive_refuses_a_missing_or_wrong_secret(tg: FakeTelegram, secret: str, headers: dict[str, str],
                                                   says: str) -> None:
    c = connector(tg, webhook_secret=secret)
    body = (FIXTURES / "message_group_text.json").read_bytes()
    with pytest.raises(Unauthorized, match=says):
        c.receive("POST", {}, headers, body)


def test_receive_reads_the_header_whatever_its_case(tg: FakeTelegram) -> None:
    c = connector(tg, webhook_secret=SECRET)
    body = (FIXTURES / "chat_member_left.json").read_bytes()
    inbound = c.receive("POST", {}, {"x-telegram-bot-api-secret-token": SECRET}, body)
    assert [type(u) for u in inbound.updates] == [MemberLeft]
    with pytest.raises(InvalidInput, match="not JSON"):
        c.receive("POST", {}, {"X-TELEGRAM-BOT-API-SECRET-TOKEN": SECRET}, b"{oops")


def test_webhook_mode_refuses_a_plain_http_public_url_for_the_real_api() -> None:
    c = TelegramConnector(TelegramSettings(bot_token=TOKEN, mode="webhook", webhook_secret=SECRET))
    with pytest.raises(InvalidInput, match="https URLs only"):
        c.connect("http://qunflow.example.org")  # refused before any call: no internet touched


# --- polling ---
def test_poll_confirms_updates_only_on_the_next_call(tg: FakeTelegram) -> None:
    group = tg.make_group("Growth")
    first = connector(tg)
    first.connect("http://127.0.0.1:8000")
    ann = tg.person("Ann")
    tg.open_link(ann, first.create_invite(group, "poster-A").url)
    tg.say(ann, "hi all", chat_id=group)
    got = first.poll(0)
    assert [type(u) for u in got] == [MemberJoined, MessagePosted]
    # The process dies before handling them: the next one gets them again.
    restarted = connector(tg)
    assert restarted.poll(0) == got
    tg.leave(ann, group)
    assert [type(u) for u in restarted.poll(0)] == [MemberLeft]  # the earlier ones are confirmed now
    assert restarted.poll(0) == []
    assert tg.calls("getUpdates")[-1][1]["offset"] == restarted._offset


def test_long_poll_returns_as_soon_as_an_update_arrives(tg: FakeTelegram) -> None:
    ann = tg.person("Ann")
    c = connector(tg)
    threading.Timer(0.2, lambda: tg.say(ann, "/start")).start()
    [update] = c.poll(5)
    assert isinstance(update, MessagePosted) and update.group_id is None


def test_privacy_mode_hides_group_messages_from_a_non_admin_bot(tg: FakeTelegram) -> None:
    group = tg.make_group("Quiet", bot_admin=False, can_invite=False, privacy=True)
    ann = tg.person("Ann")
    tg.chats[int(group)].status[int(ann)] = "member"
    tg.say(ann, "hello", chat_id=group)
    assert connector(tg).poll(0) == []


# --- onboarding ---
def test_check_group_names_each_fix(tg: FakeTelegram) -> None:
    c = connector(tg)
    assert c.check_group(tg.make_group("Ready")) == []
    [no_invite] = c.check_group(tg.make_group("No invite right", can_invite=False))
    assert "Invite users via link" in no_invite
    not_admin, privacy = c.check_group(tg.make_group("Plain member", bot_admin=False, privacy=True))
    assert "not an administrator" in not_admin
    assert "/setprivacy" in privacy and "make the bot an admin" in privacy
    [missing] = c.check_group("-100555")
    assert "add the bot to the group" in missing


def test_token_never_reaches_the_logs_or_reprs(tg: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # even with httpx's request log switched on
    caplog.set_level(logging.DEBUG, logger="httpcore")
    settings = TelegramSettings(bot_token=TOKEN, api_base=tg.api_base, webhook_secret=SECRET)
    c = TelegramConnector(settings)
    group = tg.make_group("Growth")
    c.check_group(group)
    tg.fail_next("sendMessage", 400, "Bad Request: chat not found")
    with pytest.raises(PlatformError) as caught:
        c.post_to_group(group, "hi")
    assert "send_request_headers" in caplog.text  # httpcore's trace of each request is there (without its URL)
    secret_part = TOKEN.split(":")[1]
    for text in (caplog.text, repr(c), repr(c.api), repr(settings), str(caught.value)):
        assert secret_part not in text and SECRET not in text


# --- the platform spec ---
def test_platform_spec_builds_the_connector_with_the_documented_capabilities(tg: FakeTelegram,
                                                                             tmp_path: Path) -> None:
    host = Host(public_url="https://q.example.org", home=tmp_path, clock=lambda: None, secret="x")  # type: ignore[arg-type, return-value]
    built = PLATFORM.build(TelegramSettings(bot_token=TOKEN, api_base=tg.api_base), host)
    assert isinstance(built, TelegramConnector) and built.capabilities is CAPABILITIES
    assert (CAPABILITIES.dm_window_seconds, CAPABILITIES.invite_label_max, CAPABILITIES.group_capacity_max) == (
        300, 32, 200_000)
    assert PLATFORM.polls


def test_settings_refuse_a_malformed_token_without_echoing_it() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        TelegramSettings(bot_token="not-a-token-but-a-secret")
    assert "not-a-token-but-a-secret" not in str(caught.value)
    with pytest.raises(ValidationError, match="webhook_secret"):
        TelegramSettings(bot_token=TOKEN, mode="webhook")


def test_environment_beats_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNFLOW_TELEGRAM_MODE", "webhook")
    monkeypatch.setenv("QUNFLOW_TELEGRAM_WEBHOOK_SECRET", SECRET)
    assert TelegramSettings(bot_token=TOKEN, mode="polling").mode == "webhook"


# --- `qunflow connect telegram` ---
def cli_app() -> Any:
    import typer

    from qunflow.cli.common import ErrorMappingGroup

    app = typer.Typer(cls=ErrorMappingGroup, pretty_exceptions_enable=False)
    connect_app = typer.Typer()
    PLATFORM.cli(connect_app)  # type: ignore[misc]
    app.add_typer(connect_app, name="connect")
    return app


def test_cli_connect_checks_the_token_and_writes_the_section(tg: FakeTelegram, workspace: Any) -> None:
    import tomllib

    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app(), ["connect", "telegram", "--api-base", tg.api_base,
                                            "--bot-token", TOKEN, "--mode", "webhook", "-w", str(workspace.home)])
    assert result.exit_code == 0, result.output
    assert "@qunflow_test_bot" in result.output and TOKEN not in result.output
    section = tomllib.loads((workspace.home / "qunflow.toml").read_text())["platforms"]["telegram"]
    assert section["bot_token"] == TOKEN and section["mode"] == "webhook"
    assert len(section["webhook_secret"]) >= 32  # generated
    assert tg.calls("setWebhook")[0][1]["secret_token"] == section["webhook_secret"]


def test_cli_keeps_a_token_from_the_environment_out_of_the_file(tg: FakeTelegram, workspace: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    from typer.testing import CliRunner

    monkeypatch.setenv("QUNFLOW_TELEGRAM_BOT_TOKEN", TOKEN)
    result = CliRunner().invoke(cli_app(), ["connect", "telegram", "--api-base", tg.api_base,
                                            "-w", str(workspace.home)])
    assert result.exit_code == 0, result.output
    section = tomllib.loads((workspace.home / "qunflow.toml").read_text())["platforms"]["telegram"]
    assert "bot_token" not in section and section["mode"] == "polling"
    assert [c[0] for c in tg.calls()] == ["getMe", "deleteWebhook", "getUpdates"]


def test_cli_refused_token_is_one_line_and_exit_2(tg: FakeTelegram, workspace: Any) -> None:
    from typer.testing import CliRunner

    wrong = "987654321:AAWrongTokenWrongTokenWrongToken_xyz"
    result = CliRunner().invoke(cli_app(), ["connect", "telegram", "--api-base", tg.api_base,
                                            "--bot-token", wrong, "-w", str(workspace.home)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused the bot token" in lines[0]
    assert "AAWrongToken" not in result.output
    assert "platforms" not in (workspace.home / "qunflow.toml").read_text()


def test_cli_malformed_token_is_refused_without_echoing_it(workspace: Any) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app(), ["connect", "telegram", "--bot-token", "oops-secret-value",
                                            "-w", str(workspace.home)])
    assert result.exit_code == 2 and "look like 123456:" in result.output
    assert "oops-secret-value" not in result.output


# --- removing a member (a tier move's leave_old) ---
def test_remove_member_takes_them_out_and_a_new_link_still_lets_them_back(tg: FakeTelegram) -> None:
    group = tg.make_group("Newbies")
    c = connector(tg)
    assert CAPABILITIES.removes_members
    ann = tg.person("Ann Lee")
    assert tg.open_link(ann, c.create_invite(group, "first").url) == "joined"
    c.poll(0)
    c.remove_member(group, ann)
    assert tg.members(group) == set()
    assert [name for name, _params, _at in tg.calls() if name.endswith("ChatMember")] == [
        "banChatMember", "unbanChatMember"]
    assert tg.calls("unbanChatMember")[0][1]["only_if_banned"] is True
    left = [u for u in c.poll(0) if isinstance(u, MemberLeft)]
    assert [(u.group_id, u.user_id) for u in left] == [(group, ann)]  # reported as a leave
    assert tg.open_link(ann, c.create_invite(group, "again").url) == "joined"  # removed, not banned
