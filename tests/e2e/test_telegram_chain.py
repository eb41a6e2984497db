"""The whole chain on Telegram, over real HTTP against a local Bot API server (tests/fakes/telegram_server.py).

landing page -> tracked join-request link -> join request -> welcome DM inside the request's window ->
approval -> the join in `qunflow metrics --by channel`; plus refused secrets, 429, repeats and a SIGKILL
of `qunflow serve` between the welcome DM and the approval.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import LiveServer, free_port
from tests.fakes.telegram_server import TOKEN, FakeTelegram
from tests.integration.test_join_flow import PHONE

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--workspace", str(home)])
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


def set_public_url(home: Path, url: str) -> None:
    path = home / "qunflow.toml"
    path.write_text(path.read_text().replace('public_url = "http://127.0.0.1:8000"', f'public_url = "{url}"'))


def wait_for(check: Callable[[], object], seconds: float = 10.0) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def connected(tmp_path: Path, telegram: FakeTelegram) -> Iterator[tuple[Workspace, LiveServer, str]]:
    """A workspace served on loopback, connected to the fake Telegram in webhook mode, with one group and a
    gate-less entry point on channel `ads`. Yields the workspace, the server and the group's chat id."""
    ws = init_workspace(tmp_path / "ws")
    server = LiveServer(ws)
    set_public_url(ws.home, server.url)
    ws.settings.public_url = server.url
    with server:
        yield ws, server, set_up(ws.home, telegram, "webhook")
    ws.close()


def set_up(home: Path, telegram: FakeTelegram, mode: str) -> str:
    """Connect, one newbie group and the gate-less entry point tg-ads on channel ads; returns the chat id."""
    chat = telegram.make_group("Newbies")
    assert cli(home, "connect", "telegram", "--bot-token", TOKEN, "--api-base", telegram.api_base,
               "--mode", mode)[0] == 0
    assert cli(home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "telegram",
               "--external-id", chat)[0] == 0
    assert cli(home, "channel", "add", "ads", "--kind", "ad")[0] == 0
    assert cli(home, "entry", "add", "tg-ads", "--channel", "ads", "--platform", "telegram")[0] == 0
    return chat


