"""The rewards engine on a simulated clock: thresholds, double-sided and team rewards, quality rewards after a
real order, the hold period, refunds, budget caps — and the ledger balancing after each of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from qunflow.errors import Conflict, InvalidInput
from qunflow.services import coupons as ledger
from qunflow.services.ingest import ingest_batch
from qunflow.services.playbooks import apply_playbooks
from qunflow.services.rewards import clawback, decide, process_events, release_due, rewards_tick
from qunflow.store.tables import coupons, referrals, reward_budgets, rewards
from qunflow.workspace import Workspace

PROGRAM = """\
kind: rewards
key: spring
hold_days: 7
budget: {per_day: 200}
coupons:
  c20: {name: 邀请券, value: 20, valid_days: 30, redemption_rate: 0.6}
  c50: {name: 组队券, value: 50, valid_days: 30, redemption_rate: 0.5}
  c30: {name: 好友首单奖, value: 30, valid_days: 30, redemption_rate: 0.7}
  c10: {name: 新人券, value: 10, valid_days: 14, redemption_rate: 0.4}
  c5: {name: 组员券, value: 5, valid_days: 14}
rules:
  - {id: invite_1, invitees: 1, inviter: c20, invitee: c10}
  - {id: team_3, invitees: 3, inviter: c50, team: c5}
  - id: first_order
    qualify: first_order
    inviter: c30
    budget: {total: 60}
