"""The local day stored on each DuckDB event row (store.sync_days): it equals the day computed per row, across a
change of summer time, after a change of the workspace's zone, after a restate, and in a store made before it;
and the metrics read from it equal those computed per row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from qunflow.analytics.dialects import for_duckdb
from qunflow.analytics.queries import COHORT, CURRENT, LANDING, render
from qunflow.analytics.restate import restate_events
from qunflow.analytics.shipper import analytics
from qunflow.analytics.store import day_zone
from qunflow.domain.metrics import Period
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import _params
from qunflow.workspace import Workspace, init_workspace

FIRST = datetime(2026, 3, 6, tzinfo=UTC)  # New York moves to summer time on 2026-03-08 at 07:00 UTC


def _events(start: datetime, hours: int, prefix: str) -> list[dict[str, Any]]:
    """Events every 61 minutes for `hours` hours (every minute of the hour, local midnights included), on a few
    members, with joins, landing views and messages."""
    out = []
    for i in range(hours):
        ts = start + timedelta(minutes=61 * i)
        member = f"{prefix}{i % 7}"
        kind = ("joined", "landing_view", "message", "task_completed")[i % 4]
        out.append({"event_id": f"{prefix}e{i}", "type": kind, "ts": ts.isoformat(), "member_id": member,
                    "visitor_id": f"v{member}", "channel": ("ads", "seo")[i % 2]})
    return out


def _stored_days_right(engine: Any, zone: str) -> None:
    assert day_zone(engine.conn) == zone
    rows = engine.conn.execute("SELECT ts, day FROM events").fetchall()
    assert rows
    tz = ZoneInfo(zone)
    assert [(ts, day) for ts, day in rows if ts.replace(tzinfo=UTC).astimezone(tz).date() != day] == []


def _same_metrics_both_ways(ws: Workspace, engine: Any) -> None:
    """Every query reads the stored day when its zone is asked for, and gives what the per-row day gives."""
    period = Period(date(2026, 3, 1), date(2026, 3, 20), date(2026, 4, 30), ws.settings.zone)
    params = _params(ws, period, {}, None)
    for template in (COHORT, CURRENT, LANDING):
        for by in ("cohort_day", "channel"):
            sql = render(template, by, {})
            stored_sql, used = for_duckdb(sql, params, ws.settings.timezone)
            computed_sql, computed_used = for_duckdb(sql, params, None)
            assert stored_sql != computed_sql  # the stored column is read
            stored = sorted(engine.conn.execute(stored_sql, used).fetchall(), key=repr)
            assert stored == sorted(engine.conn.execute(computed_sql, computed_used).fetchall(), key=repr)
            assert sorted(engine.query(sql, params)[1], key=repr) == stored


def test_stored_days_follow_summer_time_a_change_of_zone_and_a_restate(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", timezone="America/New_York")
    try:
        ingest_batch(ws.engine, _events(FIRST, 100, "a"))
        with analytics(ws) as engine:
            _stored_days_right(engine, "America/New_York")
            _same_metrics_both_ways(ws, engine)
        ws.settings.timezone = "Asia/Kolkata"
        with analytics(ws, ship_first=False) as engine:  # read-only: the days of the old zone are not read
            assert day_zone(engine.conn) == "America/New_York"
            period = Period(date(2026, 3, 1), date(2026, 3, 20), date(2026, 4, 30), ws.settings.zone)
            params = _params(ws, period, {}, None)
            sql = render(COHORT, "cohort_day", {})
            assert for_duckdb(sql, params, day_zone(engine.conn)) == for_duckdb(sql, params, None)
        ingest_batch(ws.engine, _events(FIRST + timedelta(days=5), 30, "b"))
        with analytics(ws) as engine:  # the next ship computes every day again, in the new zone
            _stored_days_right(engine, "Asia/Kolkata")
            _same_metrics_both_ways(ws, engine)
            seqs = [s for (s,) in engine.conn.execute("SELECT seq FROM events WHERE seq % 3 = 0").fetchall()]
            engine.conn.execute("UPDATE events SET day = DATE '1999-01-01' WHERE seq % 3 = 0")  # as if stale
        assert restate_events(ws, seqs) == len(seqs)  # restated rows get their day again
        with analytics(ws) as engine:
            _stored_days_right(engine, "Asia/Kolkata")
    finally:
        ws.close()


def test_a_store_from_before_the_stored_day_reads_as_before_and_gets_it_on_its_next_write(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", timezone="America/New_York")
    try:
        ingest_batch(ws.engine, _events(FIRST, 60, "a"))
        with analytics(ws) as engine:
            expected = sorted(engine.query(render(COHORT, "cohort_day", {}), _params(
                ws, Period(date(2026, 3, 1), date(2026, 3, 20), date(2026, 4, 30), ws.settings.zone), {}, None))[1])
        old = duckdb.connect(ws.settings.analytics_file)  # as a store made before the stored day
        old.execute("DROP TABLE event_day_zone")
        old.execute("ALTER TABLE events DROP COLUMN day")
        old.close()
        period = Period(date(2026, 3, 1), date(2026, 3, 20), date(2026, 4, 30), ws.settings.zone)
        with analytics(ws, ship_first=False) as engine:  # read-only: no column, no zone, days computed
            assert day_zone(engine.conn) is None
            assert sorted(engine.query(render(COHORT, "cohort_day", {}), _params(ws, period, {}, None))[1]) == \
                expected
        ingest_batch(ws.engine, _events(FIRST + timedelta(days=3), 10, "b"))
        with analytics(ws) as engine:
            _stored_days_right(engine, "America/New_York")
            _same_metrics_both_ways(ws, engine)
    finally:
        ws.close()
