"""The shipper under failure: a chunk lands whole or not at all, a SIGKILL loses and repeats nothing,
and a DuckDB file held by another process is waited for, then refused with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from qunflow.analytics import store
from qunflow.analytics.engines import DuckDBEngine
from qunflow.analytics.shipper import ship
from qunflow.errors import QunflowError
from qunflow.services.ingest import ingest_batch
from qunflow.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def messages(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"event_id": f"{prefix}{i}", "type": "message", "ts": "2026-03-01T08:00:00+08:00",
             "member_id": f"m{i % 50}"} for i in range(n)]


def ingest(ws: Workspace, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 10_000):
        assert not ingest_batch(ws.engine, events[i:i + 10_000]).errors


def analytics_state(ws: Workspace) -> tuple[int, int, int, int]:
    """(rows, distinct seqs, max seq, watermark) of the DuckDB store."""
    with duckdb.connect(ws.settings.analytics_file, read_only=True) as duck:
        query = "SELECT count(*), count(DISTINCT seq), max(seq) FROM events"
        rows, distinct, top = duck.execute(query).fetchone()
        mark = duck.execute("SELECT coalesce(max(watermark), 0) FROM ship_state").fetchone()[0]
    return rows, distinct, top or 0, mark


class FailOnWatermark:
    """A DuckDB connection that fails when the watermark is written: after the rows, before COMMIT."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if "ship_state" in sql and "INSERT" in sql:
            raise RuntimeError("disk full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_a_chunk_whose_watermark_fails_leaves_no_rows_behind(workspace: Workspace) -> None:
    import pyarrow as pa

    from qunflow.analytics.shipper import ARROW_SCHEMA

    ingest(workspace, messages("a", 10))
    ship(workspace)
    table = pa.table([[11], ["x"], ["message"], [datetime(2026, 3, 1)], *[[None]] * 13], schema=ARROW_SCHEMA)
    with store.connect(workspace.settings.analytics_file) as conn:
        with pytest.raises(RuntimeError, match="disk full"):
            DuckDBEngine(FailOnWatermark(conn)).append(table)
        # The same connection is usable afterwards: the failed transaction was rolled back.
        assert conn.execute("SELECT count(*), max(seq) FROM events").fetchone() == (10, 10)
    assert analytics_state(workspace) == (10, 10, 10, 10)


def test_copied_rows_keep_utc_times_exact_money_and_properties(any_workspace: Workspace) -> None:
    event = {"event_id": "o1", "type": "order", "ts": "2026-03-01T00:30:00+08:00", "member_id": "m1",
             "visitor_id": "v1", "channel": "ads", "campaign": "spring", "entry_point": "ep1", "group": "g1",
             "referrer_id": "m0", "amount": "1234567.8901", "margin": "-2.5", "currency": "CNY",
             "experiment": "exp", "variant": "B", "properties": {"tier": "core", "sku": "茶"}}
    ingest(any_workspace, [event])
    assert ship(any_workspace) == 1
    with duckdb.connect(any_workspace.settings.analytics_file, read_only=True) as duck:
        row = duck.execute("SELECT event_id, type, ts, member_id, visitor_id, channel, campaign, "
                           "entry_point, group_key, referrer_id, amount, margin, currency, experiment, "
                           "variant, properties->>'tier', properties->>'sku' FROM events").fetchone()
    # ts is stored as naive UTC: 00:30 in Shanghai is 16:30 the day before.
    assert row == ("o1", "order", datetime(2026, 2, 28, 16, 30), "m1", "v1", "ads", "spring", "ep1", "g1",
                   "m0", Decimal("1234567.8901"), Decimal("-2.5000"), "CNY", "exp", "B", "core", "茶")


CHILD = textwrap.dedent("""
    import sys
    from qunflow.analytics import engines, shipper
    from qunflow.workspace import open_workspace

    original = engines.DuckDBEngine.append

    def append(self, table):
        original(self, table)
        print("chunk", flush=True)

    engines.DuckDBEngine.append = append
    shipper.ship(open_workspace(sys.argv[1]), chunk=int(sys.argv[2]))
    print("done", flush=True)
""")


def test_a_shipper_killed_mid_run_is_resumed_without_loss_or_duplicates(workspace: Workspace) -> None:
    total, chunk = 40_000, 1_000
    ingest(workspace, messages("k", total))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(workspace.home), str(chunk)],
                             stdout=subprocess.PIPE, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    for _ in range(3):  # three chunks committed, the fourth under way: kill it there
        assert child.stdout.readline().strip() == "chunk"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    rows, distinct, top, mark = analytics_state(workspace)
    assert 3 * chunk <= rows < total, "the kill should land mid-run"
    assert rows == distinct == top == mark and rows % chunk == 0  # whole chunks with their watermark
    assert ship(workspace, chunk=7_000) == total - rows
    assert analytics_state(workspace) == (total, total, total, total)
    assert ship(workspace) == 0


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.close()
""")


def hold(path: str, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_a_briefly_held_store_is_waited_for(workspace: Workspace) -> None:
    ingest(workspace, messages("w", 5))
    ship(workspace)  # creates the file
    holder = hold(workspace.settings.analytics_file, 1.0)
    try:
        started = time.monotonic()
        ingest(workspace, messages("x", 3))
        assert ship(workspace) == 3
        assert time.monotonic() - started >= 0.5
    finally:
        holder.wait(10)


def test_a_store_held_too_long_is_a_clear_qunflow_error(workspace: Workspace,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ship(workspace)
    monkeypatch.setattr(store, "LOCK_WAIT_SECONDS", 0.3)
    holder = hold(workspace.settings.analytics_file, 5.0)
    try:
        with pytest.raises(QunflowError, match="in use by another process"):
            ship(workspace)
    finally:
        holder.kill()
        holder.wait(10)
