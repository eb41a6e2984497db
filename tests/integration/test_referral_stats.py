"""Referral statistics and the leaderboard on a small hand-made community, on SQLite and PostgreSQL.

Three inviters: alice (2 invitees, one orders, 3 people opened her link), bob (2 invitees, one orders, his
first invitee joined on bob's own phone with a throwaway e-mail, so the fraud checks score it high and both
his rewards wait in review; his second invitee joins at 00:30 local time on the next day), carol (3 invitees
four days later, one orders, 4 link visitors)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qunflow.errors import InvalidInput
from qunflow.services.fraud import RawSignals, hash_signals, record_join_signals
from qunflow.services.ingest import ingest_batch
from qunflow.services.playbooks import apply_playbooks
from qunflow.services.referral_stats import leaderboard, rank, referral_stats
from qunflow.services.rewards import rewards_tick
from qunflow.workspace import Workspace

PROGRAM = """\
kind: rewards
key: spring
hold_days: 7
coupons:
  c20: {name: 邀请券, value: 20, valid_days: 30, redemption_rate: 0.6}
  c30: {name: 好友首单奖, value: 30, valid_days: 30, redemption_rate: 0.7}
rules:
  - {id: invite_1, invitees: 1, inviter: c20}
  - id: first_order
    qualify: first_order
    inviter: c30
    budget: {total: 300, per_day: 100}
"""
REASONS = ["self_referral", "disposable"]  # the fraud checks' codes for bob's first invitee


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _at(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def _record(ws: Workspace, items: list[dict[str, Any]]) -> None:
    result = ingest_batch(ws.engine, items)
    assert not result.errors, result.errors


def _join(at: datetime, member: str, inviter: str, campaign: str | None, channel: str) -> dict[str, Any]:
    return {"event_id": f"j-{member}", "type": "joined", "ts": _at(at), "member_id": member, "referrer_id": inviter,
            "campaign": campaign, "channel": channel}


def _order(at: datetime, member: str) -> dict[str, Any]:
    return {"event_id": f"o-{member}", "type": "order", "ts": _at(at), "member_id": member, "amount": "99",
            "properties": {"order_id": f"order-{member}"}}


def _visit(at: datetime, visitor: str, inviter: str, channel: str, n: int = 0) -> dict[str, Any]:
    return {"event_id": f"lv-{visitor}-{n}", "type": "landing_view", "ts": _at(at), "visitor_id": visitor,
            "referrer_id": inviter, "campaign": "spring", "channel": channel}


def build_community(ws: Workspace, tmp_path: Path, *, release: bool = True) -> Clock:
    """The community of this module's docstring; with `release`, the clock runs past every hold period."""
    day1 = datetime(2026, 3, 2, 2, 0)  # 10:00 in Shanghai
    clock = Clock(day1)
    ws.clock = clock
    ws.settings.fraud_inactive_days = 30  # not every invitee here talks: this module counts, it does not judge
    path = tmp_path / "spring.yaml"
    path.write_text(PROGRAM, encoding="utf-8")
    apply_playbooks(ws, [path])
    _record(ws, [_visit(day1, "v1", "alice", "wechat"), _visit(day1, "v2", "alice", "wechat"),
                 _visit(day1, "v3", "alice", "wechat"), _visit(day1, "v3", "alice", "wechat", 1),
                 _join(day1, "b1", "alice", "spring", "wechat"), _join(day1, "b2", "alice", "spring", "poster"),
                 _join(day1 + timedelta(minutes=5), "c1", "bob", None, "wechat"),
                 _order(day1 + timedelta(hours=1), "b1"), _order(day1 + timedelta(hours=1), "c1"),
                 _join(datetime(2026, 3, 2, 16, 30), "c2", "bob", None, "wechat")])  # 00:30 on 3 March locally
    rewards_tick(ws)
    with ws.engine.begin() as conn:  # as the gate records them: c1 used bob's phone and a throwaway mailbox
        record_join_signals(conn, "bob", hash_signals(ws, RawSignals(device="bobs-phone")), day1)
        record_join_signals(conn, "c1", hash_signals(ws, RawSignals(device="bobs-phone", email="c1@mailinator.com")),
                            day1)
    day5 = datetime(2026, 3, 6, 2, 0)
    clock.now = day5
    _record(ws, [*(_visit(day5, f"w{i}", "carol", "poster") for i in range(4)),
                 *(_join(day5 + timedelta(minutes=i), f"d{i}", "carol", "spring", "poster") for i in (1, 2, 3)),
                 _order(day5 + timedelta(hours=2), "d1")])
    rewards_tick(ws)
    if release:
        clock.now = datetime(2026, 3, 14, 3, 0)
        rewards_tick(ws)
    return clock


def _table(rows: list[Any]) -> dict[str, tuple[int, ...]]:
    return {r.key: (r.invites, r.joined, r.qualified, r.paid, r.paid_value, r.review) for r in rows}


def test_numbers_per_member_campaign_and_channel(any_workspace: Workspace, tmp_path: Path) -> None:
    build_community(any_workspace, tmp_path)
    #                       invites joined qualified paid value review
    assert _table(referral_stats(any_workspace, by="member")) == {
        "alice": (3, 2, 1, 2, 50.0, 0), "bob": (0, 2, 1, 0, 0.0, 2), "carol": (4, 3, 1, 2, 50.0, 0)}
    assert _table(referral_stats(any_workspace, by="campaign")) == {
        "spring": (7, 5, 2, 4, 100.0, 0), "(none)": (0, 2, 1, 0, 0.0, 2)}
    assert _table(referral_stats(any_workspace, by="channel")) == {
        "wechat": (3, 3, 2, 2, 50.0, 2), "poster": (4, 4, 1, 2, 50.0, 0)}


