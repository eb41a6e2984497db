"""The whole chain on Discord, over real HTTP and a real WebSocket Gateway (tests/fakes/discord_server.py).

landing page -> the entry point's tracked invite -> the person joins (the invite's use count moves, the
Gateway dispatches GUILD_MEMBER_ADD) -> `qunflow serve`'s poll attributes the join by use counts -> welcome
DM (with a nonce) -> the join in `qunflow metrics --by channel`; ambiguous joins stay unattributed; signed
interactions refused when forged, replayed or stale; a 429 waited out; a repeated dispatch does nothing twice;
and the real `qunflow serve` holding the Gateway.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.engine.outbox import deliver
from qunflow.services.runtime import poll_once
from qunflow.store.tables import events
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import LiveServer, free_port
from tests.fakes.discord_server import TOKEN, FakeDiscord

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--workspace", str(home)])
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


def wait_for(check: Callable[[], object], seconds: float = 10.0) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture(params=["sqlite", "postgres"])
def connected(request: pytest.FixtureRequest, tmp_path: Path, discord: FakeDiscord,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, LiveServer, str]]:
    """A served workspace (on SQLite, then on PostgreSQL) connected to the fake Discord, one server as the
    newbie group, and the gate-less entry points dc-ads (channel ads) and dc-blog (channel blog). The Gateway
    is open (as `serve` opens it)."""
    if request.param == "postgres":
        monkeypatch.setenv("QUNFLOW_DATABASE_URL", request.getfixturevalue("pg_url"))
    ws = init_workspace(tmp_path / "ws")
    server = LiveServer(ws)
    settings = ws.home / "qunflow.toml"
    settings.write_text(settings.read_text().replace("http://127.0.0.1:8000", server.url))
    ws.settings.public_url = server.url
    guild = discord.make_guild("Newbies")
    with server:
        code, out = cli(ws.home, "connect", "discord", "--bot-token", TOKEN, "--api-base", discord.api_base,
                        "--public-key", discord.public_key)
        assert code == 0, out
        assert TOKEN not in out and TOKEN not in settings.read_text().replace(f'bot_token = "{TOKEN}"', "")
        assert cli(ws.home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "discord",
                   "--external-id", guild)[0] == 0
        for channel in ("ads", "blog"):
            assert cli(ws.home, "channel", "add", channel, "--kind", "ad")[0] == 0
            assert cli(ws.home, "entry", "add", f"dc-{channel}", "--channel", channel, "--platform", "discord")[0] == 0
        connector = ws.connector("discord")
        connector.start_gateway()  # type: ignore[attr-defined]
        discord.wait_identified()
        try:
            yield ws, server, guild
        finally:
            connector.close()  # type: ignore[attr-defined]
    ws.close()


def invite_from_landing(server: LiveServer, code: str) -> str:
    page = httpx.get(f"{server.url}/j/{code}")
    assert page.status_code == 200, page.text
    return re.search(r'id="invite" href="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def count(ws: Workspace, kind: str) -> int:
    return int(cli(ws.home, "events", "count", "--type", kind)[1].strip())


def pump(ws: Workspace, until: Callable[[], bool]) -> None:
    """What `qunflow serve` does in its poll loop, until the condition holds."""
    connector = ws.connector("discord")
    deadline = time.monotonic() + 10
    while not until():
        assert time.monotonic() < deadline, "timed out polling the Gateway"
        poll_once(ws, connector, 0.3)


def attributions(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(events.c.properties).where(events.c.type == "joined").order_by(events.c.ts))
        return [row.properties["attribution"] for row in rows]


def by_channel(ws: Workspace) -> dict[str, int]:
    return by_channel_at(ws.home)


def test_landing_invite_join_welcome_then_metrics(connected: tuple[Workspace, LiveServer, str],
                                                  discord: FakeDiscord) -> None:
    ws, server, guild = connected
    assert discord.identifies[0]["intents"] & (1 << 1)  # GUILD_MEMBERS, the privileged intent for joins
    link = invite_from_landing(server, "dc-ads")
    assert link.startswith("https://discord.gg/")
    assert invite_from_landing(server, "dc-ads") == link  # one invite per entry point, made once
    [(_m, _route, created, _at, _p)] = discord.calls("POST /channels/{id}/invites")
    assert created["max_age"] == 0 and created["unique"] is True

    alice = discord.person("Alice")
    assert discord.join(alice, link) == guild
    pump(ws, lambda: count(ws, "joined") == 1)
    [dm] = discord.sent(private=True)
    assert dm["user_id"] == alice and "Alice" in dm["content"] and dm["nonce"]
    posts = discord.calls("POST /channels/{id}/messages")
    assert posts and all(p[2]["enforce_nonce"] is True and 0 < len(str(p[2]["nonce"])) <= 25 for p in posts)
    assert by_channel(ws).get("ads") == 1
    assert attributions(ws) == ["entry_point"]  # the label of the one invite that moved

    discord.leave(alice, guild)
    pump(ws, lambda: count(ws, "left") == 1)


def test_joins_whose_invite_cannot_be_told_apart_stay_unattributed(
        connected: tuple[Workspace, LiveServer, str], discord: FakeDiscord) -> None:
    ws, server, _guild = connected
    ads, blog = invite_from_landing(server, "dc-ads"), invite_from_landing(server, "dc-blog")
    # Two people join through two tracked invites before qunflow looks: both counts moved, so neither join
    # can be said to come from one of them.
    bob, carol = discord.person("Bob"), discord.person("Carol")
    discord.join(bob, ads)
    discord.join(carol, blog)
    pump(ws, lambda: count(ws, "joined") == 2)
    rows = by_channel(ws)
    assert rows.get("ads", 0) == 0 and rows.get("blog", 0) == 0
    assert attributions(ws) == ["not_reported", "not_reported"]  # said so, not guessed
    # Then one alone: attributed again.
    dave = discord.person("Dave")
    discord.join(dave, blog)
    pump(ws, lambda: count(ws, "joined") == 3)
    assert by_channel(ws).get("blog") == 1
    assert attributions(ws)[-1] == "entry_point"


def test_forged_replayed_and_stale_interactions_are_refused_and_change_nothing(
        connected: tuple[Workspace, LiveServer, str], discord: FakeDiscord) -> None:
    ws, server, _guild = connected
    hook = f"{server.url}/hooks/discord"
    ping = b'{"type":1,"id":"1","application_id":"2","token":"t","version":1}'
    headers = discord.sign(ping)
    answer = httpx.post(hook, content=ping, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"type": 1}
    again = httpx.post(hook, content=ping, headers=headers)  # the same call again
    assert again.status_code == 401 and again.json() == {
        "error": "discord interactions refused: this signed call was already received (a replay)",
        "error_zh": "已拒绝 Discord 交互请求:这个签名请求已经收到过(重放)"}
    forged = {**discord.sign(ping), "X-Signature-Ed25519": "ab" * 64}
    assert httpx.post(hook, content=ping, headers=forged).status_code == 401
    stale = discord.sign(ping, timestamp=str(int(time.time()) - 3600))
    assert httpx.post(hook, content=ping, headers=stale).status_code == 401
    tampered = discord.sign(ping)
    assert httpx.post(hook, content=ping.replace(b'"t"', b'"u"'), headers=tampered).status_code == 401
    assert cli(ws.home, "events", "count")[1].strip() == "0"
    assert discord.sent() == []


def test_a_429_is_waited_out_and_a_repeated_dispatch_does_nothing_twice(
        connected: tuple[Workspace, LiveServer, str], discord: FakeDiscord) -> None:
    ws, server, guild = connected
    link = invite_from_landing(server, "dc-ads")
    discord.fail_next("POST /channels/{id}/messages", retry_after=1.0)  # the first send after the join
    erin = discord.person("Erin")
    discord.join(erin, link)
    pump(ws, lambda: count(ws, "joined") == 1)
    posts = discord.calls("POST /channels/{id}/messages")
    assert len(discord.sent()) == len(posts) - 1  # the 429'd one waits in the outbox
    time.sleep(1.1)
    assert deliver(ws).sent == 1
    [dm] = discord.sent(private=True)
    assert dm["user_id"] == erin
    posts = discord.calls("POST /channels/{id}/messages")
    [(first, again)] = [(a, b) for i, a in enumerate(posts) for b in posts[i + 1:] if a[2]["nonce"] == b[2]["nonce"]]
    assert again[3] - first[3] >= 1.0  # retried after retry_after, not before, with the same nonce
    assert len(discord.sent()) == len(posts) - 1

    # The Gateway delivers the same GUILD_MEMBER_ADD again (a resumed session replays it): nothing twice.
    joined_at = discord.guilds[guild].members[erin]
    discord.member_event("GUILD_MEMBER_ADD", guild, erin, joined_at)
    connector = ws.connector("discord")
    wait_for(lambda: not connector.start_gateway().events.empty())  # type: ignore[attr-defined]
    assert poll_once(ws, connector, 1.0) == 1
    assert count(ws, "joined") == 1 and len(discord.sent(private=True)) == 1


QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def test_qunflow_serve_holds_the_gateway_and_welcomes_a_join(tmp_path: Path, discord: FakeDiscord) -> None:
    """The real `qunflow serve` process: its poll loop opens the Gateway (IDENTIFY with the members intent,
    heartbeats) and a join through the landing page's invite is welcomed and counted under its channel."""
    home = init_workspace(tmp_path / "ws").home
    port = free_port()
    settings = home / "qunflow.toml"
    settings.write_text(settings.read_text().replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}"))
    guild = discord.make_guild("Newbies")
    code, out = cli(home, "connect", "discord", "--bot-token", "y" * 40, "--api-base", discord.api_base)
    assert code == 2 and "y" * 40 not in out and "token" in out  # a refused token: one line, not echoed
    assert cli(home, "connect", "discord", "--bot-token", TOKEN, "--api-base", discord.api_base)[0] == 0
    assert cli(home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "discord",
               "--external-id", guild)[0] == 0
    assert cli(home, "channel", "add", "ads", "--kind", "ad")[0] == 0
    assert cli(home, "entry", "add", "dc-ads", "--channel", "ads", "--platform", "discord")[0] == 0
    serve = subprocess.Popen([*QUNFLOW, "serve", "--port", str(port), "--workspace", str(home)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        session = discord.wait_identified(30)
        assert session.intents & (1 << 1)
        page = wait_for(lambda: _get(f"http://127.0.0.1:{port}/j/dc-ads"), 30)
        link = re.search(r'id="invite" href="([^"]+)"', str(page)).group(1)  # type: ignore[union-attr]
        zed = discord.person("Zed")
        discord.join(zed, link)
        [dm] = wait_for(lambda: discord.sent(private=True), 15)  # type: ignore[misc]
        assert dm["user_id"] == zed and "Zed" in dm["content"]
    finally:
        serve.terminate()
        serve.wait(20)
    assert by_channel_at(home).get("ads") == 1


def _get(url: str) -> str | None:
    try:
        answer = httpx.get(url)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None


def by_channel_at(home: Path) -> dict[str, int]:
    code, out = cli(home, "metrics", "--by", "channel", "--format", "json")
    assert code == 0, out
    return {row["channel"]: row["cohort_size"] for row in json.loads(out)["rows"]}


def test_group_add_takes_a_server_or_a_tier_role_and_says_what_to_fix(
        connected: tuple[Workspace, LiveServer, str], discord: FakeDiscord) -> None:
    ws, _server, guild = connected
    core = discord.make_role(guild, "core")
    above = discord.make_role(guild, "admins", position=5)
    assert cli(ws.home, "group", "add", "core-1", "--tier", "core", "--platform", "discord",
               "--external-id", f"{guild}:{core}")[0] == 0
    code, out = cli(ws.home, "group", "add", "admins", "--tier", "core", "--platform", "discord",
                    "--external-id", f"{guild}:{above}")
    assert code == 2 and "role above" in out, out
    code, out = cli(ws.home, "group", "add", "bad", "--tier", "core", "--platform", "discord", "--external-id", "abc")
    assert code == 2 and "server id" in out, out
