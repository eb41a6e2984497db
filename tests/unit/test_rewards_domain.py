"""Reward programs as plain values: validation with lines, grants, prices, budget scopes."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from qunflow.domain.playbooks import PlaybookErrors
from qunflow.domain.rewards import budget_scopes, parse_programs, quality_grants, rule_costs, threshold_grants

GOOD = """\
kind: rewards
key: p
budget: {total: 100, per_day: 40}
coupons:
  c20: {name: A, value: 20, redemption_rate: 0.5}
  c5: {name: B, value: 5}
rules:
  - {id: one, invitees: 1, inviter: c20, invitee: c5}
  - {id: team, invitees: 3, inviter: c20, team: c5, budget: {total: 70}}
  - {id: buy, qualify: first_order, inviter: c20}
"""


def program():  # type: ignore[no-untyped-def]
    return parse_programs(GOOD, "p.yaml")[0].program


def test_thresholds_grant_at_the_nth_invitee_with_stable_causes() -> None:
    p = program()
    assert threshold_grants(p, "a", []) == []
    one = threshold_grants(p, "a", [(1, "b1")])
    assert [(g.cause, g.member_id, g.coupon) for g in one] == [
        ("rw:p:one:inviter:a", "a", "c20"), ("rw:p:one:invitee:b1", "b1", "c5")]
    three = threshold_grants(p, "a", [(1, "b1"), (2, "b2"), (3, "b3"), (4, "b4")])
    assert one[0] in three and one[1] in three  # the same causes again: the ledger pays them once
    team = [g for g in three if g.rule == "team"]
    assert [(g.role, g.member_id, g.referral_id) for g in team] == [
        ("inviter", "a", 3), ("team", "b1", 1), ("team", "b2", 2), ("team", "b3", 3)]


def test_quality_grants_are_one_per_invitee() -> None:
    p = program()
    grants = quality_grants(p, p.rule("buy"), 7, "a", "b9")
    assert [(g.cause, g.member_id) for g in grants] == [("rw:p:buy:inviter:b9", "a")]


def test_costs_count_every_team_coupon_and_the_tightest_cap() -> None:
    costs = {c.rule: c for c in rule_costs(program())}
    assert costs["one"].face_value == 25 and costs["one"].expected_cost == Decimal("12.50")  # 20 x .5 + 5 x .5
    assert costs["team"].face_value == 35 and costs["team"].firings_in_budget == 2  # 70 // 35
    assert costs["buy"].firings_in_budget == 5  # the program's 100 // 20


def test_budget_scopes_name_program_and_rule_caps() -> None:
    p = program()
    assert budget_scopes(p, p.rule("team"), "2026-03-02") == [
        ("program:p", "total", Decimal(100)), ("program:p", "2026-03-02", Decimal(40)),
        ("rule:p/team", "total", Decimal(70))]
    assert budget_scopes(p, p.rule("buy"), "d")[-1] == ("program:p", "d", Decimal(40))


@pytest.mark.parametrize(("bad", "line", "message"), [
    (GOOD.replace("inviter: c20, invitee: c5", "inviter: c99"), 8, "rules[0].inviter: no coupon 'c99'"),
    (GOOD.replace("{id: buy, qualify: first_order, inviter: c20}", "{id: buy, inviter: c20}"), 10,
     "rules[2]: a rule has either invitees"),
    (GOOD.replace("{id: buy, qualify: first_order,", "{id: buy, qualify: active_days,"), 10,
     "days goes with qualify: active_days"),
    (GOOD.replace("value: 20,", "value: -1,"), 5, "coupons.c20.value: Input should be greater than 0"),
    (GOOD.replace("id: team,", "id: one,"), 9, "rule id 'one' is used more than once"),
    (GOOD.replace("team: c5,", "team: c5, qualify: first_order,"), 9, "rules[1]: a rule has either"),
])
def test_bad_programs_name_file_line_and_field(bad: str, line: int, message: str) -> None:
    with pytest.raises(PlaybookErrors) as caught:
        parse_programs(bad, "p.yaml")
    shown = [str(p) for p in caught.value.problems]
    assert any(s.startswith(f"p.yaml:{line}: ") and message in s for s in shown), shown


def test_the_shipped_s3_program_is_valid() -> None:
    path = Path(str(resources.files("qunflow") / "playbooks" / "s3_referral_rewards.yaml"))
    (source,) = parse_programs(path.read_text(encoding="utf-8"), str(path))
    costs = {c.rule: c.face_value for c in rule_costs(source.program)}
    assert costs == {"invite_one": 30, "team_of_three": 50, "friend_first_order": 30}
