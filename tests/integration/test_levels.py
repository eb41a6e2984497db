"""Engagement levels on a simulated clock: levels move as activity is simulated, each move is an event,
the one-statement SQL agrees with the domain function, and a level_changed playbook trigger fires."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from qunflow.domain.engagement import LevelRules, engagement_level
from qunflow.errors import InvalidInput
from qunflow.services.automation import work_once
from qunflow.services.ingest import ingest_batch
from qunflow.services.levels import compute_levels, last_as_of
from qunflow.services.playbooks import apply_playbooks
from qunflow.store.tables import events, inbox, member_levels, members
from qunflow.workspace import Workspace

ZONE = ZoneInfo("Asia/Shanghai")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE).astimezone(UTC).replace(tzinfo=None)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def add_member(ws: Workspace, member_id: str, joined: datetime) -> None:
    with ws.engine.begin() as conn:
        conn.execute(insert(members).values(id=member_id, locale="zh", tier="newbie", created_at=joined,
                                            joined_at=joined))


def act(ws: Workspace, member_id: str, at: datetime, kind: str = "message", n: int = 1) -> None:
    stamp = at.replace(tzinfo=UTC)
    batch = [{"event_id": f"{member_id}-{kind}-{stamp:%Y%m%d%H%M%S}-{i}", "type": kind, "member_id": member_id,
              "ts": (stamp + timedelta(seconds=i)).isoformat()} for i in range(n)]
    assert ingest_batch(ws.engine, batch).stored == n


def level_of(ws: Workspace, member_id: str) -> str | None:
    with ws.engine.connect() as conn:
        return conn.execute(select(member_levels.c.level).where(member_levels.c.member_id == member_id)).scalar()


def changes(ws: Workspace, member_id: str) -> list[tuple[str | None, str]]:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(events.c.properties).where(events.c.type == "level_changed",
                                                             events.c.member_id == member_id)
                            .order_by(events.c.seq)).scalars().all()
    return [(p["from"], p["to"]) for p in rows]


def test_levels_follow_simulated_activity(any_workspace: Workspace) -> None:
    ws = any_workspace
    clock = Clock(local("2026-03-02T09:00:00"))
    ws.clock = clock
    add_member(ws, "m_busy", clock.now)
    add_member(ws, "m_quiet", clock.now)
    assert compute_levels(ws).counts["new"] == 2
    assert changes(ws, "m_busy") == [(None, "new")]

    # Day 1..10: m_busy writes every day; m_quiet once on day 2, then nothing.
    act(ws, "m_quiet", clock.now + timedelta(days=1))
    for day in range(1, 11):
        clock.now = local("2026-03-02T21:00:00") + timedelta(days=day)
        act(ws, "m_busy", clock.now - timedelta(hours=1), n=2)
        run = compute_levels(ws)
        assert run.members == 2
    assert level_of(ws, "m_busy") == "core"  # 7 days x 2 messages: 3 x 14 + 20 >= 15
    assert level_of(ws, "m_quiet") == "slipping"  # active on day 1 only, 10 days ago
    assert changes(ws, "m_busy") == [(None, "new"), ("new", "core")]
    # active on day 7 (its one message is in the week's window), slipping from day 8
    assert changes(ws, "m_quiet") == [(None, "new"), ("new", "active"), ("active", "slipping")]

    # m_busy goes quiet: core, then slipping after a week, dormant after 30 days without activity.
    seen = []
    for day in range(11, 50):
        clock.now = local("2026-03-02T21:00:00") + timedelta(days=day)
        compute_levels(ws)
        seen.append(level_of(ws, "m_busy"))
    # the week's window holds the last messages through day 16 (2 recent: 3 x 2 + 20 >= 15), then none
    assert seen[:7] == ["core"] * 6 + ["slipping"]
    assert "slipping" in seen and seen[-1] == "dormant"
    assert seen.index("dormant") == seen.index("slipping") + 23  # slipping for days 8..30 after the last event
    assert [to for _, to in changes(ws, "m_busy")] == ["new", "core", "slipping", "dormant"]
    assert changes(ws, "m_quiet")[-1] == ("slipping", "dormant")

    # A comeback: one poll vote (an engagement event) makes a dormant member active again.
    act(ws, "m_quiet", clock.now - timedelta(hours=1), kind="poll_vote")
    compute_levels(ws)
    assert level_of(ws, "m_quiet") == "active"
    assert last_as_of(ws) == clock.now.replace(tzinfo=UTC).astimezone(ZONE).date()


def test_recomputing_the_same_day_records_nothing_new(any_workspace: Workspace) -> None:
    ws = any_workspace
    ws.clock = Clock(local("2026-03-20T09:00:00"))
    add_member(ws, "m_a", local("2026-03-01T10:00:00"))
    act(ws, "m_a", local("2026-03-19T10:00:00"), kind="task_completed")
    assert compute_levels(ws).changed == 1
    assert compute_levels(ws).changed == 0
    assert changes(ws, "m_a") == [(None, "active")]
    act(ws, "m_a", local("2026-03-10T10:00:00"), kind="landing_view", n=30)  # not an engagement event
    assert compute_levels(ws).changed == 0


def test_sql_agrees_with_the_domain_function(any_workspace: Workspace) -> None:
    """Random members and activity around the window edges: the stored level equals engagement_level."""
    ws = any_workspace
    as_of = date(2026, 3, 31)
    ws.clock = Clock(local("2026-03-31T23:00:00"))
    rules = ws.settings.levels
    rng = random.Random(13)
    expected: dict[str, str] = {}
    for i in range(300):
        member_id = f"m_{i}"
        tenure = rng.choice([0, 1, 6, 7, 8, 29, 30, 31, 60])
        joined = local(f"{as_of - timedelta(days=tenure)}T{rng.choice(['00:00:00', '12:00:00', '23:59:59'])}")
        add_member(ws, member_id, joined)
        ages = [rng.choice([0, 5, 6, 7, 20, 29, 30, 45]) for _ in range(rng.choice([0, 0, 1, 2, 6, 12]))]
        batch = [{"event_id": f"{member_id}-{k}", "type": rng.choice(["message", "order", "checkin"]),
                  "member_id": member_id,
                  "ts": local(f"{as_of - timedelta(days=age)}T{rng.choice(['00:00:00', '23:59:59'])}")
                  .replace(tzinfo=UTC).isoformat()} for k, age in enumerate(ages)]
        if batch:
            ingest_batch(ws.engine, batch)
        recent = sum(age < rules.recent_days for age in ages)
        long = sum(age < rules.long_days for age in ages)
        expected[member_id] = engagement_level(tenure, recent, long, rules)
    compute_levels(ws, as_of)
    with ws.engine.connect() as conn:
        stored = dict(conn.execute(select(member_levels.c.member_id, member_levels.c.level)).all())
    assert stored == expected
    assert len(set(expected.values())) == 5  # every level occurs: the comparison means something


def test_rules_come_from_settings_and_future_days_are_refused(workspace: Workspace) -> None:
    ws = workspace
    ws.clock = Clock(local("2026-03-20T09:00:00"))
    add_member(ws, "m_a", local("2026-03-01T10:00:00"))
    act(ws, "m_a", local("2026-03-19T10:00:00"), n=3)
    compute_levels(ws)
    assert level_of(ws, "m_a") == "active"  # 3 x 3 + 3 = 12 < 15
    ws.settings.levels = LevelRules(core_score=12)
    compute_levels(ws)
    assert level_of(ws, "m_a") == "core"
    with pytest.raises(InvalidInput, match="future"):
        compute_levels(ws, date(2026, 3, 21))
    with pytest.raises(ValueError, match="long_days"):
        LevelRules(recent_days=7, long_days=7)


SLIPPING = """
kind: playbook
key: win_back
title: {zh: 挽回, en: Win back}
trigger: {on: level_changed, to: [slipping], from: [active, core]}
steps:
  - advisor_task:
      title: {zh: 会员在流失, en: A member is slipping}
      due_hours: 24
