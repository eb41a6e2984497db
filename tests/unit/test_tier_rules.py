"""Tier rule documents (issue 13): parsing with line-numbered errors, and which moves the rules call for."""

from __future__ import annotations

from typing import get_args

import pytest

from qunflow.domain.engagement import LEVELS
from qunflow.domain.entry import TIERS
from qunflow.domain.playbooks import PlaybookErrors, parse_playbooks
from qunflow.domain.tier_rules import Level, Tier, conditions_of, parse_tier_rules, plan_moves

DOC = """\
kind: tier_rules
key: default
rules:
  - key: to_core
    when:
      - {orders: 3, days: 90}
      - {level: core, days: 14}
    to_tier: core
    from_tiers: [newbie, interest]
    leave_old: true
  - key: quiet
    when:
      - {level: dormant, days: 30}
    to_tier: broadcast
"""


def test_vocabularies_follow_the_domain() -> None:
    assert set(get_args(Tier)) == set(TIERS)
    assert set(get_args(Level)) == set(LEVELS)


def test_a_rule_document_parses_and_playbooks_leave_it_alone() -> None:
    [source] = parse_tier_rules(DOC, "tiers.yaml")
    rule = source.rule_set.rules[0]
    assert [c.name for c in rule.when] == ["orders>=3/90d", "level=core/14d"]
    assert rule.leave_old and rule.expire_days == 7 and rule.dm is None
    assert parse_playbooks(DOC) == []  # another kind: the playbook parser skips it


@pytest.mark.parametrize(("bad", "line", "says"), [
    ("      - {orders: 3, days: 90}", 6, "exactly one of"),  # replaced below by a two-fact condition
    ("    to_tier: core", 8, "to_tier"),
])
def test_bad_rules_name_their_line(bad: str, line: int, says: str) -> None:
    text = DOC.replace("      - {orders: 3, days: 90}", "      - {orders: 3, days: 90, tag: vip}") if line == 6 else \
        DOC.replace(bad, "    to_tier: platinum")
    with pytest.raises(PlaybookErrors) as caught:
        parse_tier_rules(text, "tiers.yaml")
    problem = caught.value.problems[0]
    assert (problem.file, problem.line) == ("tiers.yaml", line)
    assert says in str(problem)


def test_unknown_field_and_missing_days_and_dm_without_link_are_refused() -> None:
    with pytest.raises(PlaybookErrors, match=r"tiers.yaml:6: .*orders.*days|tiers.yaml:6:"):
        parse_tier_rules(DOC.replace("{orders: 3, days: 90}", "{orders: 3}"), "tiers.yaml")
    with pytest.raises(PlaybookErrors, match="Extra inputs are not permitted"):
        parse_tier_rules(DOC.replace("    leave_old: true", "    leave_old: true\n    colour: red"), "tiers.yaml")
    no_link = DOC.replace("    leave_old: true", "    leave_old: true\n    dm: {zh: 你好, en: hello}")
    with pytest.raises(PlaybookErrors, match=r"tiers.yaml:11: rules\[0\].dm.zh: the DM must carry"):
        parse_tier_rules(no_link, "tiers.yaml")


def test_first_rule_wins_and_open_or_recent_moves_are_not_offered_again() -> None:
    [source] = parse_tier_rules(DOC)
    sets = [source.rule_set]
    assert set(conditions_of(sets)) == {"orders>=3/90d", "level=core/14d", "level=dormant/30d"}
    holds = {"orders>=3/90d": {"m_buyer", "m_core_already", "m_open", "m_recent", "m_both"},
             "level=core/14d": {"m_fan"}, "level=dormant/30d": {"m_both", "m_sleepy", "m_bcast", "m_recent"}}
    tiers = {"m_buyer": "newbie", "m_core_already": "core", "m_open": "newbie", "m_recent": "interest",
             "m_both": "newbie", "m_fan": "interest", "m_sleepy": "newbie", "m_bcast": "broadcast"}
    planned = plan_moves(sets, holds, tiers, open_members=["m_open"], recent=[("default/to_core", "m_recent")])
    got = {(m.member_id, m.rule, m.to_tier, m.why) for m in planned}
    assert got == {("m_buyer", "default/to_core", "core", "orders>=3/90d"),
                   ("m_both", "default/to_core", "core", "orders>=3/90d"),  # one move per member: the first rule
                   ("m_fan", "default/to_core", "core", "level=core/14d"),
                   ("m_sleepy", "default/quiet", "broadcast", "level=dormant/30d")}
    assert all(m.leave_old for m in planned if m.to_tier == "core")
    # m_recent was offered the core move lately: no broadcast move instead (the first rule that applies is theirs)
