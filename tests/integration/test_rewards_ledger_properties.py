"""Issue 5's ledger invariants under any sequence of invites, orders, refunds, expiries and decisions:
no reward twice for one cause, no budget cap passed, a balanced ledger — also under concurrency on PostgreSQL."""

from __future__ import annotations

import shutil
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from qunflow.domain.rewards import budget_scopes
from qunflow.errors import Conflict
from qunflow.services import coupons as ledger
from qunflow.services.ingest import ingest_batch
from qunflow.services.playbooks import apply_playbooks
from qunflow.services.rewards import clawback, commit_budget, decide, load_program, rewards_tick
from qunflow.store.tables import coupon_ledger, coupons, events, reward_budgets, rewards
from qunflow.workspace import Workspace, init_workspace, open_workspace
from tests.integration.test_rewards import PROGRAM, Clock

COMMITTED = ("held", "review", "paid", "clawed_back")  # statuses whose value stays counted against budgets
CAPS = """\
kind: rewards
key: tight
hold_days: 2
budget: {total: 120, per_day: 70}
coupons:
  c15: {name: 小券, value: 15, valid_days: 3}
  c25: {name: 大券, value: 25, valid_days: 5}
rules:
  - {id: first, invitees: 1, inviter: c15, invitee: c15}
  - {id: pair, invitees: 2, inviter: c25, team: c15, budget: {total: 80}}
  - {id: buyer, qualify: first_order, inviter: c25, invitee: c15}
"""

