"""The Slack connector against the local Web API (tests/fakes/slack_server.py): errors, DMs, set-up."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.connectors.base import Host, MemberLeft
from qunflow.connectors.slack.connector import SlackConnector
from qunflow.connectors.slack.settings import SlackSettings
from qunflow.errors import PlatformError, RateLimited, Unreachable
from qunflow.workspace import init_workspace
from tests.contract.harness import host
from tests.fakes.slack_server import FakeSlack

runner = CliRunner()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def make(slack: FakeSlack, tmp_path: Path, token: str | None = None) -> SlackConnector:
    settings = SlackSettings(bot_token=token or slack.bot_token, signing_secret=slack.signing_secret,
                             api_base=slack.api_base)
    made: Host = host(tmp_path)
    return SlackConnector(settings, made)


def test_a_429_raises_rate_limited_with_retry_after(slack: FakeSlack, tmp_path: Path) -> None:
    slack.rate_limit_next("chat.postMessage", retry_after=7)
    channel = slack.make_channel("general")
    with pytest.raises(RateLimited) as raised:
        make(slack, tmp_path).post_to_group(channel, "hi")
    assert raised.value.retry_after == 7


def test_a_dm_opens_the_conversation_first_and_an_unknown_person_is_unreachable(
        slack: FakeSlack, tmp_path: Path) -> None:
    connector = make(slack, tmp_path)
    erin = slack.person("Erin")
    sent = connector.send_direct(erin, "欢迎")
    assert slack.direct_messages(erin) == ["欢迎"] and sent.message_id.startswith("D")
    assert [c["users"] for c in slack.calls("conversations.open")] == [erin]
    with pytest.raises(Unreachable):
        connector.send_direct("U0NOBODY00", "hi")


def test_a_refused_token_says_what_to_do_and_never_shows_it(slack: FakeSlack, tmp_path: Path) -> None:
    wrong = "xoxb-0000-1111-notthetoken"
    with pytest.raises(PlatformError) as raised:
        make(slack, tmp_path, token=wrong).post_to_group(slack.make_channel("general"), "hi")
    assert "invalid_auth" in str(raised.value) and "OAuth & Permissions" in str(raised.value)
    assert wrong not in str(raised.value) and wrong not in repr(make(slack, tmp_path, token=wrong))


def test_check_group_says_how_to_invite_the_bot(slack: FakeSlack, tmp_path: Path) -> None:
    connector = make(slack, tmp_path)
    assert connector.check_group(slack.make_channel("newbies")) == []
    [outside] = connector.check_group(slack.make_channel("elsewhere", bot_member=False))
    assert "/invite @qunflow" in outside
    [hidden] = connector.check_group(slack.make_channel("private-x", bot_member=False, private=True))
    assert "channel_not_found" in hidden and "/invite" in hidden


def test_a_revoked_code_no_longer_asks_to_join(slack: FakeSlack, tmp_path: Path) -> None:
    connector = make(slack, tmp_path)
    channel = slack.make_channel("newbies")
    link = connector.create_invite(channel, "sl-old")
    assert connector._channel_of("sl-old") == channel
    connector.revoke_invite(channel, link)
    assert connector._channel_of("sl-old") is None


def test_connect_saves_the_ids_and_keeps_secrets_from_the_environment_out_of_the_file(
        slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = init_workspace(tmp_path / "ws")
    monkeypatch.setenv("QUNFLOW_SLACK_SIGNING_SECRET", slack.signing_secret)
    result = runner.invoke(app, ["connect", "slack", "--bot-token", slack.bot_token, "--api-base", slack.api_base,
                                 "--workspace", str(ws.home)])
    assert result.exit_code == 0, result.output
    section = tomllib.loads((ws.home / "qunflow.toml").read_text())["platforms"]["slack"]
    assert section["team_id"] == slack.team_id and section["app_id"] == slack.app_id
    assert section["bot_token"] == slack.bot_token and "signing_secret" not in section
    ws.close()


@pytest.mark.parametrize(("args", "says"), [
    (["--bot-token", "xoxp-user-token-1234"], "xoxb-"),
    (["--bot-token", "xoxb-1234-5678-abcdefgh", "--signing-secret", "not hex!"], "Signing Secret"),
    (["--signing-secret", "0123456789abcdef0123456789abcdef"], "--bot-token"),
])
def test_set_up_mistakes_exit_2_with_what_to_change(slack: FakeSlack, tmp_path: Path, args: list[str],
                                                    says: str) -> None:
    ws = init_workspace(tmp_path / "ws")
    if "--signing-secret" not in args:
        args = [*args, "--signing-secret", slack.signing_secret]
    result = runner.invoke(app, ["connect", "slack", *args, "--api-base", slack.api_base, "--workspace",
                                 str(ws.home)])
    assert result.exit_code == 2 and says in result.output, result.output
    assert "platforms" not in (ws.home / "qunflow.toml").read_text()
    ws.close()


def test_remove_member_kicks_from_the_channel_and_slack_reports_a_leave(slack: FakeSlack, tmp_path: Path) -> None:
    from qunflow.connectors.slack import CAPABILITIES

    connector = make(slack, tmp_path)
    channel = slack.make_channel("newbies")
    erin = slack.person("Erin")
    connector.approve_join(channel, erin)  # conversations.invite
    slack.state.pending.clear()
    assert CAPABILITIES.removes_members and erin in slack.members(channel)
    connector.remove_member(channel, erin)
    assert erin not in slack.members(channel)
    assert slack.calls("conversations.kick") == [{"channel": channel, "user": erin}]
    [event] = slack.state.pending  # what Slack then sends to the events URL
    body = slack.envelope(event)
    [update] = connector.receive("POST", {}, slack.signed(body), body).updates
    assert isinstance(update, MemberLeft) and (update.group_id, update.user_id) == (channel, erin)
    connector.remove_member(channel, erin)  # out already: not an error
