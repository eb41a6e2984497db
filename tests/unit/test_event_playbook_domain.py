"""Playbook rules for S4 events and the Day-1 poll, as plain values: waits timed from an event's date,
the event triggers and the `attended` condition, and the welcome's poll tasks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from qunflow.domain.playbooks import Condition, PlaybookErrors, Trigger, Wait, parse_playbooks, wait_until
from qunflow.domain.welcome import Day1Task, parse_welcomes

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 8, 2, 0)
EVENT = (datetime(2026, 12, 11, 12, 0), datetime(2026, 12, 11, 13, 30))


def test_waits_count_from_the_event_start_and_end() -> None:
    before = Wait.model_validate({"before_event": {"hours": 48}})
    after = Wait.model_validate({"after_event": {"hours": 12, "minutes": 30}})
    assert wait_until(before, NOW, ZONE, event=EVENT) == datetime(2026, 12, 9, 12, 0)
    assert wait_until(after, NOW, ZONE, event=EVENT) == datetime(2026, 12, 12, 2, 0)
    late = NOW.replace(day=11)  # past the moment: no wait
    assert wait_until(before, late, ZONE, event=EVENT) == late


def test_a_wait_on_the_event_needs_an_event() -> None:
    with pytest.raises(ValueError, match="no event"):
        wait_until(Wait.model_validate({"before_event": {"hours": 1}}), NOW, ZONE)


@pytest.mark.parametrize("bad", [
    {"before_event": {"hours": 1}, "days": 1},
    {"before_event": {"hours": 1}, "after_event": {"hours": 1}},
    {"days": 1, "late": "skip"},
    {"after_event": {"hours": 1}, "late": "maybe"},
])
def test_event_waits_stand_alone(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Wait.model_validate(bad)


def test_event_triggers_take_an_optional_event_key() -> None:
    assert Trigger.model_validate({"on": "event_signup"}).event is None  # every event
    assert Trigger.model_validate({"on": "event_scheduled", "event": "dec_live", "tiers": ["core"]}).event == "dec_live"
    with pytest.raises(ValidationError, match="event applies"):
        Trigger.model_validate({"on": "member_joined", "event": "dec_live"})


def test_attended_is_a_condition_of_its_own() -> None:
    assert Condition.model_validate({"attended": False}).attended is False
    with pytest.raises(ValidationError):
        Condition.model_validate({"attended": True, "tag": "vip"})


def test_event_variables_are_known_to_templates() -> None:
    text = """kind: playbook
key: ev
title: {zh: 活动, en: Event}
trigger: {on: event_signup}
templates:
  hi: {zh: "{{ event_title }} {{ event_time }} {{ checkin_link }}", en: "{{ event_link }} {{ checkin_keyword }}"}
  bad: {zh: "{{ event_place }}", en: "x"}
steps:
  - send_dm: hi
  - send_dm: bad
"""
    with pytest.raises(PlaybookErrors) as found:
        parse_playbooks(text, "ev.yaml")
    assert [p.field for p in found.value.problems] == ["templates.bad.zh"]


def test_poll_tasks_need_distinct_options_and_a_key_of_their_own() -> None:
    poll = {"question": {"zh": "问", "en": "Q"}, "options": [{"key": "a", "label": {"zh": "甲", "en": "A"}},
                                                          {"key": "b", "label": {"zh": "乙", "en": "B"}}]}
    task = Day1Task.model_validate({"key": "vote", "title": {"zh": "投票", "en": "Vote"}, "poll": poll})
    assert task.poll is not None and task.poll.option("b") is not None and task.poll.option("c") is None
    with pytest.raises(ValidationError, match="no vote task"):
        Day1Task.model_validate({"key": "profile", "title": {"zh": "x", "en": "x"}, "poll": poll})
    twice = {**poll, "options": [poll["options"][0], poll["options"][0]]}  # type: ignore[index]
    with pytest.raises(ValidationError, match="differ"):
        Day1Task.model_validate({"key": "vote", "title": {"zh": "x", "en": "x"}, "poll": twice})
    with pytest.raises(ValidationError, match="claim_coupon task only"):
        Day1Task.model_validate({"key": "vote", "title": {"zh": "x", "en": "x"},
                                 "coupon": {"name": "c", "value": 5}})


def test_a_welcome_with_a_poll_parses_and_points_at_the_bad_line() -> None:
    text = """kind: welcome
dm: {zh: "欢迎 {{ name }}", en: "Hi {{ name }}"}
menu: {zh: "欢迎", en: "Hi"}
day1_tasks:
  - key: vote
    title: {zh: 投票, en: Vote}
    poll:
      question: {zh: 问, en: Q}
      options:
        - {key: a, label: {zh: 甲, en: A}}
"""
    with pytest.raises(PlaybookErrors) as found:
        parse_welcomes(text, "w.yaml")
    assert "day1_tasks[0].poll.options" in str(found.value)
    good = text + "        - {key: b, label: {zh: 乙, en: B}}\n"
    [source] = parse_welcomes(good, "w.yaml")
    assert source.welcome.task("vote") is not None
