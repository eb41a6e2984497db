"""Telegram updates, shaped as the Bot API documents them, become qunflow's typed updates."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from qunflow.connectors.base import JoinRequested, MemberJoined, MemberLeft, MessagePosted
from qunflow.connectors.telegram.updates import parse_update
from qunflow.errors import InvalidInput

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def test_join_request_carries_the_invite_name_and_the_chat_to_message() -> None:
    assert parse_update(fixture("chat_join_request")) == [JoinRequested(
        "telegram", datetime(2025, 1, 1, 0, 0), group_id="-1001234567890", user_id="5123456789",
        display_name="Li Wei", invite_label="poster-spring", dm_context="5123456789", key="871200001")]


def test_join_request_messages_user_chat_id_even_when_it_differs_from_the_sender() -> None:
    data = fixture("chat_join_request")
    data["chat_join_request"]["user_chat_id"] = 999
    [update] = parse_update(data)
    assert isinstance(update, JoinRequested)
    assert (update.user_id, update.dm_context) == ("5123456789", "999")


def test_join_request_without_a_link_has_no_label() -> None:
    data = fixture("chat_join_request")
    del data["chat_join_request"]["invite_link"]
    [update] = parse_update(data)
    assert isinstance(update, JoinRequested) and update.invite_label is None


def test_member_joined_through_a_named_link() -> None:
    assert parse_update(fixture("chat_member_joined")) == [MemberJoined(
        "telegram", datetime(2025, 1, 1, 0, 1), "-1001234567890", "5234567890", "Anna", "wechat-article",
        key="871200002")]


def test_member_left() -> None:
    assert parse_update(fixture("chat_member_left")) == [MemberLeft(
        "telegram", datetime(2025, 1, 1, 1, 0), "-1001234567890", "5234567890", key="871200003")]


def test_kicked_member_counts_as_left() -> None:
    data = fixture("chat_member_left")
    data["chat_member"]["new_chat_member"]["status"] = "kicked"
    assert [type(u) for u in parse_update(data)] == [MemberLeft]


def test_restricted_person_becoming_a_member_is_a_join() -> None:
    data = fixture("chat_member_joined")
    change = data["chat_member"]
    change["old_chat_member"] = {"status": "restricted", "is_member": False, "user": change["new_chat_member"]["user"]}
    change["new_chat_member"] = {"status": "restricted", "is_member": True, "user": change["old_chat_member"]["user"]}
    assert [type(u) for u in parse_update(data)] == [MemberJoined]


def test_promotion_is_not_a_join() -> None:
    data = fixture("chat_member_joined")
    data["chat_member"]["old_chat_member"]["status"] = "member"
    data["chat_member"]["new_chat_member"]["status"] = "administrator"
    assert parse_update(data) == []


def test_a_bot_joining_is_not_a_member_of_the_funnel() -> None:
    data = fixture("chat_member_joined")
    data["chat_member"]["new_chat_member"]["user"]["is_bot"] = True
    assert parse_update(data) == []


def test_group_text_message() -> None:
    assert parse_update(fixture("message_group_text")) == [MessagePosted(
        "telegram", datetime(2025, 1, 1, 0, 6, 40), user_id="5234567890", text="checkin day 3",
        group_id="-1001234567890", message_id="4242", key="871200004")]


def test_private_start_message_has_no_group() -> None:
    [update] = parse_update(fixture("message_private_start"))
    assert isinstance(update, MessagePosted)
    assert (update.group_id, update.text, update.user_id) == (None, "/start", "5123456789")


def test_new_chat_members_service_message_is_ignored_so_a_join_counts_once() -> None:
    assert parse_update(fixture("message_new_chat_members")) == []


def test_messages_from_bots_and_other_update_kinds_are_ignored() -> None:
    data = fixture("message_group_text")
    data["message"]["from"]["is_bot"] = True
    assert parse_update(data) == []
    edited = {"update_id": 1, "edited_message": fixture("message_group_text")["message"]}
    assert parse_update(edited) == []


@pytest.mark.parametrize(("data", "says"), [
    ([], "expected a JSON object"),
    ({"message": {}}, "update_id"),
    ({"update_id": "7", "message": {}}, "update_id"),
    ({"update_id": 7, "chat_join_request": "nope"}, "chat_join_request must be an object"),
    ({"update_id": 7, "chat_join_request": {"chat": {"id": 1}, "from": {"id": 2, "first_name": "A"},
                                            "date": 0}}, "user_chat_id"),
])
def test_malformed_updates_are_refused_with_what_is_wrong(data: Any, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        parse_update(data)


def test_unknown_member_status_is_refused() -> None:
    data = copy.deepcopy(fixture("chat_member_left"))
    data["chat_member"]["new_chat_member"]["status"] = "ghost"
    with pytest.raises(InvalidInput, match="new_chat_member.status"):
        parse_update(data)


def test_group_message_without_integer_ids_is_refused() -> None:
    data = fixture("message_group_text")
    data["message"]["chat"]["id"] = "-100"
    with pytest.raises(InvalidInput, match=r"message.chat.id must be an integer"):
        parse_update(data)