"""


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def stamp(moment: datetime) -> str:
    return moment.isoformat() + "Z"


@pytest.fixture
def world(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Clock]:
    clock = Clock(datetime(2026, 3, 2, 2, 0))  # 10:00 in Shanghai
    workspace.clock = clock
    path = tmp_path / "rewards.yaml"
    path.write_text(PROGRAM, encoding="utf-8")
    apply_playbooks(workspace, [path])
    return workspace, clock


def record(ws: Workspace, *items: dict[str, Any]) -> None:
    result = ingest_batch(ws.engine, list(items))
    assert not result.errors, result.errors


def joined(ws: Workspace, clock: Clock, member: str, referrer: str | None, campaign: str = "spring") -> None:
    record(ws, {"event_id": f"j-{member}", "type": "joined", "ts": stamp(clock.now), "member_id": member,
                "referrer_id": referrer, "campaign": campaign, "channel": "referral"})


def order(ws: Workspace, clock: Clock, member: str, order_id: str, amount: str = "99") -> None:
    record(ws, {"event_id": f"o-{order_id}", "type": "order", "ts": stamp(clock.now), "member_id": member,
                "amount": amount, "properties": {"order_id": order_id}})


def refund(ws: Workspace, clock: Clock, member: str, order_id: str) -> None:
    record(ws, {"event_id": f"r-{order_id}", "type": "refund", "ts": stamp(clock.now), "member_id": member,
                "properties": {"order_id": order_id}})


def by_cause(ws: Workspace) -> dict[str, Any]:
    with ws.engine.connect() as conn:
        return {r.cause: r for r in conn.execute(select(rewards))}


def balanced(ws: Workspace) -> None:
    with ws.engine.connect() as conn:
        assert ledger.ledger_problems(conn) == []


def test_thresholds_pay_inviter_invitee_and_team_after_the_hold(world: tuple[Workspace, Clock]) -> None:
    ws, clock = world
    for member in ("b1", "b2", "b3"):
        joined(ws, clock, member, "a")
        clock.now += timedelta(hours=1)
        # Real invitees say something; one who never does is held for review (never_active, see test_fraud).
        record(ws, {"event_id": f"msg-{member}", "type": "message", "ts": stamp(clock.now), "member_id": member})
    rewards_tick(ws)
    found = by_cause(ws)
    assert {c: r.value for c, r in found.items()} == {
        "rw:spring:invite_1:inviter:a": 20, "rw:spring:invite_1:invitee:b1": 10,
        "rw:spring:team_3:inviter:a": 50, "rw:spring:team_3:team:b1": 5, "rw:spring:team_3:team:b2": 5,
        "rw:spring:team_3:team:b3": 5}
    assert {r.status for r in found.values()} == {"held"}
    clock.now += timedelta(days=6)
    rewards_tick(ws)
    assert {r.status for r in by_cause(ws).values()} == {"held"}  # the hold is 7 days
    clock.now += timedelta(days=1, hours=3)
    rewards_tick(ws)
    paid = by_cause(ws)
    assert {r.status for r in paid.values()} == {"paid"}
    with ws.engine.connect() as conn:
        owned = {(c.member_id, c.name, c.value) for c in conn.execute(select(coupons))}
    assert owned == {("a", "邀请券", 20), ("b1", "新人券", 10), ("a", "组队券", 50), ("b1", "组员券", 5),
                     ("b2", "组员券", 5), ("b3", "组员券", 5)}
    # The engine reading the same events again pays nothing twice.
    joined(ws, clock, "b1", "a")  # a repeated join event: the referral is the first join
    rewards_tick(ws)
    assert len(by_cause(ws)) == 6
    balanced(ws)


def test_quality_reward_waits_for_a_real_order_and_a_refund_takes_it_back(world: tuple[Workspace, Clock]) -> None:
    ws, clock = world
    joined(ws, clock, "b1", "a")
    joined(ws, clock, "b2", "a")
    order(ws, clock, "b1", "early", "10")  # ts equal to the join: counts (at or after joining)
    rewards_tick(ws)
    assert by_cause(ws)["rw:spring:first_order:inviter:b1"].order_ref == "early"
    clock.now += timedelta(days=2)
    refund(ws, clock, "b1", "early")  # inside the hold: reversed, nothing paid, budget given back
    order(ws, clock, "b2", "o2")
    rewards_tick(ws)
    found = by_cause(ws)
    assert found["rw:spring:first_order:inviter:b1"].status == "reversed"
    assert found["rw:spring:first_order:inviter:b2"].status == "held"
    clock.now += timedelta(days=8)
    rewards_tick(ws)
    reward = by_cause(ws)["rw:spring:first_order:inviter:b2"]
    assert reward.status == "paid"
    with ws.engine.connect() as conn:
        code = conn.execute(select(coupons.c.code).where(coupons.c.id == reward.coupon_id)).scalar_one()
    with ws.engine.begin() as conn:
        ledger.change(conn, code, "redeem", now=clock.now, actor="test", order_ref="shop-9", redeemed_by="a")
    refund(ws, clock, "b2", "o2")  # after payment and redemption: a clawback entry
    rewards_tick(ws)
    assert by_cause(ws)["rw:spring:first_order:inviter:b2"].status == "clawed_back"
    with ws.engine.connect() as conn:
        assert conn.execute(select(coupons.c.status).where(coupons.c.code == code)).scalar_one() == "clawed_back"
        committed = dict(conn.execute(select(reward_budgets.c.scope, reward_budgets.c.committed)
                                      .where(reward_budgets.c.period == "total")).all())
    assert committed["rule:spring/first_order"] == 30  # the paid-then-clawed reward stays spent
    balanced(ws)


def test_orders_before_joining_and_by_non_invitees_qualify_nothing(world: tuple[Workspace, Clock]) -> None:
    ws, clock = world
    order(ws, clock, "b1", "before")
    clock.now += timedelta(minutes=1)
    joined(ws, clock, "b1", "a")
    joined(ws, clock, "c1", None)
    order(ws, clock, "c1", "c-order")
    rewards_tick(ws)
    assert not any("first_order" in cause for cause in by_cause(ws))
    with ws.engine.connect() as conn:
        assert conn.execute(select(referrals.c.invitee_id)).scalars().all() == ["b1"]


def test_budget_caps_are_never_passed(world: tuple[Workspace, Clock]) -> None:
    ws, clock = world
    # per_day 200 for the program: each inviter's first invitee costs 20 + 10.
    for i in range(10):
        joined(ws, clock, f"b{i}", f"a{i}")
    rewards_tick(ws)
    found = by_cause(ws)
    held = [r for r in found.values() if r.status == "held"]
    capped = [r for r in found.values() if r.status == "capped"]
    assert sum(r.value for r in held) <= 200
    assert sum(r.value for r in held) + min(r.value for r in capped) > 200  # capped only when it would not fit
    assert all(r.note.startswith("budget reached: program:spring") for r in capped)
    clock.now += timedelta(days=1)  # a new day has its own per-day budget
    joined(ws, clock, "late", "a-late")
    rewards_tick(ws)
    assert by_cause(ws)["rw:spring:invite_1:inviter:a-late"].status == "held"
    with ws.engine.connect() as conn:
        used = {(r.scope, r.period): r.committed for r in conn.execute(select(reward_budgets))}
    assert used[("program:spring", "2026-03-02")] == sum(r.value for r in held)
    assert used[("program:spring", "2026-03-03")] == 30


def test_review_queue_decisions_and_clawback(world: tuple[Workspace, Clock]) -> None:
    ws, clock = world
    joined(ws, clock, "b1", "a")
    process_events(ws)
    reward = by_cause(ws)["rw:spring:invite_1:inviter:a"]
    assert decide(ws, reward.id, approve=True, by="ops") == "paid"  # approved inside the hold: paid now
    with pytest.raises(Conflict):
        decide(ws, reward.id, approve=True, by="ops")  # decided once
    assert by_cause(ws)["rw:spring:invite_1:inviter:a"].status == "paid"
    with pytest.raises(InvalidInput):
        clawback(ws, reward.id, by="ops", reason=" ")
    assert clawback(ws, reward.id, by="ops", reason="device farm found by hand") == "clawed_back"
    other = by_cause(ws)["rw:spring:invite_1:invitee:b1"]
    assert decide(ws, other.id, approve=False, by="ops", note="test account") == "rejected"
    clock.now += timedelta(days=8)
    assert release_due(ws) == 0  # decided rewards are not released again
    with ws.engine.connect() as conn:
        states = {c.member_id: c.status for c in conn.execute(select(coupons))}
        committed = conn.execute(select(reward_budgets.c.committed).where(
            reward_budgets.c.scope == "program:spring")).scalar_one()
    assert states == {"a": "reversed"}  # an unredeemed coupon is reversed, not clawed back
    assert committed == Decimal(20)  # the rejected invitee reward gave its 10 back
    balanced(ws)


def test_a_bad_program_refuses_the_whole_apply(workspace: Workspace, tmp_path: Path) -> None:
    from qunflow.services.playbooks import shipped_files
    from qunflow.store.tables import playbooks, reward_programs

    bad = tmp_path / "bad.yaml"
    bad.write_text(PROGRAM.replace("inviter: c30", "inviter: c31"), encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        apply_playbooks(workspace, [*shipped_files(), bad])
    assert f"{bad}:16: rules[2].inviter: no coupon 'c31'" in str(caught.value)
    with workspace.engine.connect() as conn:
        assert conn.execute(select(playbooks)).first() is None
        assert conn.execute(select(reward_programs)).first() is None
    changes = apply_playbooks(workspace, shipped_files())
    assert ("s3_referral", "rewards", "new") in {(c.key, c.kind, c.status) for c in changes}


def test_a_paid_reward_tells_the_member_their_coupon_code_once(world: tuple[Workspace, Clock]) -> None:
    from qunflow.engine import outbox
    from qunflow.store.tables import deliveries, identities, members

    ws, clock = world
    chat = ws.sandbox.create_chat("Core")
    ws.sandbox.join("tg-a", "A", ws.sandbox.create_invite(chat, "x", join_request=False))  # reachable by DM
    with ws.engine.begin() as conn:
        conn.execute(members.insert().values(id="a", locale="en", created_at=clock.now))
        conn.execute(identities.insert().values(member_id="a", platform="sandbox", external_user_id="tg-a",
                                                created_at=clock.now))
    joined(ws, clock, "b1", "a")
    record(ws, {"event_id": "msg-b1", "type": "message", "ts": stamp(clock.now), "member_id": "b1"})
    rewards_tick(ws)
    reward = by_cause(ws)["rw:spring:invite_1:inviter:a"]
    decide(ws, reward.id, approve=True, by="ops")
    assert outbox.deliver(ws).sent == 1  # b1 has no platform identity: only a is told
    with ws.engine.connect() as conn:
        code = conn.execute(select(coupons.c.code).where(coupons.c.member_id == "a")).scalar_one()
        kinds = [row.kind for row in conn.execute(select(deliveries))]
    [dm] = ws.sandbox.messages(dm_user_id="tg-a")
    assert code in dm["text"] and "20" in dm["text"] and kinds == ["coupon_dm"]
    assert outbox.deliver(ws).sent == 0