def test_leaderboard_order_ties_and_local_day_periods(any_workspace: Workspace, tmp_path: Path) -> None:
    build_community(any_workspace, tmp_path)
    board = leaderboard(any_workspace, by="member")
    # All qualified 1; carol joined 3; alice and bob 2 each: the tie goes by name, the same every time.
    assert [(r.rank, r.key) for r in board] == [(1, "carol"), (2, "alice"), (3, "bob")]
    assert [r.key for r in leaderboard(any_workspace, by="member", limit=2)] == ["carol", "alice"]
    # wechat's second qualified invitee is bob's high-risk c1: it does not count toward the order (rank()).
    assert [(r.key, r.qualified) for r in leaderboard(any_workspace, by="channel")] == [("poster", 1), ("wechat", 2)]
    first_day = _table(leaderboard(any_workspace, start=datetime(2026, 3, 2).date(), end=datetime(2026, 3, 2).date()))
    # bob's second invitee joined at 00:30 on 3 March in Shanghai: not on the 2nd.
    assert first_day == {"alice": (3, 2, 1, 2, 50.0, 0), "bob": (0, 1, 1, 0, 0.0, 2)}
    later = _table(leaderboard(any_workspace, start=datetime(2026, 3, 3).date()))
    assert later == {"carol": (4, 3, 1, 2, 50.0, 0), "bob": (0, 1, 0, 0, 0.0, 0)}
    assert leaderboard(any_workspace, start=datetime(2026, 4, 1).date()) == []


def test_before_release_nothing_is_paid_and_bad_input_is_named(workspace: Workspace, tmp_path: Path) -> None:
    build_community(workspace, tmp_path, release=False)
    assert {r.key: (r.paid, r.review) for r in referral_stats(workspace)} == {
        "alice": (0, 0), "bob": (0, 0), "carol": (0, 0)}  # all still held
    with pytest.raises(InvalidInput, match="by must be one of member, campaign, channel"):
        referral_stats(workspace, by="group")
    with pytest.raises(InvalidInput, match=r"from \(2026-03-05\) is after to \(2026-03-01\)"):
        referral_stats(workspace, start=datetime(2026, 3, 5).date(), end=datetime(2026, 3, 1).date())
    with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
        rank([], 0)


def test_review_queue_and_program_views_on_both_databases(any_workspace: Workspace, tmp_path: Path) -> None:
    from qunflow.services import coupons as ledger
    from qunflow.services.reward_views import get_reward, list_rewards, overview, program_details

    build_community(any_workspace, tmp_path)
    queue = list_rewards(any_workspace, status="review")
    assert [(r["member_id"], r["rule"], r["fraud_level"]) for r in queue] == [
        ("bob", "invite_1", "high"), ("bob", "first_order", "high")]
    assert [(r["referral_id"], r["code"]) for r in queue[0]["fraud_reasons"]] == [
        (queue[0]["referral_id"], code) for code in REASONS]
    paid = list_rewards(any_workspace, status="paid")
    assert len(paid) == 4 and all(len(r["coupon_code"]) == 12 for r in paid)
    assert get_reward(any_workspace, paid[0]["id"]) == paid[0]
    assert overview(any_workspace)["statuses"]["paid"] == {"count": 4, "value": 100.0}
    [program] = program_details(any_workspace)
    assert [(r["id"], r["expected_cost"]) for r in program["rules"]] == [("invite_1", 12.0), ("first_order", 21.0)]
    coupon, new = ledger.issue_manual(any_workspace, member_id="m1", name="券", value=Decimal("5"), valid_days=3,
                                      cause="k", actor="test")
    again, new_again = ledger.issue_manual(any_workspace, member_id="m1", name="券", value=Decimal("5.00"),
                                           valid_days=3, cause="k", actor="test")
    assert (new, new_again, again.code) == (True, False, coupon.code)
    assert ledger.redeem_for(any_workspace, coupon.code, order_ref="o", member_id="m1", actor="t").status == "redeemed"
    assert [e["entry"] for e in ledger.show(any_workspace, coupon.code)["ledger"]] == ["issue", "redeem"]


def test_high_risk_invitees_are_counted_flagged_and_left_out_of_the_rank(any_workspace: Workspace,
                                                                          tmp_path: Path) -> None:
    build_community(any_workspace, tmp_path)
    by_channel = leaderboard(any_workspace, by="channel")
    # Raw counts would put wechat first (2 qualified); one of them is bob's self-referral, scored high.
    assert [(r.rank, r.key, r.qualified, r.high_risk, r.high_risk_qualified, r.risk) for r in by_channel] == [
        (1, "poster", 1, 0, 0, None), (2, "wechat", 2, 1, 1, "high")]
    bob = next(r for r in leaderboard(any_workspace, by="member") if r.key == "bob")
    assert (bob.joined, bob.high_risk, bob.as_json("member")["risk"]) == (2, 1, "high")
    # A flagged row is never ranked above a clean one on the strength of its flagged invitees alone.
    from qunflow.services.referral_stats import ReferralStats

    flagged = ReferralStats("aaron", joined=5, qualified=5, high_risk=5, high_risk_qualified=5)
    clean = ReferralStats("zoe", joined=1, qualified=1)
    assert [r.key for r in rank([flagged, clean])] == ["zoe", "aaron"]
