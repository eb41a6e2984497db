"""Rule set files: parsing next to playbooks, problems at the offending line, one matcher over all sets."""

from __future__ import annotations

import pytest

from qunflow.domain.keyword_files import compile_sets, parse_rule_sets
from qunflow.domain.playbooks import PlaybookErrors, parse_playbooks

MIXED = """kind: playbook
key: hello
title: {zh: 你好, en: Hello}
trigger: {on: tag_added, tag: vip}
templates:
  hi: {zh: 你好, en: hi}
steps:
  - send_dm: hi
---
kind: keyword_rules
key: sales
rules:
  - id: price
    keywords: [多少钱, price]
    whole_words: true
    reply: {zh: "价格见 {{ rules_link }}", en: "Prices: {{ rules_link }}"}
  - id: vip
    regexes: ['(?i)\\bvip\\d*\\b']
    scope: private
    priority: 5
    stop: true
    tag: vip
---
kind: keyword_rules
key: care
rules:
  - id: price
    keywords: [退款]
    alert: true
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PlaybookErrors) as error:
        parse_rule_sets(text, "r.yaml")
    return [str(p) for p in error.value.problems]


def test_a_file_may_mix_playbooks_and_rule_sets_and_each_parser_takes_its_own():
    assert [s.playbook.key for s in parse_playbooks(MIXED, "m.yaml")] == ["hello"]
    sets = parse_rule_sets(MIXED, "m.yaml")
    assert [s.rule_set.key for s in sets] == ["sales", "care"]
    assert sets[0].text.startswith("kind: keyword_rules\nkey: sales") and "care" not in sets[0].text
    assert sets[1].rule_set.rules[0].alert is True


def test_one_matcher_over_all_sets_keeps_rule_ids_apart_and_honours_priority_and_stop():
    matcher = compile_sets([s.rule_set for s in parse_rule_sets(MIXED)])
    assert [m.rule_id for m in matcher.match("多少钱?要退款", "group")] == ["sales/price", "care/price"]
    assert [m.rule_id for m in matcher.match("VIP2 price", "private")] == ["sales/vip"]  # stop cuts the rest
    assert [m.rule_id for m in matcher.match("VIP2 price", "group")] == ["sales/price"]  # vip is private only
    assert matcher.match("priceless", "group") == []  # whole words


def test_problems_point_at_the_line_of_the_keyword_pattern_or_template():
    text = """kind: keyword_rules
key: bad
rules:
  - id: a
    keywords:
      - ok
      - "   "
    tag: t
  - id: b
    regexes: ['(a)\\1']
    alert: {zh: "{{ rule }} {{ who }}", en: "{{ rule }}"}
  - id: a
    keywords: [x]
    reply: "{% for x in y %}{% for z in x %}{% endfor %}{% endfor %}"
"""
    assert problems(text) == [
        "r.yaml:7: rules[0].keywords[1]: '' must be text with more than spaces",
        "r.yaml:10: rules[1].regexes[0]: '(a)\\\\1' uses a backreference (\\1, \\k<name>, (?P=name)), "
        "which RE2 does not support",
        "r.yaml:11: rules[1].alert.zh: template (zh text, line 1): unknown variable 'who'; available: console_link, "
        "coupon_link, group, link, member_id, member_link, name, rule, rules_link, tier",
        "r.yaml:12: rules[2].id: rule id 'a' is used more than once in this set",
        "r.yaml:14: rules[2].reply: template (line 1): message templates cannot nest loops",
    ]


def test_schema_problems_name_the_field_and_line():
    text = """kind: keyword_rules
key: Bad-Key
rules:
  - id: quiet
    keywords: [x]
  - id: where
    keywords: [y]
    scope: channel
    tag: t
"""
    assert problems(text) == [
        "r.yaml:2: key: use lower-case letters, digits and '_' (start with a letter, at most 64)",
        "r.yaml:4: rules[0]: a rule needs at least one action: reply, tag or alert",
        "r.yaml:8: rules[1].scope: Input should be 'group', 'private' or 'any'",
    ]


def test_personal_links_are_refused_in_replies_a_group_could_see():
    text = """kind: keyword_rules
key: links
rules:
  - id: dm
    scope: private
    keywords: [coupon]
    reply: "{{ coupon_link }}"
  - id: anywhere
    keywords: [profile]
    reply: {zh: "{{ member_link }}", en: "{{ link }}"}
"""
    assert problems(text) == ["r.yaml:10: rules[1].reply: member_link is a personal link that anyone in a group "
                              "could use; reply with it only in private messages (scope: private)"]
