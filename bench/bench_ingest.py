"""Ingest throughput: `qunflow events import` (JSONL, CSV, Parquet) and POST /api/v1/events, against a floor.

The floor is a raw sqlite3 executemany of the same rows into the same table (no validation, no
idempotency check beyond the unique index), with the same synchronous=FULL. A second table splits
the import path into its stages, so a regression shows where it is.
Run: python bench/bench_ingest.py [--events N]   (goals: issue 3, >= 50,000 events/s through import;
issue 15, the Parquet import at >= 0.75x the floor of the same run)
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.conftest.LiveServer

COLUMNS = ["event_id", "type", "ts", "member_id", "channel", "group", "amount", "margin"]
Result = tuple[str, int, float]
PARQUET_GOAL = 0.75  # issue 15: the whole-process Parquet import against the floor of the same run


def compile_package() -> None:
    """Byte-compile qunflow, as installing it does: with PYTHONDONTWRITEBYTECODE set (this development machine)
    every `qunflow` process would otherwise compile its modules again (compileall writes .pyc regardless)."""
    import compileall

    import qunflow

    compileall.compile_dir(str(Path(qunflow.__file__).parent), quiet=1)


def make_rows(n: int) -> list[dict[str, object]]:
    """A realistic mix: mostly activity, one order in six with money, Shanghai offsets."""
    kinds = ["message", "message", "reaction", "checkin", "order", "task_completed"]
    return [{"event_id": f"ev-{i}", "type": kinds[i % len(kinds)],
             "ts": f"2026-03-{1 + i % 28:02d}T{i % 24:02d}:00:00+08:00", "member_id": f"m{i % 50_000}",
             "channel": ("ads", "content", "website")[i % 3], "group": f"g{i % 40}",
             **({"amount": "199.0", "margin": "80.0"} if i % 6 == 4 else {})} for i in range(n)]


def timed(label: str, n: int, run: Callable[[], Any], results: list[Result]) -> Any:
    started = time.perf_counter()
    value = run()
    results.append((label, n, time.perf_counter() - started))
    return value


def write_files(base: Path, rows: list[dict[str, object]]) -> tuple[Path, Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet as a warehouse writes it: ts a timestamp column with a time zone, the rest text.
    columns = {name: pa.array([r.get(name) for r in rows], pa.string()) for name in COLUMNS}
    columns["ts"] = pa.array([datetime.fromisoformat(str(r["ts"])) for r in rows], pa.timestamp("us", "UTC"))
    table = pa.table(columns)
    parquet = base / "events.parquet"
    pq.write_table(table, parquet)
    jsonl = base / "events.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_path = base / "events.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return jsonl, csv_path, parquet


def floor(base: Path, rows: list[dict[str, object]], results: list[Result]) -> None:
    from qunflow.workspace import init_workspace

    init_workspace(base / "floor").close()
    db = sqlite3.connect(base / "floor" / "qunflow.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    now = datetime.now().isoformat(" ")
    tuples = [(r["event_id"], r["type"], str(r["ts"])[:19].replace("T", " "), r["member_id"], r["channel"],
               r["group"], r.get("amount"), r.get("margin"), now) for r in rows]
    sql = ("INSERT INTO events (event_id, type, ts, member_id, channel, group_key, amount, margin, "
           "received_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (event_id) DO NOTHING")

    from qunflow.services.eventfiles import CHUNK

    def insert() -> None:
        for start in range(0, len(tuples), CHUNK):  # the same commit size as the import
            with db:
                db.executemany(sql, tuples[start:start + CHUNK])

    timed("floor: raw sqlite3 executemany, same table", len(rows), insert, results)
    db.close()


def imports(base: Path, files: dict[str, Path], n: int, results: list[Result]) -> None:
    from qunflow.services.fileimport import import_event_file
    from qunflow.workspace import init_workspace

    for label, path in files.items():
        for pipeline, how in ((False, "one process"), (True, "with a reader process")):
            ws = init_workspace(base / f"import-{label}-{pipeline}")
            result = timed(f"import_event_file, {how} ({label})", n,
                           lambda p=path, w=ws, r=pipeline: import_event_file(w.engine, p, pipeline=r), results)
            assert result.stored == n and not result.errors, result.as_json()
            ws.close()
    qunflow = shutil.which("qunflow")
    command = [qunflow] if qunflow else [sys.executable, "-c", "from qunflow.cli.main import main; main()"]
    for label, path in files.items():
        init_workspace(base / f"cli-{label}").close()
        run = [*command, "events", "import", str(path), "--workspace", str(base / f"cli-{label}")]
        timed(f"qunflow events import, whole process ({label})", n,
              lambda r=run: subprocess.run(r, check=True, capture_output=True), results)


def http(base: Path, rows: list[dict[str, object]], results: list[Result]) -> None:
    from tests.conftest import LiveServer

    from qunflow.services.tokens import create_token
    from qunflow.workspace import init_workspace

    ws = init_workspace(base / "http")
    token = create_token(ws.engine, "bench", ["events:write"])
    bodies = [json.dumps(rows[i:i + 10_000]).encode() for i in range(0, len(rows), 10_000)]
    with LiveServer(ws) as server, httpx.Client(base_url=server.url, timeout=120,
                                                  headers={"authorization": f"Bearer {token}"}) as client:
        def post_all() -> None:
            for body in bodies:
                response = client.post("/api/v1/events", content=body)
                assert response.status_code == 200 and response.json()["stored"] == 10_000, response.text

        timed("POST /api/v1/events, 10k per batch, loopback", len(rows), post_all, results)
    ws.close()


def stages(base: Path, jsonl: Path, n: int) -> list[Result]:
    """The import path taken apart: read + JSON decode, validate, store (build rows + executemany)."""
    from qunflow.domain.event_columns import validate_raw
    from qunflow.services.eventfiles import read_chunks
    from qunflow.store.eventlog import append_columns
    from qunflow.workspace import init_workspace

    split: list[Result] = []
    chunks = timed("read + decode JSONL (eventfiles.read_chunks)", n, lambda: list(read_chunks(jsonl)), split)
    valid = timed("validate (domain.event_columns.validate_raw)", n,
                  lambda: [validate_raw(raw)[0] for _, raw, _ in chunks], split)
    ws = init_workspace(base / "stages")

    def store() -> None:
        for batch in valid:
            with ws.engine.begin() as conn:
                append_columns(conn, batch)

    timed("store (store.eventlog.append_columns + commit)", n, store, split)
    ws.close()
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per run (a multiple of 10,000)")
    n = parser.parse_args().events
    compile_package()
    rows = make_rows(n)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        jsonl, csv_path, parquet = write_files(base, rows)
        floor(base, rows, results)
        imports(base, {"JSONL": jsonl, "CSV": csv_path, "Parquet": parquet}, n, results)
        http(base, rows, results)
        split = stages(base, jsonl, n)

    console = Console(width=120)
    floor_rate = n / results[0][2]
    table = Table(title=f"Ingest, {n:,} events (SQLite, synchronous=FULL)")
    for column in ("path", "events", "seconds", "events/s", "vs floor"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, count, seconds in results:
        table.add_row(label, f"{count:,}", f"{seconds:.2f}", f"{count / seconds:,.0f}",
                      f"{count / seconds / floor_rate:.2f}x")
    console.print(table)
    parquet = next(count / seconds / floor_rate for label, count, seconds in results
                   if label == "qunflow events import, whole process (Parquet)")
    console.print(f"goal (issue 15): `qunflow events import` from Parquet >= {PARQUET_GOAL:.2f}x the floor: "
                  f"{parquet:.2f}x, {'met' if parquet >= PARQUET_GOAL else 'MISSED'}")
    total = sum(seconds for _, _, seconds in split)
    parts = Table(title="Where the import's time goes (one process, JSONL; a reader process overlaps "
                        "reading and validating with storing)")
    for column in ("stage", "seconds", "µs/event", "share"):
        parts.add_column(column, justify="left" if column == "stage" else "right")
    for label, count, seconds in split:
        parts.add_row(label, f"{seconds:.2f}", f"{seconds / count * 1e6:.1f}", f"{seconds / total:.0%}")
    console.print(parts)


if __name__ == "__main__":
    main()
