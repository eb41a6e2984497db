"""Discord Gateway payloads (tests/fixtures/discord/, shaped as the gateway-events reference shows them) and
the REST route keys rate-limit buckets are tracked by."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from qunflow.connectors.discord import events
from qunflow.connectors.discord.api import route_key
from qunflow.connectors.discord.gateway import intents
from qunflow.errors import InvalidInput

FIXTURES = Path(__file__).parent.parent / "fixtures" / "discord"


def dispatch(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    assert payload["op"] == 0 and isinstance(payload["s"], int)
    return dict(payload["d"])


def test_a_member_add_is_a_join_with_a_key_that_repeats_with_the_event() -> None:
    join = events.member_add(dispatch("guild_member_add"))
    assert join is not None
    assert (join.guild_id, join.user_id, join.display_name) == ("197038439483310086", "80351110224678912",
                                                                  "NOT API SUPPORT")
    assert join.at == datetime(2015, 4, 26, 6, 26, 56, 936000)  # naive UTC
    assert events.member_add(dispatch("guild_member_add")) == join
    again = dict(dispatch("guild_member_add"), joined_at="2015-04-27T06:26:56.936000+00:00")  # a rejoin
    assert events.member_add(again).key != join.key  # type: ignore[union-attr]


def test_a_bot_joining_is_not_a_person() -> None:
    payload = dispatch("guild_member_add")
    payload["user"]["bot"] = True
    assert events.member_add(payload) is None


def test_a_member_remove_and_a_message() -> None:
    assert events.member_remove(dispatch("guild_member_remove")) == ("197038439483310086", "80351110224678912")
    message = events.message_create(dispatch("message_create"))
    assert message is not None and message.text == "签到 check-in" and message.guild_id == "197038439483310086"
    dm = dict(dispatch("message_create"))
    del dm["guild_id"]
    assert events.message_create(dm).guild_id is None  # type: ignore[union-attr]
    assert events.message_create(dict(dm, content="")) is None  # no content intent: nothing to read


@pytest.mark.parametrize("payload", [{}, {"user": {"id": "x"}, "guild_id": "1"},
                                     {"user": {"id": "1"}, "guild_id": "1", "joined_at": "yesterday"}])
def test_malformed_events_are_invalid_input(payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        events.member_add(payload)


def test_route_keys_keep_the_top_level_id_and_fold_the_rest() -> None:
    assert route_key("POST", "/channels/290926798999357250/messages") == "POST /channels/290926798999357250/messages"
    assert route_key("GET", "/guilds/197038439483310086/members/80351110224678912") == \
        "GET /guilds/197038439483310086/members/{id}"
    assert route_key("DELETE", "/invites/0vCdhLbwjZZTWZLD") == "DELETE /invites/0vCdhLbwjZZTWZLD"
    assert route_key("POST", "/users/@me/channels") == "POST /users/@me/channels"


def test_intents_ask_for_members_and_content_only_when_wanted() -> None:
    assert intents(True) & (1 << 1) and intents(True) & (1 << 15)
    assert intents(False) & (1 << 1) and not intents(False) & (1 << 15)
