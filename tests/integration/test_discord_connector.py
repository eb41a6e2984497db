"""The Discord connector against tests/fakes/discord_server.py over real HTTP (and the Gateway where joins
are involved): attribution by invite use counts, rate-limit buckets, 429s, closed DMs, nonces, set-up checks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qunflow.connectors.base import MemberJoined
from qunflow.connectors.discord.api import DiscordApi
from qunflow.connectors.discord.connector import DiscordConnector
from qunflow.connectors.discord.settings import DiscordSettings
from qunflow.errors import InvalidInput, RateLimited, Unauthorized, Unreachable
from tests.contract.harness import host
from tests.fakes.discord_server import TOKEN, FakeDiscord


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord() as made:
        yield made


@pytest.fixture
def connector(fake: FakeDiscord, tmp_path: Path) -> Iterator[DiscordConnector]:
    made = DiscordConnector(DiscordSettings(bot_token=TOKEN, api_base=fake.api_base), host(tmp_path))
    yield made
    made.close()


def joins(connector: DiscordConnector, fake: FakeDiscord, expected: int) -> list[MemberJoined]:
    connector.start_gateway()
    fake.wait_identified()
    found: list[MemberJoined] = []
    deadline = time.monotonic() + 10
    while len(found) < expected:
        assert time.monotonic() < deadline
        found += [u for u in connector.poll(0.3) if isinstance(u, MemberJoined)]
    return found


def test_only_a_lone_move_of_one_tracked_invite_attributes_a_join(connector: DiscordConnector,
                                                                  fake: FakeDiscord) -> None:
    guild = fake.make_guild("Newbies")
    connector.start_gateway()
    fake.wait_identified()
    ads = connector.create_invite(guild, "ads")
    one = connector.create_invite(guild, "pass-1", single_use=True)
    # One alone through a tracked invite: attributed.
    fake.join(fake.person("A"), ads.url)
    assert [j.invite_label for j in joins(connector, fake, 1)] == ["ads"]
    # A single-use invite is deleted by Discord when used: its vanishing is its use.
    fake.join(fake.person("B"), one.url)
    assert [j.invite_label for j in joins(connector, fake, 1)] == ["pass-1"]
    # An invite someone made by hand moved together with ours: ambiguous, for both joins.
    fake.invites["byhand01"] = type(fake.invites[ads.handle or ""])(
        "byhand01", guild, fake.guilds[guild].channels[0]["id"], 0, 0, time.time())
    fake.join(fake.person("C"), "byhand01")
    fake.join(fake.person("D"), ads.url)
    assert [j.invite_label for j in joins(connector, fake, 2)] == [None, None]
    # Someone joining by a hand-made invite alone is not ours to claim.
    fake.join(fake.person("E"), "byhand01")
    assert [j.invite_label for j in joins(connector, fake, 1)] == [None]


def test_without_manage_server_joins_stay_unattributed(connector: DiscordConnector, fake: FakeDiscord) -> None:
    guild = fake.make_guild("Locked", permissions=1 | (1 << 10) | (1 << 11))  # invites, yes; reading them, no
    link = connector.create_invite(guild, "ads")
    connector.start_gateway()
    fake.wait_identified()
    fake.join(fake.person("A"), link.url)
    assert [j.invite_label for j in joins(connector, fake, 1)] == [None]
    assert any("Manage Server" in fix for fix in connector.check_group(guild))


def test_an_empty_bucket_is_waited_out_before_asking(fake: FakeDiscord) -> None:
    fake.bucket_limit, fake.bucket_seconds = 2, 0.6
    guild = fake.make_guild("Newbies")
    channel = fake.guilds[guild].channels[0]["id"]
    api = DiscordApi(TOKEN, fake.api_base)
    started = time.monotonic()
    for n in range(3):
        api.send_message(channel, f"m{n}")
    assert time.monotonic() - started >= 0.4  # the third waited for the bucket's reset
    assert len(fake.sent()) == 3  # and no 429 was ever needed
    other = fake.make_guild("Other")  # another channel: another bucket (top-level ids split them)
    started = time.monotonic()
    api.send_message(fake.guilds[other].channels[0]["id"], "x")
    api.send_message(fake.guilds[other].channels[0]["id"], "y")
    assert time.monotonic() - started < 0.3


def test_a_429_is_rate_limited_with_discords_retry_after(connector: DiscordConnector, fake: FakeDiscord) -> None:
    guild = fake.make_guild("Newbies")
    fake.fail_next("POST /channels/{id}/messages", retry_after=2.5)
    with pytest.raises(RateLimited) as caught:
        connector.post_to_group(guild, "hello")
    assert caught.value.retry_after == 2.5
    assert connector.post_to_group(guild, "hello").message_id


def test_the_same_key_posts_once_and_closed_dms_are_unreachable(connector: DiscordConnector,
                                                                fake: FakeDiscord) -> None:
    fake.make_guild("Newbies")
    alice, bob = fake.person("Alice"), fake.person("Bob")
    first = connector.send_direct(alice, "hi", idempotency_key="welcome:alice:" + "x" * 40)
    again = connector.send_direct(alice, "hi", idempotency_key="welcome:alice:" + "x" * 40)
    assert first == again and len(fake.sent(private=True)) == 1
    fake.close_dms(bob)
    with pytest.raises(Unreachable):
        connector.send_direct(bob, "hi")


def test_set_up_checks(connector: DiscordConnector, fake: FakeDiscord, tmp_path: Path) -> None:
    assert connector.check_group(fake.make_guild("Newbies")) == []
    fixes = connector.check_group(fake.make_guild("Bare", permissions=0))
    assert len(fixes) == 4 and any("Create Invite" in f for f in fixes)
    assert "not in server" in connector.check_group("123456789012345678")[0]
    fake.app_flags = 1 << 18  # message content on, server members off
    with pytest.raises(InvalidInput, match="Server Members Intent"):
        connector.connect()
    wrong = DiscordConnector(DiscordSettings(bot_token="x" * 30, api_base=fake.api_base), host(tmp_path))
    with pytest.raises(Unauthorized) as caught:
        wrong.connect()
    assert "x" * 30 not in str(caught.value)
    with pytest.raises(InvalidInput):
        connector.create_invite("not-a-guild", "ads")


def test_a_rewound_update_comes_back_with_those_after_it(connector: DiscordConnector, fake: FakeDiscord) -> None:
    guild = fake.make_guild("Newbies")
    connector.start_gateway()
    fake.wait_identified()
    alice = fake.person("Alice")
    for text in ("one", "two", "three"):
        fake.say(alice, text, guild)
    gateway = connector.start_gateway()
    deadline = time.monotonic() + 10
    while gateway.events.qsize() < 3:  # all three received, so one poll hands them over together
        assert time.monotonic() < deadline
        time.sleep(0.01)
    seen = [u.text for u in connector.poll(0.3)]  # type: ignore[attr-defined]
    assert seen == ["one", "two", "three"]
    keys = [u.key for u in connector._last]
    connector.rewind(keys[-2] or "")  # "two" failed to be handled: it and "three" come back, "one" does not
    assert [u.text for u in connector.poll(0.1)] == seen[-2:]  # type: ignore[attr-defined]


def test_a_refused_token_stops_the_gateway_without_retrying_in_a_loop(fake: FakeDiscord, tmp_path: Path) -> None:
    from qunflow.errors import PlatformError

    fake.token = "z" * 40  # the Gateway (and REST) now refuse the token the connector has
    made = DiscordConnector(DiscordSettings(bot_token=TOKEN, api_base=fake.api_base), host(tmp_path))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                made.poll(0.2)
            except PlatformError as exc:
                assert TOKEN not in str(exc)
                break
            assert time.monotonic() < deadline
        stopped = made._gateway
        for _ in range(5):
            with pytest.raises(PlatformError):
                made.poll(0.05)
        assert made._gateway is stopped  # not opened again at once (the wait doubles up to 5 minutes)
        assert fake.identifies == []
    finally:
        made.close()


def test_a_tier_is_a_role_given_on_a_join_through_its_invite(connector: DiscordConnector, fake: FakeDiscord) -> None:
    guild = fake.make_guild("Community")
    core = fake.make_role(guild, "core")
    assert connector.check_group(f"{guild}:{core}") == []
    connector.start_gateway()
    fake.wait_identified()
    tier = connector.create_invite(f"{guild}:{core}", "core-entry")
    server = connector.create_invite(guild, "newbie-entry")
    alice, bob = fake.person("Alice"), fake.person("Bob")
    fake.join(alice, tier.url)
    [joined] = joins(connector, fake, 1)
    assert (joined.group_id, joined.invite_label) == (f"{guild}:{core}", "core-entry")
    assert fake.guilds[guild].member_roles[alice] == {core}
    fake.join(bob, server.url)
    [joined] = joins(connector, fake, 1)
    assert (joined.group_id, joined.invite_label) == (guild, "newbie-entry")
    assert bob not in fake.guilds[guild].member_roles
    # Two at once: neither invite can be told apart, so the join is the server's, with no tier role.
    carol, dave = fake.person("Carol"), fake.person("Dave")
    fake.join(carol, tier.url)
    fake.join(dave, server.url)
    assert {(j.group_id, j.invite_label) for j in joins(connector, fake, 2)} == {(guild, None)}
    assert carol not in fake.guilds[guild].member_roles


def test_a_tier_role_the_bot_cannot_give_is_a_fix_to_make(connector: DiscordConnector, fake: FakeDiscord) -> None:
    guild = fake.make_guild("Community")
    above = fake.make_role(guild, "admins", position=5)
    assert "move the bot's role above" in connector.check_group(f"{guild}:{above}")[0]
    assert "no role" in connector.check_group(f"{guild}:123456789012345678")[0]
    assert "not a Discord server id" in connector.check_group(f"{guild}:core")[0]
    plain = fake.make_guild("Plain", permissions=1 | (1 << 5) | (1 << 10) | (1 << 11))
    role = fake.make_role(plain, "core")
    assert any("Manage Roles" in fix for fix in connector.check_group(f"{plain}:{role}"))


def test_the_fakes_error_bodies_are_shaped_as_discord_documents_them(fake: FakeDiscord) -> None:
    import json

    import httpx

    fixtures = Path(__file__).parent.parent / "fixtures" / "discord"
    guild = fake.make_guild("Newbies")
    channel = fake.guilds[guild].channels[0]["id"]
    auth = {"Authorization": f"Bot {TOKEN}"}
    fake.fail_next("POST /channels/{id}/messages", retry_after=64.57)
    limited = httpx.post(f"{fake.api_base}/channels/{channel}/messages", json={"content": "x"}, headers=auth)
    documented = json.loads((fixtures / "error_429.json").read_text())
    assert limited.status_code == 429 and set(documented) <= set(limited.json())
    assert limited.json()["retry_after"] == documented["retry_after"] and limited.headers["retry-after"]
    person = fake.person("Alice")
    fake.close_dms(person)
    dm = httpx.post(f"{fake.api_base}/users/@me/channels", json={"recipient_id": person}, headers=auth).json()
    closed = httpx.post(f"{fake.api_base}/channels/{dm['id']}/messages", json={"content": "x"}, headers=auth)
    assert closed.status_code == 403 and closed.json() == json.loads((fixtures / "error_50007.json").read_text())
    invites = fixtures / "invite_with_metadata.json"
    link = httpx.post(f"{fake.api_base}/channels/{channel}/invites", json={"max_age": 0}, headers=auth).json()
    assert {"code", "guild", "channel", "uses", "max_uses", "max_age", "created_at"} <= set(link)
    assert set(link) <= set(json.loads(invites.read_text())) | {"inviter"}
