"""A Parquet import ships its batches along to the analytics store (analytics/ship_along.py): the store it leaves
equals a fresh ship of the same state database (events, watermark, per-member facts, metrics), batch after
batch; a store out of step, a batch that cannot ship along, Ctrl+C or a SIGKILL mid-import leave a store the
next ship completes to the same result, never a row twice. Every test runs on DuckDB and on chdb (`store`)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qunflow.analytics.engines import open_engine
from qunflow.analytics.shipper import ship
from qunflow.services.fileimport import import_event_file
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import metrics_report
from qunflow.store.eventlog import count_events, max_seq
from qunflow.workspace import Workspace, open_workspace

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)  # near midnight in Asia/Shanghai
TEXT = ["ads", 'a "quoted", comma', "two\nlines", "课程 🎉", "back\\slash", "'", "NULL", ""]
# A join's properties as JSON text: stored (and shipped) as the event log writes them, {} and "" as absent.
PROPERTIES = ['{"tier": "newbie"}', '{ "tier":"core", "from": "海报" }', "{}", None, "", '{"n": 1.50}']


@pytest.fixture(autouse=True, params=["duckdb", "chdb"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The analytics engine of every workspace the test opens (and of the CLI it runs)."""
    if request.param == "chdb":
        pytest.importorskip("chdb", reason="the chdb tests need chdb: pip install -e '.[test]'")
    monkeypatch.setenv("QUNFLOW_ANALYTICS_ENGINE", request.param)
    return str(request.param)


def community(n: int, money: list[Decimal] | None = None, first: int = 0) -> pa.Table:
    """Joins (with referrers, some rejoins and leaves, properties), messages, tasks, orders with money, and
    landings with only a visitor: what the per-member facts and the metrics read."""
    kinds = ["joined", "message", "order", "task_completed", "landing", "message", "left", "invite_sent"]
    money = money or [Decimal("19.9"), Decimal("0"), Decimal("-0.5"), Decimal("99999999999.9999"),
                      Decimal("0.0001")]
    rows: dict[str, list[Any]] = {name: [] for name in (
        "event_id", "type", "ts", "member_id", "visitor_id", "channel", "group", "referrer_id", "amount",
        "margin", "currency", "properties")}
    for i in range(first, first + n):
        kind = kinds[i % len(kinds)] if i % 29 else "joined"
        member = None if kind == "landing" else f"m{i % 97}"
        rows["event_id"].append(f"e{i}")
        rows["type"].append(kind)
        rows["ts"].append(START + timedelta(hours=(i * 7) % 2000, microseconds=i % 3))
        rows["member_id"].append(member)
        rows["visitor_id"].append(f"v{i % 13}" if kind == "landing" or i % 5 == 0 else None)
        rows["channel"].append(TEXT[i % len(TEXT)] if kind in ("joined", "landing") else None)
        rows["group"].append(f"g{i % 4}" if kind == "joined" else None)
        rows["referrer_id"].append(f"m{(i + 3) % 97}" if kind == "joined" and i % 3 else None)
        paid = kind == "order"
        rows["amount"].append(money[i % len(money)] if paid else None)
        rows["margin"].append(money[(i + 1) % len(money)] if paid else None)
        rows["currency"].append("CNY" if paid else None)
        rows["properties"].append(PROPERTIES[i % len(PROPERTIES)] if kind == "joined" else None)
    kinds_of = {"ts": pa.timestamp("us", "UTC"), "amount": pa.decimal128(18, 4), "margin": pa.decimal128(18, 4)}
    return pa.table({name: pa.array(values, kinds_of.get(name, pa.string())) for name, values in rows.items()})


def write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def analytics_of(ws: Workspace) -> dict[str, Any]:
    """The store's events in seq order, its watermark, its facts (sorted) and their watermark, and the metrics
    it gives."""
    return stored(ws) | {"metrics": metrics_of(ws)}


def stored(ws: Workspace) -> dict[str, Any]:
    if ws.settings.analytics_engine == "chdb":
        return chdb_stored(ws)
    with duckdb.connect(ws.settings.analytics_file, read_only=True) as duck:
        facts = duck.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'member_facts'").fetchone()
        return {
            "events": duck.execute("SELECT * FROM events ORDER BY seq").fetchall(),
            "watermark": duck.execute("SELECT coalesce(max(watermark), 0) FROM ship_state").fetchone()[0],
            "facts": duck.execute("SELECT * FROM member_facts ORDER BY member_id").fetchall() if facts[0] else None,
            "facts_watermark": duck.execute("SELECT max(watermark) FROM facts_state").fetchone()[0]
            if facts[0] else None,
        }


def chdb_stored(ws: Workspace) -> dict[str, Any]:
    """stored() on chdb: the watermark is max(seq); the facts are the newest version of each member's row
    (the facts_state row with no facts yet: None, as on DuckDB)."""
    with open_engine(ws) as engine:
        facts_state = engine.query("SELECT max(watermark) FROM facts_state FINAL", {})[1]
        facts = engine.query("SELECT * FROM member_facts ORDER BY member_id", {})[1]
        return {
            "events": engine.query("SELECT * FROM events ORDER BY seq", {})[1],
            "watermark": engine.watermark(),
            "facts": facts or None,
            "facts_watermark": facts_state[0][0] if facts_state and facts else None,
        }