"""


def test_level_changed_triggers_a_playbook(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    clock = Clock(local("2026-03-20T09:00:00"))
    ws.clock = clock
    path = tmp_path / "win_back.yaml"
    path.write_text(SLIPPING)
    apply_playbooks(ws, [path])
    add_member(ws, "m_a", local("2026-03-01T10:00:00"))
    add_member(ws, "m_never", local("2026-03-01T10:00:00"))  # slipping from new, not from active: no task
    act(ws, "m_a", local("2026-03-19T10:00:00"))
    compute_levels(ws)
    work_once(ws)
    assert inbox_members(ws) == []
    clock.now = local("2026-03-27T09:00:00")  # 8 days after the last message
    compute_levels(ws)
    work_once(ws)
    assert level_of(ws, "m_a") == "slipping" and inbox_members(ws) == ["m_a"]
    compute_levels(ws)  # no new move, no second task
    work_once(ws)
    assert inbox_members(ws) == ["m_a"]


def inbox_members(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        return list(conn.execute(select(inbox.c.member_id).order_by(inbox.c.id)).scalars())


def test_a_bad_level_in_a_trigger_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SLIPPING.replace("to: [slipping]", "to: [lapsed]"))
    with pytest.raises(InvalidInput, match="to"):
        apply_playbooks(workspace, [path])
    path.write_text(SLIPPING.replace("on: level_changed", "on: order_placed"))
    with pytest.raises(InvalidInput, match="level_changed only"):
        apply_playbooks(workspace, [path])


def test_a_poll_vote_counts_as_engagement(any_workspace: Workspace, tmp_path: Path) -> None:
    """A real vote through the Day-1 poll task (services/tasks.cast_vote) records poll_vote, which the levels
    count as activity (METRICS.md engagement events); with poll_vote taken off the list it does not count."""
    from qunflow.services.tasks import cast_vote
    from tests.integration.test_day1_tasks import WELCOME_WITH_POLL, gated_member
    from tests.integration.test_join_flow import setup_community

    ws = any_workspace
    clock = Clock(local("2026-03-02T10:00:00"))
    ws.clock = clock
    setup_community(ws)
    path = tmp_path / "welcome.yaml"
    path.write_text(WELCOME_WITH_POLL, encoding="utf-8")
    apply_playbooks(ws, [path])
    member_id = gated_member(ws)
    clock.now = local("2026-03-20T10:00:00")
    compute_levels(ws)
    assert level_of(ws, member_id) == "slipping"  # 18 days in, never active
    assert cast_vote(ws, member_id, "vote", "seo")
    ws.settings.engagement_types = ["message"]  # poll_vote not on the list: still slipping
    compute_levels(ws)
    assert level_of(ws, member_id) == "slipping"
    ws.settings.engagement_types = ["poll_vote"]  # only the vote counts: active
    compute_levels(ws)
    assert level_of(ws, member_id) == "active"
    assert changes(ws, member_id)[-1] == ("slipping", "active")
