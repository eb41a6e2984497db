"""The DuckDB facts build (analytics/facts_duckdb.py) streams the events: it never holds them all in memory, so the
import's final ship fits a small machine (docs/metrics.md, "import's peak RSS")."""

from __future__ import annotations

from pathlib import Path

import duckdb

from qunflow.analytics.engines import DuckDBEngine
from qunflow.analytics.facts import refresh_facts
from qunflow.analytics.store import SCHEMA
from qunflow.workspace import init_workspace

EVENTS, MEMBERS = 200_000, 2_000


def test_the_facts_build_fits_a_memory_limit_below_the_events_size(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    conn = duckdb.connect(str(tmp_path / "store.duckdb"))
    conn.execute(SCHEMA)
    # ~1 KB of properties on each message: ~170 MB of events, over three times the limit below.
    conn.execute(f"""
        INSERT INTO events (seq, event_id, type, ts, member_id, visitor_id, channel, properties)
        SELECT i, 'e' || i, CASE WHEN i < {MEMBERS} THEN 'joined' WHEN i % 7 = 0 THEN 'landing_view'
                                 ELSE 'message' END,
               TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND, 'm' || (i % {MEMBERS}), 'v' || (i % {MEMBERS}),
               'ads', CASE WHEN i < {MEMBERS} OR i % 7 = 0 THEN '{{"tier": "gold"}}'
                           ELSE '{{"note": "' || repeat('x', 1000) || '"}}' END
        FROM range({EVENTS}) t(i)""")
    conn.execute(f"INSERT INTO ship_state VALUES (1, {EVENTS - 1})")
    conn.execute("CHECKPOINT")
    # No spilling: a build that holds every event fails with an out-of-memory error.
    conn.execute("SET memory_limit = '50MB'")
    conn.execute("SET temp_directory = ''")
    refresh_facts(DuckDBEngine(conn, ws.settings.timezone), ws.settings)
    assert conn.execute("SELECT count(*), count(*) FILTER (WHERE r1) FROM member_facts").fetchall() == [
        (MEMBERS, MEMBERS)]  # every member has messages the day after joining
    assert conn.execute("SELECT count(*) FROM member_days").fetchall() == [(MEMBERS,)]
    assert conn.execute("SELECT count(*) FROM landing_facts").fetchall()[0][0] > 0
    ws.close()
