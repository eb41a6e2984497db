"""domain/group_polls.py: options, the post's text, what a reply votes for, and which messages are looked at."""

from __future__ import annotations

import pytest

from qunflow.domain.group_polls import Option, could_be_vote, parse_options, post_text, read_reply
from qunflow.errors import InvalidInput

OPTIONS = [Option("sat", "周六"), Option("sun", "周日")]


def test_options_are_key_label_pairs_in_order() -> None:
    assert parse_options(["sat=周六", " SUN = 周日 "]) == OPTIONS
    for bad in (["sat"], ["sat=周六", "=x"], ["sat=周六", "a b=c"], ["a=" + "x" * 101, "b=y"],
                [f"o{i}=x" for i in range(10)]):
        with pytest.raises(InvalidInput):
            parse_options(bad)


def test_the_post_numbers_the_options_and_says_how_to_vote() -> None:
    assert post_text("哪天?", OPTIONS, "zh") == "哪天?\n1. 周六\n2. 周日\n回复数字投票（每人一票）"
    assert post_text("Which?", OPTIONS, "en").endswith("\nReply with the number to vote (one vote each)")


def test_a_reply_is_a_number_or_a_key_and_nothing_else() -> None:
    assert [read_reply(t, OPTIONS) for t in ("1", " 2 ", "２", "SUN", "sat")] == ["sat", "sun", "sun", "sun", "sat"]
    assert [read_reply(t, OPTIONS) for t in ("0", "3", "1 2", "周六", "I vote 1", "")] == [None] * 6


def test_only_short_reply_shaped_messages_reach_the_database() -> None:
    assert all(could_be_vote(t) for t in ("1", "９", "sun", "ok"))
    assert not any(could_be_vote(t) for t in ("收到", "谢谢老师", "hello there", "", "12 ", "👍"))
