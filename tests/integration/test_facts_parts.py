"""The ClickHouse facts tables' parts (analytics/facts_clickhouse_parts.merge_parts), on chdb and on a ClickHouse
server: a catch-up merges a table only once it holds more than MAX_PARTS active parts; a rebuild, a merge of
members, its undo and an erasure leave one part per table; what the views read is a rebuild's throughout."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from qunflow.analytics import facts_rules
from qunflow.analytics.engines import ClickHouseServerEngine
from qunflow.analytics.facts_clickhouse_parts import LOG_TABLES, MAX_PARTS
from qunflow.analytics.shipper import analytics
from qunflow.services.erasure import erase_member
from qunflow.services.ingest import ingest_batch
from qunflow.services.merges import merge, undo
from qunflow.store.tables import members
from qunflow.workspace import Workspace
from tests.integration.test_member_facts import (
    days_rows,
    engine_workspace,
    facts_rows,
    landing_rows,
    rebuilt_days_rows,
    rebuilt_landing_rows,
    rebuilt_rows,
)

# Each batch touches every facts table: new and known members (facts, days), landing views, a visitor linked.
BATCHES = [
    [{"event_id": "l1", "type": "landing_view", "ts": "2026-03-01T10:00:00+08:00", "visitor_id": "v1",
      "channel": "ads"},
     {"event_id": "ja", "type": "joined", "ts": "2026-03-01T11:00:00+08:00", "member_id": "a", "channel": "ads"},
     {"event_id": "jb", "type": "joined", "ts": "2026-03-01T12:00:00+08:00", "member_id": "b", "referrer_id": "a"}],
    [{"event_id": "jc", "type": "joined", "ts": "2026-03-02T10:00:00+08:00", "member_id": "c", "visitor_id": "v1"},
     {"event_id": "ma", "type": "message", "ts": "2026-03-02T11:00:00+08:00", "member_id": "a"},
     {"event_id": "l2", "type": "landing_view", "ts": "2026-03-02T09:00:00+08:00", "visitor_id": "v2"}],
    [{"event_id": "mb", "type": "message", "ts": "2026-03-03T10:00:00+08:00", "member_id": "b"},
     {"event_id": "jd", "type": "joined", "ts": "2026-03-03T11:00:00+08:00", "member_id": "d", "visitor_id": "v2"},
     {"event_id": "lc", "type": "left", "ts": "2026-03-04T10:00:00+08:00", "member_id": "c"}],
    [{"event_id": "l3", "type": "landing_view", "ts": "2026-03-04T09:00:00+08:00", "visitor_id": "v3"},
     {"event_id": "je", "type": "joined", "ts": "2026-03-04T10:00:00+08:00", "member_id": "e", "visitor_id": "v3",
      "referrer_id": "b"},
     {"event_id": "md", "type": "message", "ts": "2026-03-05T10:00:00+08:00", "member_id": "d"}],
]


def later_batch(i: int) -> list[dict[str, Any]]:
    """A visitor lands and joins referred by b, and a and d write: all five tables touched again."""
    day = (date(2026, 3, 6) + timedelta(days=i)).isoformat()
    return [{"event_id": f"lx{i}", "type": "landing_view", "ts": f"{day}T09:00:00+08:00", "visitor_id": f"vx{i}"},
            {"event_id": f"jx{i}", "type": "joined", "ts": f"{day}T10:00:00+08:00", "member_id": f"x{i}",
             "visitor_id": f"vx{i}", "referrer_id": "b"},
            {"event_id": f"ma{i}", "type": "message", "ts": f"{day}T11:00:00+08:00", "member_id": "a"},
            {"event_id": f"md{i}", "type": "message", "ts": f"{day}T12:00:00+08:00", "member_id": "d"}]


def active_parts(engine: Any) -> dict[str, int]:
    return dict(engine.query("SELECT table, count() FROM system.parts WHERE database = currentDatabase() AND active "
                             f"AND table IN {LOG_TABLES!r} GROUP BY table", {})[1])


def parts_but_the_last_insert(engine: Any) -> dict[str, int]:
    """Active parts per facts table, the newest left out when it holds one insert (no merge's result): what a
    step's own event, shipped after it, adds."""
    rows = engine.query("SELECT table, min_block_number = max_block_number FROM system.parts "
                        f"WHERE database = currentDatabase() AND active AND table IN {LOG_TABLES!r} "
                        "ORDER BY table, min_block_number", {})[1]
    inserts: dict[str, list[bool]] = {}
    for table, one_insert in rows:
        inserts.setdefault(table, []).append(bool(one_insert))
    return {table: len(found) - (len(found) > 1 and found[-1]) for table, found in inserts.items()}


def hold_off_background_merges(engine: Any) -> None:
    """ClickHouse's own merges (chdb's too, while the test holds the store open) pick no parts any more, and
    OPTIMIZE ... FINAL still merges: the parts left are those merge_parts leaves. A rebuild's fresh tables lose it."""
    for table in LOG_TABLES:
        engine.command(f"ALTER TABLE {table} MODIFY SETTING max_bytes_to_merge_at_max_space_in_pool = 1")


def assert_kept_equal_rebuilt(engine: Any, ws: Workspace) -> None:
    kept = [facts_rows(engine), days_rows(engine), *landing_rows(engine)]
    assert kept == [rebuilt_rows(engine, ws), rebuilt_days_rows(engine, ws), *rebuilt_landing_rows(engine, ws)]


def ship(ws: Workspace, batch: list[dict[str, Any]]) -> dict[str, int]:
    """Ingest and ship `batch`; the facts' parts after, the kept facts checked against a rebuild."""
    assert not ingest_batch(ws.engine, batch).errors
    with analytics(ws) as engine:
        assert_kept_equal_rebuilt(engine, ws)
        return active_parts(engine)


@pytest.mark.parametrize("engine_name", ["chdb", "clickhouse"])
def test_catch_ups_merge_a_facts_table_only_above_max_parts_and_keep_the_same_facts(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """Per-member catch-ups (no rebuild after the first ship), each inserting new versions and tombstones into
    all five tables: tables hold several parts between merges, never more than MAX_PARTS after a catch-up, and
    the views read what a rebuild gives. With a table's merges stopped, a ship still succeeds and leaves that
    table's parts alone."""
    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    try:
        ship(ws, BATCHES[0])
        with analytics(ws) as engine:
            hold_off_background_merges(engine)
        seen = [ship(ws, batch) for batch in BATCHES[1:] + [later_batch(i) for i in range(6)]]
        assert all(max(parts.values()) <= MAX_PARTS for parts in seen), seen
        assert any(max(parts.values()) > 1 for parts in seen), seen  # a catch-up no longer merges every part
        merged = [table for table in LOG_TABLES if any(before.get(table, 0) > after.get(table, 0)
                                                       for before, after in zip(seen, seen[1:], strict=False))]
        assert merged == list(LOG_TABLES), seen  # each table went over MAX_PARTS and was merged at least once
        with analytics(ws) as engine:
            engine.command("SYSTEM STOP MERGES member_facts_log")  # type: ignore[attr-defined]
            before = active_parts(engine)["member_facts_log"]
        for i in range(6, 6 + MAX_PARTS):
            parts = ship(ws, later_batch(i))
        assert parts["member_facts_log"] > max(before, MAX_PARTS)
    finally:
        ws.close()


@pytest.mark.parametrize("engine_name", ["chdb", "clickhouse"])
def test_a_rebuild_a_merge_its_undo_and_an_erasure_each_leave_one_part_per_facts_table(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """Before each, a catch-up leaves the tables with several parts; after it, one each (but the part its own event
    adds: a merge ships `members_merged`), and the kept facts equal a rebuild. The merge, its undo and the erasure
    rewrite the facts in place, by member; a rebuild's (and on chdb an erasure's) fresh tables hold one part at
    this size whatever merge_parts does."""
    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    done: dict[str, Any] = {}

    def settings_changed() -> None:
        ws.settings.engagement_types = [*ws.settings.engagement_types, "reward_claimed"]
        ship(ws, later_batch(90))

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("rebuild", settings_changed),
        ("merge", lambda: done.update(merge(ws, "d", "e", actor="cli"))),
        ("undo", lambda: undo(ws, done["id"], actor="cli")),
        ("erasure", lambda: erase_member(ws, "c", actor="cli")),
    ]
    with ws.engine.begin() as conn:  # erase_member needs the members row a join through qunflow makes
        conn.execute(insert(members).values(id="c", locale="zh", created_at=datetime(2026, 3, 2, 2)))
    try:
        for batch in BATCHES:
            ship(ws, batch)
        for n, (name, step) in enumerate(steps):
            with analytics(ws) as engine:
                hold_off_background_merges(engine)
            assert max(ship(ws, later_batch(n)).values()) > 1, name
            step()
            with analytics(ws) as engine:
                assert parts_but_the_last_insert(engine) == dict.fromkeys(LOG_TABLES, 1), name
                assert_kept_equal_rebuilt(engine, ws)
    finally:
        ws.close()


def event_structures(engine: Any, table: str) -> list[str]:
    """The data-skipping indexes and projections of the events `table`."""
    return sorted(name for (name,) in engine.query(
        "SELECT name FROM system.data_skipping_indices WHERE database = currentDatabase() AND table = $t "
        "UNION ALL SELECT name FROM system.projections WHERE database = currentDatabase() AND table = $t",
        {"t": table})[1])


def wait_for_mutations(engine: Any) -> None:
    for _ in range(300):
        if not engine.query("SELECT count() FROM system.mutations WHERE database = currentDatabase() "
                            "AND NOT is_done", {})[1][0][0]:
            return
        time.sleep(0.1)
    raise AssertionError("the events' indexes were not built within 30 s")


@pytest.mark.parametrize("engine_name", ["chdb", "clickhouse"])
def test_a_store_made_before_the_event_indexes_gets_them_on_opening_and_catches_up_the_same(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """A store whose events table has no skip index (nor, on chdb, the projection by member) is given them when
    a process opens it, built for the rows it holds; catch-ups, which read a member's events through them, keep
    the facts a rebuild gives."""
    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    table = "events" if engine_name == "chdb" else "events_log"
    try:
        for batch in BATCHES[:2]:
            ship(ws, batch)
        with analytics(ws) as engine:
            made = event_structures(engine, table)
            assert made == (["events_by_member", "events_member_id", "events_visitor_id"] if engine_name == "chdb"
                            else ["events_member_id", "events_visitor_id"])
            for name in made:  # as a store made before them
                kind = "PROJECTION" if name == "events_by_member" else "INDEX"
                engine.command(f"ALTER TABLE {table} DROP {kind} {name}")  # type: ignore[attr-defined]
            assert event_structures(engine, table) == []
        if engine_name == "chdb":  # a new session on the store (one per process): open another, then it again
            other = engine_workspace(request, tmp_path / "other", "chdb")
            with analytics(other):
                pass
            other.close()
        else:  # a new process's client
            ClickHouseServerEngine.connect(ws.settings.clickhouse)
        with analytics(ws) as engine:
            assert event_structures(engine, table) == made
            wait_for_mutations(engine)
        for batch in BATCHES[2:] + [later_batch(i) for i in range(2)]:
            ship(ws, batch)
    finally:
        ws.close()
