"""The whole chain on Slack, over real HTTP against a local Web API and Events API (tests/fakes/slack_server.py).

landing page -> link to a DM with the app -> `join <code>` (a signed message.im event) -> welcome DM ->
conversations.invite -> the join in `qunflow metrics --by channel`; then the member_joined_channel that
follows, Slack's retries (same event_id), refused signatures and stale timestamps, a 429 with Retry-After,
and a join Slack reports without any invite (recorded as not_reported, never guessed).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.store.tables import events
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import LiveServer
from tests.fakes.slack_server import FakeSlack
from tests.integration.test_join_flow import PHONE

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--workspace", str(home)])
    return result.exit_code, result.stdout + (result.stderr if result.stderr_bytes else "")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def connected(tmp_path: Path, slack: FakeSlack) -> Iterator[tuple[Workspace, LiveServer, str]]:
    """A workspace on loopback connected to the fake Slack, one newbie channel and the entry sl-ads (channel
    ads). Yields the workspace, the server and the channel id."""
    ws = init_workspace(tmp_path / "ws")
    server = LiveServer(ws)
    settings = ws.home / "qunflow.toml"
    settings.write_text(settings.read_text().replace("http://127.0.0.1:8000", server.url))
    ws.settings.public_url = server.url
    channel = slack.make_channel("newbies")
    slack.events_url = f"{server.url}/hooks/slack"
    with server:
        code, out = cli(ws.home, "connect", "slack", "--bot-token", slack.bot_token, "--signing-secret",
                        slack.signing_secret, "--api-base", slack.api_base)
        assert code == 0, out
        assert slack.bot_token not in out and slack.signing_secret not in out
        assert f"{server.url}/hooks/slack" in out
        assert cli(ws.home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "slack",
                   "--external-id", channel)[0] == 0
        assert cli(ws.home, "channel", "add", "ads", "--kind", "ad")[0] == 0
        assert cli(ws.home, "entry", "add", "sl-ads", "--channel", "ads", "--platform", "slack")[0] == 0
        yield ws, server, channel
    ws.close()


def joined(ws: Workspace) -> int:
    return int(cli(ws.home, "events", "count", "--type", "joined")[1].strip())


def all_events(ws: Workspace) -> int:
    return int(cli(ws.home, "events", "count")[1].strip())


def invite_from_landing(server: LiveServer, code: str) -> str:
    page = httpx.get(f"{server.url}/j/{code}")
    assert page.status_code == 200, page.text
    return re.search(r'id="invite" href="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def test_the_request_url_check_is_answered_with_the_challenge(
        connected: tuple[Workspace, LiveServer, str], slack: FakeSlack) -> None:
    check = slack.verify_url()
    assert check.status == 200 and check.content_type.startswith("text/plain")
    assert check.reply.decode() == json.loads(check.body)["challenge"]


def test_landing_code_to_the_bot_welcome_invite_then_metrics(
        connected: tuple[Workspace, LiveServer, str], slack: FakeSlack) -> None:
    ws, server, channel = connected
    link = urlsplit(invite_from_landing(server, "sl-ads").replace("&amp;", "&"))
    assert (link.scheme, link.netloc, link.path) == ("https", "slack.com", "/app_redirect")
    assert parse_qs(link.query) == {"app": [slack.app_id], "team": [slack.team_id]}  # a DM with our app
    page = httpx.get(f"{server.url}/j/sl-ads").text
    assert re.search(r'id="join-message">[^<]*<code>join sl-ads</code>', page)  # what to send: the link cannot

    alice = slack.person("Alice")
    answer = slack.dm(alice, "join sl-ads")
    assert answer.status == 200
    assert alice in slack.members(channel)
    [welcome] = slack.direct_messages(alice)
    assert f"<@{alice}>" in welcome  # Slack shows the mention as the person's name
    order = [name for name, _p in slack.state.calls if name in ("chat.postMessage", "conversations.invite")]
    assert order[:2] == ["chat.postMessage", "conversations.invite"]  # welcomed, then let in
    assert joined(ws) == 1

    # Slack then sends member_joined_channel (inviter: the bot): the same join, not a second one.
    [after] = slack.deliver_pending()
    assert after.status == 200 and json.loads(after.body)["event"]["inviter"] == slack.bot_user
    assert joined(ws) == 1
    code, out = cli(ws.home, "metrics", "--by", "channel", "--format", "json")
    assert code == 0, out
    rows = {row["channel"]: row for row in json.loads(out)["rows"]}
    assert rows["ads"]["cohort_size"] == 1

    # Slack retries deliveries it saw no timely answer to (X-Slack-Retry-Num, same event_id): nothing twice.
    for retry in (1, 2):
        assert slack.redeliver_last(retry).status == 200
    slack.deliveries.append(slack.deliveries[0])
    assert slack.redeliver_last(1).status == 200  # the `join` message again
    assert joined(ws) == 1 and len(slack.direct_messages(alice)) == 1
    assert len(slack.calls("conversations.invite")) == 1


def test_bad_signatures_and_stale_timestamps_are_refused_and_change_nothing(
        connected: tuple[Workspace, LiveServer, str], slack: FakeSlack) -> None:
    ws, server, channel = connected
    invite_from_landing(server, "sl-ads")
    mallory = slack.person("Mallory")
    im = slack.dm(mallory, "hello")  # a real DM first, so the forged ones below name a real conversation
    before = all_events(ws)
    body = slack.envelope({"type": "message", "channel": json.loads(im.body)["event"]["channel"], "user": mallory,
                           "text": "join sl-ads", "ts": "1.000001", "channel_type": "im"})
    url = f"{server.url}/hooks/slack"
    good = slack.signed(body)
    signature = good["X-Slack-Signature"]  # its last hex digit changed (never to itself: "00" once was, 1 in 256)
    tampered = {**good, "X-Slack-Signature": signature[:-1] + ("1" if signature[-1] == "0" else "0")}
    wrong_key = slack.signed(body, secret="ab" * 16)
    stale = slack.signed(body, timestamp=int(time.time()) - 301)  # correctly signed, a second past the five minutes
    missing = {"Content-Type": "application/json"}
    for headers in (tampered, wrong_key, stale, missing):
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert "slack" in answer.json()["error"].lower()
    assert "five minutes" in httpx.post(url, content=body, headers=stale).json()["error"]
    assert all_events(ws) == before
    assert slack.calls("conversations.invite") == [] and slack.direct_messages(mallory) == []
    assert mallory not in slack.members(channel)


def test_a_429_is_waited_out_with_retry_after(
        connected: tuple[Workspace, LiveServer, str], slack: FakeSlack) -> None:
    ws, server, channel = connected
    invite_from_landing(server, "sl-ads")
    slack.rate_limit_next("chat.postMessage", retry_after=1)
    bob = slack.person("Bob")
    assert slack.dm(bob, "join sl-ads").status == 200
    posts = [at for (name, params), at in zip(slack.state.calls, slack.state.call_times, strict=True)
             if name == "chat.postMessage" and params.get("channel") != channel]
    [invited_at] = [at for (name, _p), at in zip(slack.state.calls, slack.state.call_times, strict=True)
                    if name == "conversations.invite"]
    assert len(posts) == 2 and posts[1] - posts[0] >= 1.0  # refused, then once Retry-After had passed
    assert posts[1] < invited_at
    assert slack.direct_messages(bob) and bob in slack.members(channel) and joined(ws) == 1


def test_a_join_slack_reports_without_an_invite_is_recorded_not_reported_never_guessed(
        connected: tuple[Workspace, LiveServer, str], slack: FakeSlack) -> None:
    ws, server, channel = connected
    invite_from_landing(server, "sl-ads")
    carol = slack.person("Carol")
    assert slack.join_channel(carol, channel).status == 200  # she found the public channel herself
    assert joined(ws) == 1
    with ws.engine.connect() as conn:
        [row] = conn.execute(select(events.c.channel, events.c.entry_point, events.c.properties)
                             .where(events.c.type == "joined")).all()
    assert row.channel is None and row.entry_point is None
    assert row.properties["attribution"] == "not_reported"
    assert slack.direct_messages(carol)  # welcomed all the same: a bot may DM any member


def test_a_message_without_a_known_code_is_just_a_message(
        connected: tuple[Workspace, LiveServer, str], slack: FakeSlack) -> None:
    ws, server, channel = connected
    dave = slack.person("Dave")
    assert slack.dm(dave, "join no-such-code").status == 200
    assert dave not in slack.members(channel) and slack.calls("conversations.invite") == []
    assert joined(ws) == 0


def test_a_gate_pass_code_admits_its_owner_and_a_forwarded_copy_gets_the_gate(
        connected: tuple[Workspace, LiveServer, str], slack: FakeSlack) -> None:
    ws, server, channel = connected
    assert cli(ws.home, "entry", "add", "sl-gate", "--channel", "ads", "--platform", "slack",
               "--gate", "seed")[0] == 0
    with httpx.Client(base_url=server.url, headers=PHONE) as client:
        client.get("/j/sl-gate")
        form = {"name": "Carol", "need": "leads", "interest": "ads", "stage": "learning", "experience": "no",
                "consent": "on"}
        ticket = client.post("/j/sl-gate", data=form)
    assert ticket.status_code == 200, ticket.text[:500]
    said = re.search(r'id="join-message">[^<]*<code>(join t[0-9a-f]+)</code>', ticket.text)
    assert said is not None  # the person's own code, shown on the ticket page
    carol, stranger = slack.person("Carol"), slack.person("Stranger")
    assert slack.dm(carol, said.group(1)).status == 200
    assert carol in slack.members(channel) and joined(ws) == 1
    assert slack.dm(stranger, said.group(1)).status == 200  # the same code, forwarded
    assert stranger not in slack.members(channel) and joined(ws) == 1
    [to_stranger] = slack.direct_messages(stranger)
    assert "/j/sl-gate" in to_stranger  # pointed to the gate instead