def metrics_of(ws: Workspace) -> dict[str, Any]:
    """The metrics by channel over the community's days, read as the store stands (no ship first)."""
    return metrics_report(ws, start=START.date(), end=START.date() + timedelta(days=90), by="channel",
                          ship_first=False)


def fresh_ship(ws: Workspace, tmp_path: Path) -> dict[str, Any]:
    """The reference: the same state database shipped by the normal ship into a new store."""
    copy = tmp_path / "fresh"
    shutil.copytree(ws.home, copy)
    store = copy / Path(ws.settings.analytics_file).name
    shutil.rmtree(store) if store.is_dir() else store.unlink(missing_ok=True)
    other = open_workspace(copy)
    try:
        ship(other)
        return analytics_of(other)
    finally:
        other.close()


def state_count(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return count_events(conn)


def sqlite_count(ws: Workspace) -> int:
    """The state database's events, read without the workspace (closed while another process imports)."""
    with sqlite3.connect(ws.home / "qunflow.db") as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def test_an_import_leaves_the_store_a_fresh_ship_makes(any_workspace: Workspace, tmp_path: Path) -> None:
    workspace = any_workspace
    path = write(tmp_path / "e.parquet", community(1500))
    stored_by_progress: list[int] = []
    result = import_event_file(workspace.engine, path, ws=workspace, chunk=200,
                               on_progress=lambda _: stored_by_progress.append(state_count(workspace)))
    assert result.stored == 1500 and not result.errors
    got = analytics_of(workspace)
    assert got == fresh_ship(workspace, tmp_path)
    assert got["watermark"] == 1500 and len(got["events"]) == 1500 and got["facts_watermark"] == 1500
    assert got["facts"] and any(row[1] is not None for row in got["facts"])  # the facts are real rows
    # Money at the edge of what SQLite keeps exactly arrived as imported, to the last digit.
    amounts = {row[11] for row in got["events"] if row[11] is not None}
    assert Decimal("99999999999.9999") in amounts and Decimal("-0.5") in amounts
    assert {row[16] for row in got["events"]} == {None, '{"tier": "newbie"}', '{"tier": "core", "from": "海报"}',
                                                  '{"n": 1.5}'}
    assert stored_by_progress == [200 * k for k in range(1, 8)] + [1500]
    assert ship(workspace) == 0 and analytics_of(workspace) == got  # nothing left for the first metrics call


def test_the_batches_ship_as_they_commit(any_workspace: Workspace, tmp_path: Path) -> None:
    """Ctrl+C after the second batch's commit: the store holds the first batch exactly, no more and no
    less (the second, committed but not appended, is left to the next ship), and the next ship completes it."""
    workspace = any_workspace
    path = write(tmp_path / "e.parquet", community(1000))
    calls: list[int] = []

    def interrupt(_position: int) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_event_file(workspace.engine, path, ws=workspace, chunk=300, on_progress=interrupt)
    assert state_count(workspace) == 600
    partial = analytics_of(workspace)
    assert partial["watermark"] == 300 and [row[0] for row in partial["events"]] == list(range(1, 301))
    assert ship(workspace) == 300
    assert analytics_of(workspace) == fresh_ship(workspace, tmp_path)


def test_rows_after_a_gap_in_the_seqs_ship_along_with_the_seqs_they_took(any_workspace: Workspace,
                                                                       tmp_path: Path) -> None:
    """A batch of re-sent rows stores nothing and keeps the store in step; on PostgreSQL those rows still use
    up sequence values, so the next new rows' seqs start after a gap, and they ship along with those seqs."""
    workspace = any_workspace
    assert import_event_file(workspace.engine, write(tmp_path / "a.parquet", community(300)), ws=workspace,
                             chunk=100).stored == 300
    again = pa.concat_tables([community(100), community(200, first=300)])  # e0-e99 re-sent, then new rows
    assert import_event_file(workspace.engine, write(tmp_path / "b.parquet", again), ws=workspace,
                             chunk=100).stored == 200
    got = analytics_of(workspace)
    with workspace.engine.connect() as conn:
        assert got["watermark"] == max_seq(conn) and len(got["events"]) == 500
    assert got == fresh_ship(workspace, tmp_path)


def test_a_batch_that_cannot_ship_along_leaves_the_rest_to_the_final_ship(workspace: Workspace,
                                                                         tmp_path: Path) -> None:
    """A batch with a re-sent event_id ends shipping along, and the import's own final ship brings the store
    up to what a fresh ship makes. A file whose first batch cannot ship along (money SQLite would round) is
    left to the next ship, as before shipping along."""
    first = write(tmp_path / "a.parquet", community(400))
    assert import_event_file(workspace.engine, first, ws=workspace, chunk=100).stored == 400
    # Batches e400-e499 (new), e450-e549 (half re-sent), e550-e649 (new).
    resent = pa.concat_tables([community(100, first=400), community(100, first=450), community(100, first=550)])
    assert import_event_file(workspace.engine, write(tmp_path / "b.parquet", resent), ws=workspace,
                             chunk=100).stored == 250
    got = analytics_of(workspace)
    assert got["watermark"] == 650 and got == fresh_ship(workspace, tmp_path)
    # SQLite keeps 9999999999999.9999 as the integer 1e13, and the ship reads that back: shipping the file's
    # own digits along would differ from every normal ship.
    rounded = community(200, money=[Decimal("9999999999999.9999"), Decimal("1234567890123.4567")], first=1000)
    assert import_event_file(workspace.engine, write(tmp_path / "c.parquet", rounded), ws=workspace,
                             chunk=100).stored == 200
    assert analytics_of(workspace)["watermark"] == 650
    assert ship(workspace) == 200
    got = analytics_of(workspace)
    assert got == fresh_ship(workspace, tmp_path / "again")
    assert Decimal("10000000000000") in {row[11] for row in got["events"]}


def test_a_store_out_of_step_is_left_to_the_normal_ship(workspace: Workspace, tmp_path: Path) -> None:
    """Events stored and not shipped before the import: nothing ships along (the watermark is not the seq
    before the batch), the store stays as it was, and the next ship is exact."""
    assert not ingest_batch(workspace.engine, [{"event_id": "before", "type": "message", "ts": START.isoformat(),
                                                "member_id": "m1"}]).errors
    ship(workspace)
    assert not ingest_batch(workspace.engine, [{"event_id": "unshipped", "type": "message",
                                                "ts": START.isoformat(), "member_id": "m2"}]).errors
    path = write(tmp_path / "e.parquet", community(500))
    assert import_event_file(workspace.engine, path, ws=workspace, chunk=100).stored == 500
    assert analytics_of(workspace)["watermark"] == 1
    assert ship(workspace) == 501
    assert analytics_of(workspace) == fresh_ship(workspace, tmp_path)


HOLDERS = {  # a process that holds the store open
    "duckdb": "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)",
    "chdb": "import chdb.session, sys, time; s = chdb.session.Session(sys.argv[1]); print('held', flush=True); "
            "time.sleep(60)",
}


def test_a_store_held_by_another_process_is_left_to_its_next_ship(workspace: Workspace, tmp_path: Path,
                                                                  store: str) -> None:
    if store == "duckdb":
        ship(workspace)  # creates the file (chdb: the holder creates the store; this process must not hold it)
    holder = subprocess.Popen([sys.executable, "-c", HOLDERS[store], workspace.settings.analytics_file],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        path = write(tmp_path / "e.parquet", community(500))
        assert import_event_file(workspace.engine, path, ws=workspace, chunk=100).stored == 500
        assert time.monotonic() - started < 8  # no 10-second wait for the lock
    finally:
        holder.kill()
        holder.wait()
    assert analytics_of(workspace)["watermark"] == 0
    assert ship(workspace) == 500
    assert analytics_of(workspace) == fresh_ship(workspace, tmp_path)


def seqs_stored(ws: Workspace) -> tuple[int, int, int | None]:
    """The store's events, their distinct seqs and the highest, read without holding the store afterwards (chdb:
    in a process of its own, as the next import must open it)."""
    query = "SELECT count(*), count(DISTINCT seq), max(seq) FROM events"
    if ws.settings.analytics_engine == "duckdb":
        with duckdb.connect(ws.settings.analytics_file, read_only=True) as duck:
            return duck.execute(query).fetchone()  # type: ignore[return-value]
    read = subprocess.run([sys.executable, "-c", (
        "import chdb.session, sys; s = chdb.session.Session(sys.argv[1]); "
        "print(s.query(sys.argv[2], 'CSV').bytes().decode())"), ws.settings.analytics_file, query],
        capture_output=True, text=True, check=True)
    rows, distinct, top = read.stdout.strip().split(",")
    return int(rows), int(distinct), int(top) if int(rows) else None


def test_a_killed_import_leaves_a_store_the_next_ship_completes(workspace: Workspace, tmp_path: Path) -> None:
    """SIGKILL of `qunflow events import` at several points of a long import; each time the store is behind
    the state database or in step with it, never ahead, and the next ship makes what a fresh ship makes."""
    path = write(tmp_path / "e.parquet", community(30_000))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-c", "from qunflow.cli.main import main; main()", "events", "import", str(path),
               "--workspace", str(workspace.home), "--rows-per-commit", "500"]
    workspace.close()
    for stop_at in (2_000, 12_000, 24_000):
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while child.poll() is None and sqlite_count(workspace) < stop_at:
                time.sleep(0.005)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        stored = sqlite_count(workspace)
        assert stored >= stop_at or child.returncode == 0
        rows, distinct, top = seqs_stored(workspace)
        assert rows == distinct and (top or 0) <= stored and (not top or rows == top)  # no row twice, no gap
        if stop_at > 2_000:  # the killed process had shipped batches along
            assert top
    ws = open_workspace(workspace.home)
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        ship(ws)
        got = analytics_of(ws)
        assert got["watermark"] == 30_000 and got == fresh_ship(ws, tmp_path)
    finally:
        ws.close()
