"""Emptying a workspace between a property test's examples, far cheaper than making one per example (a
migrated state database, a chdb session, a database on the ClickHouse server): the state database loses its
events and spend, the analytics store everything shipped and every fact kept."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from qunflow.analytics.shipper import analytics
from qunflow.store.tables import events, spend
from qunflow.workspace import Workspace

# The tables of a ClickHouse store (chdb or a server) that hold rows: the events (in events_log on a server,
# behind the events view), spend and the facts' logs (analytics/facts_clickhouse_sql.py); the views read these.
CLICKHOUSE_TABLES = ("spend", "facts_state", "member_facts_log", "landing_links_log", "landing_facts_log",
                     "landing_days_log", "member_days_log")


def empty(ws: Workspace) -> None:
    """No events and no spend in the state database, an empty analytics store (a DuckDB store is deleted)."""
    with ws.engine.begin() as conn:
        conn.execute(delete(events))
        conn.execute(delete(spend))
    if ws.settings.analytics_engine == "duckdb":
        Path(ws.settings.analytics_file).unlink(missing_ok=True)
        Path(ws.settings.analytics_file + ".wal").unlink(missing_ok=True)
        return
    with analytics(ws, ship_first=False) as engine:
        shipped = "events_log" if engine.name == "clickhouse" else "events"
        for table in (shipped, *CLICKHOUSE_TABLES):
            engine.command(f"TRUNCATE TABLE {table}")  # type: ignore[attr-defined]