def invite_from_landing(server: LiveServer | str, code: str) -> str:
    page = httpx.get(f"{getattr(server, 'url', server)}/j/{code}")
    assert page.status_code == 200, page.text
    return re.search(r'id="invite" href="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def joined_count(ws: Workspace) -> int:
    return int(cli(ws.home, "events", "count", "--type", "joined")[1].strip())


def test_landing_link_join_request_welcome_then_approval_then_metrics(
        connected: tuple[Workspace, LiveServer, str], telegram: FakeTelegram) -> None:
    ws, server, chat = connected
    assert [c[1]["url"] for c in telegram.calls("setWebhook")] == [f"{server.url}/hooks/telegram"]
    link = invite_from_landing(server, "tg-ads")
    [(_m, created, _t)] = telegram.calls("createChatInviteLink")
    assert created["name"] == "tg-ads" and created["creates_join_request"] is True
    assert invite_from_landing(server, "tg-ads") == link  # one link per entry point, made once

    alice = telegram.person("Alice")
    assert telegram.open_link(alice, link) == "requested"
    wait_for(lambda: alice in telegram.members(chat))
    wait_for(lambda: joined_count(ws) == 1)
    [dm] = [m for m in telegram.sent() if m["private"]]
    assert dm["user_id"] == alice and "Alice" in dm["text"]
    order = [name for name, _params, _at in telegram.calls() if name in ("sendMessage", "approveChatJoinRequest")]
    assert order[:2] == ["sendMessage", "approveChatJoinRequest"]  # welcome inside the window, then approval

    code, out = cli(ws.home, "metrics", "--by", "channel", "--format", "json")
    assert code == 0, out
    rows = {row["channel"]: row for row in json.loads(out)["rows"]}
    assert rows["ads"]["cohort_size"] == 1


def test_a_wrong_or_missing_secret_is_refused_and_changes_nothing(
        connected: tuple[Workspace, LiveServer, str], telegram: FakeTelegram) -> None:
    ws, server, chat = connected
    update = {"update_id": 1, "chat_join_request": {
        "chat": {"id": int(chat), "type": "supergroup", "title": "Newbies"},
        "from": {"id": 42, "is_bot": False, "first_name": "Mallory"}, "user_chat_id": 42, "date": 1764700000}}
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guess"}):
        answer = httpx.post(f"{server.url}/hooks/telegram", json=update, headers=headers)
        assert answer.status_code == 401 and "secret" in answer.json()["error"].lower()
    assert cli(ws.home, "events", "count")[1].strip() == "0"
    assert telegram.calls("approveChatJoinRequest") == [] and telegram.sent() == []


def test_a_429_is_waited_out_and_a_repeated_update_does_nothing_twice(
        connected: tuple[Workspace, LiveServer, str], telegram: FakeTelegram) -> None:
    ws, server, chat = connected
    link = invite_from_landing(server, "tg-ads")
    telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    bob = telegram.person("Bob")
    telegram.open_link(bob, link)
    wait_for(lambda: bob in telegram.members(chat))
    sends = [at for name, params, at in telegram.calls("sendMessage") if str(params.get("chat_id")) != chat]
    [approved_at] = [at for _n, _p, at in telegram.calls("approveChatJoinRequest")]
    assert len(sends) == 2 and sends[1] - sends[0] >= 1.0  # the refused call, then one after retry_after
    assert sends[1] < approved_at
    wait_for(lambda: joined_count(ws) == 1)

    for update in list(telegram.delivered):
        telegram.redeliver(update["update_id"])
    telegram.wait_delivered(2 * len(telegram.delivered), timeout=10)
    assert joined_count(ws) == 1
    assert len([m for m in telegram.sent() if m["private"]]) == 1
    assert len(telegram.calls("approveChatJoinRequest")) == 1


def test_a_forwarded_gate_link_cannot_bring_a_stranger_in_as_the_member(
        connected: tuple[Workspace, LiveServer, str], telegram: FakeTelegram) -> None:
    ws, server, chat = connected
    assert cli(ws.home, "entry", "add", "tg-gate", "--channel", "ads", "--platform", "telegram",
               "--gate", "seed")[0] == 0
    with httpx.Client(base_url=server.url, headers=PHONE) as client:
        client.get("/j/tg-gate")
        form = {"name": "Carol", "need": "leads", "interest": "ads", "stage": "learning", "experience": "no",
                "consent": "on"}  # routed to newbie (a tie with interest keeps the entry's target tier)
        ticket = client.post("/j/tg-gate", data=form)
    assert ticket.status_code == 200, ticket.text[:500]
    link = re.search(r'id="invite" href="([^"]+)"', ticket.text).group(1)  # type: ignore[union-attr]
    carol, stranger = telegram.person("Carol"), telegram.person("Stranger")
    telegram.open_link(carol, link)
    wait_for(lambda: carol in telegram.members(chat))
    telegram.open_link(stranger, link)  # the same personal link, forwarded
    wait_for(lambda: any(m["user_id"] == stranger for m in telegram.sent() if m["private"]))
    assert stranger not in telegram.members(chat)  # no approval for someone else's pass
    [to_stranger] = [m["text"] for m in telegram.sent() if m["private"] and m["user_id"] == stranger]
    assert "/j/tg-gate" in to_stranger  # they are pointed to the gate instead
    assert joined_count(ws) == 1


QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def test_sigkill_between_the_welcome_and_the_approval_sends_no_second_welcome(
        tmp_path: Path, telegram: FakeTelegram) -> None:
    ws = init_workspace(tmp_path / "ws")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    set_public_url(ws.home, url)
    chat = set_up(ws.home, telegram, "webhook")

    def serve() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([*QUNFLOW, "serve", "--port", str(port), "--workspace", str(ws.home)],
                                   env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for(lambda: _healthy(url), 60)  # a start-up on a busy 2-core machine can take 20 s
        return process

    first = serve()
    try:
        link = invite_from_landing(url, "tg-ads")
        held = telegram.hold("approveChatJoinRequest")
        dave = telegram.person("Dave")
        telegram.open_link(dave, link)
        wait_for(lambda: telegram.calls("approveChatJoinRequest"))  # the DM went, the approval is under way
        assert len([m for m in telegram.sent() if m["private"]]) == 1
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        held.set()  # the cut-off call ends without approving
    finally:
        if first.poll() is None:
            first.kill()
    second = serve()  # Telegram delivers the join request again: its webhook never got an answer
    try:
        wait_for(lambda: dave in telegram.members(chat), 20)
        wait_for(lambda: joined_count(ws) == 1, 10)
        assert len([m for m in telegram.sent() if m["private"]]) == 1  # no second welcome
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(10)
    ws.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def test_set_up_mistakes_exit_2_with_what_to_change(connected: tuple[Workspace, LiveServer, str],
                                                   telegram: FakeTelegram) -> None:
    ws, _server, _chat = connected
    not_admin = telegram.make_group("Elsewhere", bot_admin=False)
    code, out = cli(ws.home, "group", "add", "other", "--tier", "core", "--platform", "telegram",
                    "--external-id", not_admin)
    assert code == 2 and "administrator" in out
    code, out = cli(ws.home, "entry", "add", "x" * 32 + "y", "--channel", "ads", "--platform", "telegram")
    assert code == 2 and ("32" in out or "at most" in out)
    code, out = cli(ws.home, "group", "add", "g", "--tier", "core", "--platform", "myspace", "--external-id", "1")
    assert code == 2 and "unknown platform" in out
    code, out = cli(ws.home, "connect", "telegram", "--bot-token", "123:not-the-token-at-all-xxxxxxxx",
                    "--api-base", telegram.api_base)
    assert code == 2 and "123:not" not in out
    assert cli(ws.home, "events", "count")[1].strip() == "0"


def test_polling_mode_needs_no_public_url(tmp_path: Path, telegram: FakeTelegram) -> None:
    from qunflow.services.join import entry_invite
    from qunflow.services.runtime import poll_loops
    from qunflow.workspace import open_workspace

    home = init_workspace(tmp_path / "ws").home
    chat = set_up(home, telegram, "polling")
    assert telegram.calls("deleteWebhook") and not telegram.calls("setWebhook")  # polling: no webhook
    ws = open_workspace(home)
    [loop] = poll_loops(ws)
    loop.start()
    try:
        erin = telegram.person("Erin")
        telegram.open_link(erin, entry_invite(ws, "tg-ads")[2].url)
        wait_for(lambda: erin in telegram.members(chat))
        wait_for(lambda: joined_count(ws) == 1)
        assert len([m for m in telegram.sent() if m["private"]]) == 1
    finally:
        loop.stop()
        ws.close()


def test_an_approved_request_is_a_join_even_without_the_member_update(
        connected: tuple[Workspace, LiveServer, str], telegram: FakeTelegram) -> None:
    ws, server, chat = connected
    [(_m, registered, _t)] = telegram.calls("setWebhook")
    from qunflow.connectors.telegram.api import BotApi

    # Telegram sends chat_member only to an admin bot that asks for it: here it does not come at all.
    BotApi(TOKEN, telegram.api_base).set_webhook(registered["url"], registered["secret_token"],
                                                 ["chat_join_request", "message"])
    link = invite_from_landing(server, "tg-ads")
    frank = telegram.person("Frank")
    telegram.open_link(frank, link)
    wait_for(lambda: frank in telegram.members(chat))
    wait_for(lambda: joined_count(ws) == 1)
    time.sleep(0.3)
    assert joined_count(ws) == 1
    code, out = cli(ws.home, "metrics", "--by", "channel", "--format", "json")
    assert {r["channel"]: r for r in json.loads(out)["rows"]}["ads"]["cohort_size"] == 1


def test_a_polled_update_whose_handling_failed_comes_back_instead_of_being_confirmed(
        tmp_path: Path, telegram: FakeTelegram) -> None:
    from qunflow.services.join import entry_invite
    from qunflow.services.runtime import poll_once
    from qunflow.workspace import open_workspace

    home = init_workspace(tmp_path / "ws").home
    chat = set_up(home, telegram, "polling")
    ws = open_workspace(home)
    link = entry_invite(ws, "tg-ads")[2].url
    gina, hal = telegram.person("Gina"), telegram.person("Hal")
    telegram.open_link(gina, link)
    telegram.open_link(hal, link)
    telegram.fail_next("approveChatJoinRequest", 500, "Internal Server Error")
    connector = ws.connector("telegram")
    with pytest.raises(Exception, match="Internal Server Error"):
        poll_once(ws, connector, 0)  # Gina's approval fails: her update and Hal's are not confirmed
    for _ in range(5):  # they come back; each is handled once
        poll_once(ws, connector, 0)
    assert {gina, hal} <= telegram.members(chat)
    assert len([m for m in telegram.sent() if m["private"]]) == 2  # one welcome each, none repeated
    ws.close()


class Clock:
    """One moved clock for qunflow (naive UTC datetimes) and the fake Bot API (Unix seconds)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def unix(self) -> float:
        return time.time() + self.ahead

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.unix(), UTC).replace(tzinfo=None)


def test_an_expired_entry_link_is_refused_never_handed_out_again_and_revoked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qunflow.services.invites import revoke_expired

    monkeypatch.setenv("QUNFLOW_TELEGRAM_ENTRY_LINK_HOURS", "1")
    clock = Clock()
    ws = init_workspace(tmp_path / "ws")
    ws.clock = clock.utc
    with FakeTelegram(clock=clock.unix) as telegram, LiveServer(ws) as server:
        set_public_url(ws.home, server.url)
        ws.settings.public_url = server.url
        chat = set_up(ws.home, telegram, "webhook")
        first = invite_from_landing(server, "tg-ads")
        [(_m, created, _t)] = telegram.calls("createChatInviteLink")
        assert abs(created["expire_date"] - (clock.unix() + 3600)) < 5  # entry_link_hours = 1
        assert invite_from_landing(server, "tg-ads") == first  # still the same link within its hour

        clock.ahead = 2 * 3600.0
        alice = telegram.person("Alice")
        assert telegram.open_link(alice, first) == "refused"  # Telegram enforces expire_date
        assert telegram.calls("revokeChatInviteLink") == []
        telegram.fail_next("revokeChatInviteLink", 429, "Too Many Requests: retry after 1", retry_after=1)
        assert revoke_expired(ws) == 0  # rate limited: left for the next sweep
        assert revoke_expired(ws) == 1
        [_limited, (_m, revoked, _t)] = telegram.calls("revokeChatInviteLink")
        assert revoked["invite_link"] == first
        assert revoke_expired(ws) == 0  # once

        second = invite_from_landing(server, "tg-ads")  # /j/CODE makes a new one
        assert second != first
        assert telegram.open_link(alice, second) == "requested"
        wait_for(lambda: alice in telegram.members(chat))
        wait_for(lambda: joined_count(ws) == 1)

        clock.ahead = 4 * 3600.0  # expired again: the landing page retires it itself, before any sweep
        third = invite_from_landing(server, "tg-ads")
        assert third not in (first, second)
        assert [p["invite_link"] for _m, p, _t in telegram.calls("revokeChatInviteLink")] == [first, first, second]
        assert revoke_expired(ws) == 0
    ws.close()


def test_a_gate_pass_link_expires_with_the_pass(connected: tuple[Workspace, LiveServer, str],
                                                telegram: FakeTelegram) -> None:
    ws, server, _chat = connected
    assert cli(ws.home, "entry", "add", "tg-gate", "--channel", "ads", "--platform", "telegram",
               "--gate", "seed")[0] == 0
    with httpx.Client(base_url=server.url, headers=PHONE) as client:
        client.get("/j/tg-gate")
        form = {"name": "Dora", "need": "leads", "interest": "ads", "stage": "learning", "experience": "no",
                "consent": "on"}
        ticket = client.post("/j/tg-gate", data=form, params={"lang": "en"})
    assert ticket.status_code == 200
    [(_m, created, _t)] = telegram.calls("createChatInviteLink")
    assert created["creates_join_request"] is True
    assert abs(created["expire_date"] - (time.time() + 24 * 3600)) < 5  # pass_link_hours' default: a day
    # the person is told until when, in the workspace's zone, to the minute
    shown = re.search(r'id="link-expiry">[^<]*<time datetime="([^"]+)"', ticket.text)
    assert shown is not None, ticket.text[:800]
    assert abs(datetime.fromisoformat(shown.group(1).replace("Z", "+00:00")).timestamp() - created["expire_date"]) < 60


def test_connect_sets_link_lifetimes_and_a_reconnect_keeps_them(tmp_path: Path, telegram: FakeTelegram) -> None:
    from qunflow.settings import platform_sections

    home = init_workspace(tmp_path / "ws").home
    base = ["connect", "telegram", "--bot-token", TOKEN, "--api-base", telegram.api_base]
    assert cli(home, *base, "--entry-link-hours", "72")[0] == 0
    assert platform_sections(home)["telegram"]["entry_link_hours"] == 72
    assert cli(home, *base)[0] == 0  # connecting again (a new token, another mode) keeps the lifetime
    assert platform_sections(home)["telegram"]["entry_link_hours"] == 72
    code, out = cli(home, *base, "--pass-link-hours", "0")
    assert code == 2 and "pass_link_hours" in out and "greater than or equal to 0.25" in out, out
    assert "pass_link_hours" not in platform_sections(home)["telegram"]  # nothing changed