# (kind, a, b), read per kind in run_ops; the kinds' weights make joins and payments common.
KINDS = ["join"] * 5 + ["order"] * 2 + ["refund", "advance", "advance", "redeem", "approve", "reject", "clawback"]
ops = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 200), st.one_of(st.none(), st.integers(0, 9))),
               min_size=3, max_size=50)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated workspace with both programs applied; each example runs on a copy (fast)."""
    base = tmp_path_factory.mktemp("rewards-template")
    ws = init_workspace(base / "ws")
    (base / "programs.yaml").write_text(PROGRAM + "---\n" + CAPS, encoding="utf-8")
    apply_playbooks(ws, [base / "programs.yaml"])
    ws.close()
    return base / "ws"


def check_invariants(ws: Workspace) -> None:
    with ws.engine.connect() as conn:
        assert ledger.ledger_problems(conn) == []
        all_rewards = conn.execute(select(rewards)).all()
        # Each paid or clawed-back reward has exactly one coupon, and no coupon pays two rewards.
        paying = conn.execute(select(coupons.c.reward_id, func.count()).where(coupons.c.reward_id.is_not(None))
                              .group_by(coupons.c.reward_id)).all()
        assert all(count == 1 for _, count in paying)
        with_coupon = {r.id for r in all_rewards if r.coupon_id is not None}
        assert with_coupon == {rid for rid, _ in paying}
        assert {r.id for r in all_rewards if r.status in ("paid", "clawed_back")} <= with_coupon
        assert not [r for r in all_rewards if r.status in ("held", "review", "capped", "rejected") and r.coupon_id]
        # A reward taken back leaves no usable coupon behind.
        state = dict(conn.execute(select(coupons.c.id, coupons.c.status)).all())
        assert not [r for r in all_rewards if r.status == "clawed_back" and state[r.coupon_id] in ledger.OPEN]
        assert not [r for r in all_rewards if r.status == "paid" and state[r.coupon_id] in ("reversed", "clawed_back")]
        # Budgets: what is recorded as committed is exactly what the counted rewards are worth, within caps.
        expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        caps: dict[tuple[str, str], Decimal] = {}
        for reward in all_rewards:
            program = load_program(conn, reward.program, reward.program_version)
            day = reward.created_at.replace(tzinfo=UTC).astimezone(ws.settings.zone).date().isoformat()
            for scope, period, cap in budget_scopes(program, program.rule(reward.rule), day):
                caps[(scope, period)] = cap
                if reward.status in COMMITTED:
                    expected[(scope, period)] += Decimal(reward.value)
        recorded = {(r.scope, r.period): Decimal(r.committed) for r in conn.execute(select(reward_budgets))}
        for key, cap in caps.items():
            assert recorded.get(key, Decimal(0)) == expected.get(key, Decimal(0)), key
            assert recorded.get(key, Decimal(0)) <= cap, key
        # Every ledger entry is also an event.
        entries = conn.execute(select(func.count()).select_from(coupon_ledger)).scalar_one()
        coupon_events = conn.execute(select(func.count()).select_from(events)
                                     .where(events.c.type.like("coupon_%"))).scalar_one()
        assert coupon_events == entries


def run_ops(ws: Workspace, clock: Clock, steps: list[tuple[str, int, Any]]) -> None:
    joined: set[int] = set()
    for kind, a, b in steps:
        at = clock.now.isoformat() + "Z"
        member, number = a % 10, (b or 0) % 4
        if kind == "join":
            ref = None if b is None else f"m{b % 5}"  # m{a} = m{b}: a self-referral, kept for the fraud checks
            ingest_batch(ws.engine, [{"event_id": f"j{member}-{len(joined)}", "type": "joined", "ts": at,
                                      "member_id": f"m{member}", "referrer_id": ref, "campaign": "c"}])
            joined.add(member)
        elif kind == "order":
            ingest_batch(ws.engine, [{"event_id": f"o{member}-{number}", "type": "order", "ts": at,
                                      "member_id": f"m{member}", "amount": "50",
                                      "properties": {"order_id": f"o{member}-{number}"}}])
        elif kind == "refund":
            ingest_batch(ws.engine, [{"event_id": f"r{member}-{number}", "type": "refund", "ts": at,
                                      "member_id": f"m{member}", "properties": {"order_id": f"o{member}-{number}"}}])
        elif kind == "advance":
            clock.now += timedelta(hours=a)
        else:
            act_on(ws, clock, kind, a, member)
        rewards_tick(ws)
        check_invariants(ws)


def act_on(ws: Workspace, clock: Clock, kind: str, pick: int, member: int) -> None:
    with ws.engine.connect() as conn:
        if kind == "redeem":
            codes = conn.execute(select(coupons.c.code).order_by(coupons.c.id)).scalars().all()
        else:
            ids = conn.execute(select(rewards.c.id).order_by(rewards.c.id)).scalars().all()
    try:
        if kind == "redeem" and codes:
            with ws.engine.begin() as conn:
                ledger.change(conn, codes[pick % len(codes)], "redeem", now=clock.now, actor="test",
                              order_ref=f"shop-{pick}", redeemed_by=f"m{member}")
        elif kind in ("approve", "reject") and ids:
            decide(ws, ids[pick % len(ids)], approve=kind == "approve", by="ops")
        elif kind == "clawback" and ids:
            clawback(ws, ids[pick % len(ids)], by="ops", reason="checked by hand")
    except Conflict:
        pass  # already decided, used, expired: refused, and the invariants must still hold


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=ops)
@example(steps=[("join", 1, 2), ("join", 3, 2), ("order", 1, 0), ("advance", 200, None), ("clawback", 0, None),
                ("redeem", 1, 1), ("refund", 1, 0), ("clawback", 2, None)])
@example(steps=[("join", 1, 2), ("order", 1, 0), ("approve", 7, None), ("refund", 1, 0), ("advance", 100, None),
                ("join", 4, 2), ("reject", 3, None), ("advance", 200, None), ("redeem", 0, 4), ("clawback", 0, None)])
def test_any_sequence_keeps_the_ledger_whole(template: Path, tmp_path_factory: pytest.TempPathFactory,
                                            steps: list[tuple[str, int, Any]]) -> None:
    home = tmp_path_factory.mktemp("example") / "ws"
    shutil.copytree(template, home)
    ws = open_workspace(home)
    clock = Clock(datetime(2026, 3, 2, 15, 30))  # 23:30 in Shanghai: day boundaries come fast
    ws.clock = clock
    try:
        run_ops(ws, clock, steps)
        with ws.engine.connect() as conn:
            for status in conn.execute(select(rewards.c.status).distinct()).scalars():
                event(f"a reward ends {status}")
            for status in conn.execute(select(coupons.c.status).distinct()).scalars():
                event(f"a coupon ends {status}")
    finally:
        ws.close()


def test_an_unbalanced_ledger_is_caught(template: Path, tmp_path: Path) -> None:
    """The checker itself can fail: tamper with a coupon behind the ledger's back."""
    shutil.copytree(template, tmp_path / "ws")
    ws = open_workspace(tmp_path / "ws")
    clock = Clock(datetime(2026, 3, 2, 2, 0))
    ws.clock = clock
    # The invitee orders a day later: active and not too fast, so the fraud checks let the reward be paid.
    run_ops(ws, clock, [("join", 1, 2), ("advance", 24, 0), ("order", 1, 0), ("advance", 200, 0)])
    with ws.engine.begin() as conn:
        conn.execute(coupons.update().where(coupons.c.id == 1).values(status="redeemed"))
        assert ledger.ledger_problems(conn) == ["coupon 1: the ledger ends at issued but the coupon is redeemed"]
    ws.close()


