"""Pools: S4 buyers (the repurchase_pool tag) and a level-defined segment are stored as pools; the pool's
playbook enrolls them; the repeat-order rate within N days is split by entry week, with open windows
counted as in progress."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert, select

from qunflow.domain.pools import PoolRule
from qunflow.errors import NotFound
from qunflow.services.automation import dispatch_triggers
from qunflow.services.ingest import ingest_batch
from qunflow.services.levels import compute_levels
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.pools import pool_stats, sync_pools
from qunflow.store.tables import enrollments, member_tags, pool_members
from qunflow.workspace import Workspace
from tests.integration.test_levels import Clock, act, add_member, local


def tag(ws: Workspace, member_id: str, at: str) -> None:
    with ws.engine.begin() as conn:
        conn.execute(insert(member_tags).values(member_id=member_id, tag="repurchase_pool", added_at=local(at)))


def order(ws: Workspace, member_id: str, at: str) -> None:
    ingest_batch(ws.engine, [{"event_id": f"o-{member_id}-{at}", "type": "order", "member_id": member_id,
                              "amount": 99, "ts": f"{at}+08:00"}])


def test_repeat_order_rate_by_entry_week(any_workspace: Workspace) -> None:
    ws = any_workspace
    ws.clock = Clock(local("2026-04-05T12:00:00"))
    for name in ("a", "b", "c", "d", "e"):
        add_member(ws, f"m_{name}", local("2026-02-20T10:00:00"))
    order(ws, "m_c", "2026-03-02T20:30:00")  # the event's order: before entering, not a repeat
    for name in ("a", "b", "c"):
        tag(ws, f"m_{name}", "2026-03-02T21:00:00")  # Monday 03-02: week 1
    tag(ws, "m_d", "2026-03-09T10:00:00")  # week 2: its 30 days end 04-08, after the as-of day
    order(ws, "m_a", "2026-03-12T10:00:00")  # 10 days in: a repeat
    order(ws, "m_b", "2026-04-01T21:00:01")  # 30 days and a second later: outside the window
    order(ws, "m_d", "2026-03-20T10:00:00")  # a repeat, but still in progress
    assert sync_pools(ws) == {"repurchase": 4}
    assert sync_pools(ws) == {"repurchase": 0}

    stats = pool_stats(ws, "repurchase", date(2026, 4, 5))
    assert stats["members"] == 4 and stats["days"] == 30
    assert stats["weeks"] == [
        {"week": date(2026, 3, 2), "entered": 3, "in_progress": 0, "mature": 3, "repeated": 1, "rate": 1 / 3},
        {"week": date(2026, 3, 9), "entered": 1, "in_progress": 1, "mature": 0, "repeated": 0, "rate": None}]
    assert stats["total"] == {"mature": 3, "repeated": 1, "rate": 1 / 3}
    later = pool_stats(ws, "repurchase", date(2026, 4, 8))  # m_d's window closed on 04-08 at 10:00 local
    assert later["weeks"][1]["rate"] == 1.0 and later["total"]["rate"] == 0.5
    assert pool_stats(ws, "repurchase", date(2026, 3, 1))["members"] == 0  # nobody had entered yet
    with pytest.raises(NotFound, match="no pool 'vip'"):
        pool_stats(ws, "vip")


def test_a_level_defined_pool(workspace: Workspace) -> None:
    ws = workspace
    ws.clock = Clock(local("2026-03-20T09:00:00"))
    ws.settings.pools = {**ws.settings.pools, "fans": PoolRule(level="core", days=14)}
    add_member(ws, "m_fan", local("2026-03-01T10:00:00"))
    add_member(ws, "m_quiet", local("2026-03-01T10:00:00"))
    act(ws, "m_fan", local("2026-03-19T10:00:00"), n=5)
    compute_levels(ws)
    assert sync_pools(ws) == {"fans": 1, "repurchase": 0}
    with ws.engine.connect() as conn:
        rows = conn.execute(select(pool_members.c.pool, pool_members.c.member_id, pool_members.c.source)).all()
    assert [tuple(r) for r in rows] == [("fans", "m_fan", "level:core")]
    with pytest.raises(ValueError, match="exactly one"):
        PoolRule(tag="x", level="core")


def test_the_pool_playbook_enrolls_tagged_buyers(workspace: Workspace) -> None:
    ws = workspace
    ws.clock = Clock(local("2026-03-02T22:00:00"))
    apply_playbooks(ws, [p for p in shipped_files() if p.name == "repurchase_reminder.yaml"])
    add_member(ws, "m_a", local("2026-02-20T10:00:00"))
    ingest_batch(ws.engine, [{"event_id": "tag-1", "type": "tag_added", "member_id": "m_a",
                              "properties": {"tag": "repurchase_pool"}, "ts": "2026-03-02T21:00:00+08:00"}])
    assert dispatch_triggers(ws) == 1
    with ws.engine.connect() as conn:
        assert conn.execute(select(enrollments.c.playbook_key, enrollments.c.subject)).all() == \
            [("repurchase_reminder", "m_a")]
