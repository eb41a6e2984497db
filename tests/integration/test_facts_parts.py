"""The ClickHouse facts tables (analytics/facts_clickhouse.py) are merged into one part each after a catch-up, on
chdb and on a ClickHouse server: FINAL then reads them without merging, and what the views read is unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qunflow.analytics import facts
from qunflow.analytics.facts_clickhouse import LOG_TABLES
from qunflow.analytics.shipper import analytics
from qunflow.services.ingest import ingest_batch
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


def active_parts(engine: Any) -> dict[str, int]:
    return dict(engine.query("SELECT table, count() FROM system.parts WHERE database = currentDatabase() AND active "
                             f"AND table IN {LOG_TABLES!r} GROUP BY table", {})[1])


def kept_and_rebuilt(engine: Any, ws: Any) -> tuple[list[Any], list[Any]]:
    kept = [facts_rows(engine), days_rows(engine), *landing_rows(engine)]
    return kept, [rebuilt_rows(engine, ws), rebuilt_days_rows(engine, ws), *rebuilt_landing_rows(engine, ws)]


@pytest.mark.parametrize("engine_name", ["chdb", "clickhouse"])
def test_each_catch_up_leaves_one_part_per_facts_table_and_the_same_facts(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """Four per-member catch-ups (no rebuild), each inserting new versions and tombstones into all five tables:
    after each, every table holds one active part and the views read what a rebuild gives. With a table's merges
    stopped, a ship still succeeds and leaves that table's parts alone."""
    monkeypatch.setattr(facts, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    try:
        for batch in BATCHES:
            ingest_batch(ws.engine, batch)
            with analytics(ws) as engine:
                assert set(active_parts(engine).values()) == {1}  # no links in the first batch: no part
                kept, rebuilt = kept_and_rebuilt(engine, ws)
                assert kept == rebuilt
        with analytics(ws) as engine:
            engine.command("SYSTEM STOP MERGES member_facts_log")  # type: ignore[attr-defined]
        ingest_batch(ws.engine, [{"event_id": "mc", "type": "message", "ts": "2026-03-06T10:00:00+08:00",
                                  "member_id": "c"}])
        with analytics(ws) as engine:
            assert active_parts(engine) == {**dict.fromkeys(LOG_TABLES, 1), "member_facts_log": 2}
            kept, rebuilt = kept_and_rebuilt(engine, ws)
            assert kept == rebuilt
    finally:
        ws.close()