# --- concurrency on PostgreSQL ----------------------------------------------------------------------

def _threads(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the outcome of each racer is the test's data
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
def test_concurrent_grants_never_pass_a_cap(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    scopes = [("program:p", "total", Decimal(100)), ("rule:p/r", "2026-03-02", Decimal(70))]

    def grant(_: int) -> bool:
        with ws.engine.begin() as conn:
            return commit_budget(conn, scopes, Decimal(15)) is None

    results = _threads(12, grant)
    assert results.count(True) == 4 and results.count(False) == 8  # 4 x 15 = 60 <= 70 < 75
    with ws.engine.connect() as conn:
        used = dict(conn.execute(select(reward_budgets.c.scope, reward_budgets.c.committed)).all())
    assert used == {"program:p": 60, "rule:p/r": 60}  # the refused ones left nothing behind


@pytest.mark.postgres
def test_concurrent_redeems_of_one_coupon_let_exactly_one_through(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    now = datetime(2026, 3, 2, 2, 0)
    with ws.engine.begin() as conn:
        coupon, _ = ledger.issue(conn, member_id="m1", name="券", value=Decimal(20), valid_days=7, cause="t:1",
                                 now=now, actor="test")

    def redeem(i: int) -> str:
        with ws.engine.begin() as conn:
            return ledger.change(conn, coupon.code, "redeem", now=now, actor="test", order_ref=f"o{i}").status

    results = _threads(8, redeem)
    assert results.count("redeemed") == 1
    assert all(isinstance(r, Conflict) for r in results if r != "redeemed")
    with ws.engine.connect() as conn:
        assert ledger.ledger_problems(conn) == []
        assert conn.execute(select(func.count()).select_from(coupon_ledger)).scalar_one() == 2


@pytest.mark.postgres
def test_two_engines_on_the_same_events_pay_each_reward_once(pg_workspace: Workspace, tmp_path: Path) -> None:
    ws = pg_workspace
    clock = Clock(datetime(2026, 3, 2, 2, 0))
    ws.clock = clock
    # About races, not fraud: forty joins and their orders in one instant would be a burst of fast conversions.
    ws.settings.fraud_burst_count, ws.settings.fraud_fast_conversion_minutes = 1000, 0
    ws.settings.fraud_inactive_days = 30
    (tmp_path / "p.yaml").write_text(CAPS, encoding="utf-8")
    apply_playbooks(ws, [tmp_path / "p.yaml"])
    batch = [{"event_id": f"j{i}", "type": "joined", "ts": clock.now.isoformat() + "Z", "member_id": f"b{i}",
              "referrer_id": f"a{i % 7}", "campaign": "c"} for i in range(40)]
    batch += [{"event_id": f"o{i}", "type": "order", "ts": clock.now.isoformat() + "Z", "member_id": f"b{i}",
               "properties": {"order_id": f"o{i}"}} for i in range(0, 40, 3)]
    ingest_batch(ws.engine, batch)

    def engine(_: int) -> None:
        for _round in range(3):
            rewards_tick(ws)

    assert not [r for r in _threads(3, engine) if isinstance(r, Exception)]
    clock.now += timedelta(days=3)
    _threads(2, engine)
    check_invariants(ws)
    with ws.engine.connect() as conn:
        statuses = dict(conn.execute(select(rewards.c.status, func.count()).group_by(rewards.c.status)).all())
    assert statuses.get("paid", 0) > 0 and statuses.get("capped", 0) > 0
