"""Consent and privacy rules as values: the consent in force, stop words, what may reach a group or an alert,
and how an erased member's events are kept."""

from __future__ import annotations

from datetime import datetime

import pytest

from qunflow.domain.consent import MARKETING, PROFILE, ConsentRecord, in_force, is_command
from qunflow.domain.gate import SEED_GATE_JSON, evaluate, gate_from_json
from qunflow.domain.keyword_files import parse_rule_sets
from qunflow.domain.playbooks import PlaybookErrors, parse_playbooks
from qunflow.domain.privacy import Pseudonyms, kept_properties, needles_of, pseudonymise_event, render_public, scrub
from qunflow.domain.templates import TemplateError

T0, T1 = datetime(2026, 3, 1, 8), datetime(2026, 3, 2, 8)
FORM = {"name": "Li Lei", "need": "leads", "interest": "ads", "stage": "buying", "experience": "yes", "consent": "on"}


def test_the_newest_record_of_each_purpose_is_in_force() -> None:
    records = [ConsentRecord(PROFILE, True, T0), ConsentRecord(MARKETING, True, T0),
               ConsentRecord(MARKETING, False, T1)]
    assert in_force(records) == {PROFILE: True, MARKETING: False}
    assert in_force([]) == {}  # never asked: no purpose at all


@pytest.mark.parametrize("text", ["退订", " STOP ", "stop!", "ＳＴＯＰ", "退订。", "Unsubscribe"])
def test_a_message_that_is_only_a_stop_word_is_a_command(text: str) -> None:
    assert is_command(text, ["退订", "STOP", "unsubscribe"])


@pytest.mark.parametrize("text", ["please stop spamming", "我想退订一下吗", "", "STOPPED"])
def test_a_stop_word_inside_a_sentence_is_not(text: str) -> None:
    assert not is_command(text, ["退订", "STOP"])


def test_the_gate_marketing_box_is_a_free_choice_and_unticked_means_no() -> None:
    gate = gate_from_json("seed", SEED_GATE_JSON)
    assert evaluate(gate, FORM, "newbie").marketing is False
    assert evaluate(gate, {**FORM, "marketing": "on"}, "newbie").marketing is True
    assert evaluate(None, {"consent": "on"}, "newbie").marketing is False


def test_a_group_or_alert_text_may_not_read_a_profile_field() -> None:
    with pytest.raises(TemplateError, match="name is private profile data"):
        render_public("收到,{{ name }}。", {"name": "Li Lei"}, "zh")
    assert render_public("会员 {{ member_id }}", {"name": "Li Lei", "member_id": "m_1"}, "zh") == "会员 m_1"


RULES = """
kind: keyword_rules
key: k
rules:
  - id: r
    keywords: [退款]
    {where}
    {action}: {{zh: "收到,{{{{ name }}}}", en: "Got it, {{{{ name }}}}"}}
"""


@pytest.mark.parametrize(("where", "action", "message"), [
    ("scope: any", "reply", "may not appear in a group reply"),
    ("scope: group", "reply", "may not appear in a group reply"),
    ("scope: private", "alert", "may not appear in a staff alert"),
])
def test_rule_files_with_a_profile_field_in_a_group_reply_or_an_alert_are_refused(where: str, action: str,
                                                                                   message: str) -> None:
    with pytest.raises(PlaybookErrors, match=message):
        parse_rule_sets(RULES.format(where=where, action=action))


def test_a_private_reply_may_greet_the_member_by_name() -> None:
    assert parse_rule_sets(RULES.format(where="scope: private", action="reply"))


PLAYBOOK = """
kind: playbook
key: p
title: {{zh: 测试, en: Test}}
trigger: {{on: member_joined}}
templates:
  t: {{zh: "{{{{ name }}}} 你好", en: "Hi {{{{ name }}}}"}}
steps:
  - {step}: t
"""


def test_playbooks_may_not_post_a_profile_field_to_a_group_or_an_alert() -> None:
    assert parse_playbooks(PLAYBOOK.format(step="send_dm"))
    for step in ("post_group", "notify_staff"):
        with pytest.raises(PlaybookErrors, match="private profile data"):
            parse_playbooks(PLAYBOOK.format(step=step))


NAMES = Pseudonyms("m_1", "anon_x", "v1", "anon_vx", ("u12345",))


def test_an_erased_members_event_keeps_only_what_the_metrics_read() -> None:
    row = {"event_id": "jn-sandbox-c1-u12345-20260301", "member_id": "m_1", "visitor_id": "v1", "referrer_id": "m_9",
           "properties": {"tier": "core", "answers": {"stage": "buying"}, "order_ref": "o-1", "phone": "138"}}
    assert pseudonymise_event(row, NAMES) == {
        "member_id": "anon_x", "visitor_id": "anon_vx", "event_id": "jn-sandbox-c1-anon_x-20260301",
        "properties": {"tier": "core"}}


def test_another_members_join_keeps_everything_but_names_the_referrer_by_pseudonym() -> None:
    row = {"event_id": "jn-2", "member_id": "m_2", "visitor_id": "v2", "referrer_id": "m_1",
           "properties": {"tier": "core", "answers": {}}}
    assert pseudonymise_event(row, NAMES) == {"referrer_id": "anon_x"}


def test_a_landing_view_of_the_erased_visitor_gets_the_visitor_pseudonym() -> None:
    row = {"event_id": "lv-1", "visitor_id": "v1", "properties": '{"utm_source": "xhs", "note": "x"}'}
    assert pseudonymise_event(row, NAMES) == {"visitor_id": "anon_vx", "event_id": "lv-1",
                                              "properties": {"utm_source": "xhs"}}
    assert kept_properties({"answers": {}}) is None


def test_names_and_phones_are_masked_in_free_text_longest_first() -> None:
    needles = needles_of({"name": "Li Lei", "phone": "13800138000", "need": "ads"}, ["Lei"])
    assert needles == ["13800138000", "Li Lei", "Lei"]  # "ads" is no identifying field
    assert scrub("👋 欢迎 Li Lei, Han Meimei 入群 (13800138000)", needles) == "👋 欢迎 ***, Han Meimei 入群 (***)"
