"""Shipping through Arrow (analytics/eventlog_arrow.py) copies every event exactly as SQLAlchemy reads it
from the state database, on SQLite and PostgreSQL, chunk after chunk, and never imports pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import select

from qunflow.analytics import eventlog_arrow
from qunflow.analytics.shipper import COLUMNS, ship
from qunflow.services.ingest import ingest_batch
from qunflow.store.tables import events
from qunflow.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
AWKWARD = ['plain', 'a "quoted", comma', 'two\nlines', 'tab\there', 'back\\slash', '课程 🎉', "'", '\\N', 'NULL']


def awkward_events(n: int) -> list[dict[str, Any]]:
    """Text that trips CSV and JSON readers, money at four places, and empty and full properties."""
    out = []
    for i in range(n):
        text = AWKWARD[i % len(AWKWARD)]
        event: dict[str, Any] = {"event_id": f"e{i}-{text}", "type": ("order", "message", "joined")[i % 3],
                                 "ts": f"2026-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:0{i % 10}.{i:06d}+08:00",
                                 "member_id": f"m{i % 7}", "channel": text, "campaign": text if i % 2 else None,
                                 "properties": {"tier": text, "n": i} if i % 4 else {}}
        if i % 3 == 0:
            event |= {"amount": ("0.0001", "-0.5", "1234567890.1234", "19.9", "0")[i % 5], "margin": "-0",
                      "currency": "CNY"}
        out.append({k: v for k, v in event.items() if v is not None})
    return out


def as_sqlalchemy_reads(ws: Workspace) -> list[tuple[Any, ...]]:
    """The reference: the rows as SQLAlchemy gives them, properties as the shipper always stored them."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(*[events.c[name] for name in COLUMNS]).order_by(events.c.seq)).all()
    return [(*row[:-1], json.dumps(row[-1], ensure_ascii=False) if row[-1] else None) for row in rows]


def shipped(ws: Workspace) -> list[tuple[Any, ...]]:
    with duckdb.connect(ws.settings.analytics_file, read_only=True) as duck:
        return duck.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY seq").fetchall()


def test_awkward_events_arrive_exactly_as_sqlalchemy_reads_them(any_workspace: Workspace) -> None:
    assert not ingest_batch(any_workspace.engine, awkward_events(60)).errors
    assert ship(any_workspace, chunk=7) == 60
    got, expected = shipped(any_workspace), as_sqlalchemy_reads(any_workspace)
    assert [row[:-1] for row in got] == [row[:-1] for row in expected]
    # Properties compare as JSON (DuckDB's JSON type may space them differently); empty ones are NULL.
    assert [json.loads(row[-1]) if row[-1] else None for row in got] == \
           [json.loads(row[-1]) if row[-1] else None for row in expected]
    assert got[0][-1] is None and json.loads(got[1][-1]) == {"tier": AWKWARD[1], "n": 1}
    assert got[0][11] == Decimal("0.0001") and got[6][11] == Decimal("-0.5000")
    assert ingest_batch(any_workspace.engine, awkward_events(61)).stored == 1
    assert ship(any_workspace, chunk=7) == 1 and len(shipped(any_workspace)) == 61


def test_a_failing_read_reaches_the_shipper_and_stops_the_reader(workspace: Workspace,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert not ingest_batch(workspace.engine, awkward_events(30)).errors
    original = eventlog_arrow.read_chunk

    def fails_after_two(conn: Any, after: int, limit: int) -> Any:
        if after >= 2 * limit:
            raise RuntimeError("state database went away")
        return original(conn, after, limit)

    monkeypatch.setattr(eventlog_arrow, "read_chunk", fails_after_two)
    with pytest.raises(RuntimeError, match="went away"):
        ship(workspace, chunk=5)
    assert len(shipped(workspace)) == 10  # the two chunks before the failure, with their watermark
    monkeypatch.setattr(eventlog_arrow, "read_chunk", original)
    assert ship(workspace, chunk=5) == 20


SHIP_IN_A_CHILD = textwrap.dedent("""
    import sys
    from qunflow.analytics.shipper import analytics, ship
    from qunflow.workspace import open_workspace
    ws = open_workspace(sys.argv[1])
    shipped = ship(ws)
    with analytics(ws) as engine:
        engine.query("SELECT count(*) FROM events", {})
    print(shipped, "pandas" in sys.modules)
""")


def test_shipping_does_not_import_pandas(workspace: Workspace) -> None:
    assert not ingest_batch(workspace.engine, awkward_events(20)).errors
    done = subprocess.run([sys.executable, "-c", SHIP_IN_A_CHILD, str(workspace.home)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, check=True)
    assert done.stdout.split() == ["20", "False"]
