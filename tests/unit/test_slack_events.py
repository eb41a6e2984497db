"""Slack payloads as documented (tests/fixtures/slack/) -> qunflow updates, and the v0 signature check."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qunflow.connectors.base import Host, JoinRequested, MemberJoined, MemberLeft, MessagePosted
from qunflow.connectors.slack.connector import SlackConnector
from qunflow.connectors.slack.events import parse_event
from qunflow.connectors.slack.settings import SlackSettings
from qunflow.errors import InvalidInput, Unauthorized

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slack"
SECRET = "8f742231b10e8888abcd99ab0c1d85a5"
NOW = 1764700000


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def connector(tmp_path: Path, now: int = NOW) -> SlackConnector:
    settings = SlackSettings(bot_token="xoxb-1234-5678-abcdefgh", signing_secret=SECRET,
                             api_base="http://127.0.0.1:9/api", team_id="T123ABC456", app_id="A123ABC456")
    host = Host(public_url="http://127.0.0.1:9", home=tmp_path,
                clock=lambda: datetime.fromtimestamp(now, UTC).replace(tzinfo=None), secret="s")
    return SlackConnector(settings, host)


def signed(body: bytes, stamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={digest}"}


def no_codes(_code: str) -> str | None:
    return None


def not_invited(_channel: str, _user: str) -> str | None:
    return None


def test_member_joined_channel_carries_no_invite_and_keys_on_event_id() -> None:
    [update] = parse_event(json.loads(load("member_joined_channel.json")), no_codes, not_invited)
    assert isinstance(update, MemberJoined)
    assert (update.group_id, update.user_id, update.invite_label) == ("C123ABC456", "W123ABC456", None)
    assert update.key == "Ev123ABC456" and update.at == datetime(2025, 12, 2, 18, 26, 40)


def test_member_joined_channel_after_the_bots_invite_carries_the_code_asked_with() -> None:
    [update] = parse_event(json.loads(load("member_joined_channel.json")), no_codes,
                           lambda channel, user: "sl-ads" if (channel, user) == ("C123ABC456", "W123ABC456") else None)
    assert isinstance(update, MemberJoined) and update.invite_label == "sl-ads"


def test_member_left_channel() -> None:
    [update] = parse_event(json.loads(load("member_left_channel.json")), no_codes, not_invited)
    assert isinstance(update, MemberLeft) and (update.group_id, update.user_id) == ("C123ABC456", "W123ABC456")


def test_a_known_code_in_a_dm_is_a_join_request_answered_in_that_dm() -> None:
    envelope = json.loads(load("message_im.json"))
    [update] = parse_event(envelope, lambda code: "C123ABC456" if code == "sl-ads" else None, not_invited)
    assert isinstance(update, JoinRequested)
    assert (update.group_id, update.user_id, update.invite_label) == ("C123ABC456", "U2147483697", "sl-ads")
    assert update.dm_context == "D024BE91L" and update.key == "Ev0PV52K21"
    envelope["event"]["text"] = "sl-ads"  # the bare code also asks
    assert isinstance(parse_event(envelope, lambda code: "C1" if code == "sl-ads" else None, not_invited)[0],
                      JoinRequested)


def test_an_unknown_code_in_a_dm_is_a_private_message() -> None:
    [update] = parse_event(json.loads(load("message_im.json")), no_codes, not_invited)
    assert isinstance(update, MessagePosted) and update.group_id is None and update.text == "join sl-ads"


def test_a_channel_message_feeds_keyword_rules_and_a_bots_own_post_is_ignored() -> None:
    [update] = parse_event(json.loads(load("message_channel.json")), no_codes, not_invited)
    assert isinstance(update, MessagePosted) and update.group_id == "C123ABC456" and update.text == "签到"
    assert update.message_id == "1355517523.000005"
    assert parse_event(json.loads(load("message_bot.json")), no_codes, not_invited) == []


def test_url_verification_is_answered_with_the_challenge_in_plain_text(tmp_path: Path) -> None:
    body = load("url_verification.json")
    inbound = connector(tmp_path).receive("POST", {}, signed(body), body)
    assert inbound.updates == [] and inbound.media_type == "text/plain"
    assert inbound.reply == b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


@pytest.mark.parametrize("headers", [
    {},
    {"X-Slack-Request-Timestamp": str(NOW)},
    signed(b"{}"),  # signed for another body
    signed(load("member_joined_channel.json"), secret="0123456789abcdef0123456789abcdef"),
    signed(load("member_joined_channel.json"), stamp=NOW - 301),
    signed(load("member_joined_channel.json"), stamp=NOW + 301),
    {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
])
def test_unsigned_missigned_and_stale_calls_are_refused(tmp_path: Path, headers: dict[str, str]) -> None:
    body = load("member_joined_channel.json")
    with pytest.raises(Unauthorized):
        connector(tmp_path).receive("POST", {}, headers, body)


def test_a_signature_within_five_minutes_is_accepted(tmp_path: Path) -> None:
    body = load("member_joined_channel.json")
    inbound = connector(tmp_path, now=NOW + 299).receive("POST", {}, signed(body), body)
    assert [type(u) for u in inbound.updates] == [MemberJoined]


def test_a_signed_body_that_is_not_json_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        connector(tmp_path).receive("POST", {}, signed(b"not json"), b"not json")


def test_join_codes_must_fit_and_have_no_spaces(tmp_path: Path) -> None:
    slack = connector(tmp_path)
    for label in ("", "two words", "x" * 65):
        with pytest.raises(InvalidInput):
            slack.create_invite("C123ABC456", label)
    link = slack.create_invite("C123ABC456", "x" * 64)
    assert link.url == "https://slack.com/app_redirect?app=A123ABC456&team=T123ABC456" and link.join_request


def test_web_api_error_bodies_map_to_qunflow_errors() -> None:
    from qunflow.connectors.slack.api import _error
    from qunflow.errors import PlatformError, RateLimited

    limited = _error("chat.postMessage", json.loads(load("error_ratelimited.json"))["error"])
    assert isinstance(limited, RateLimited) and limited.retry_after == 1.0
    refused = _error("auth.test", json.loads(load("error_invalid_auth.json"))["error"])
    assert type(refused) is PlatformError and "OAuth & Permissions" in str(refused)
