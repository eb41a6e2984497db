"""Ingest throughput: `qunflow events import` (JSONL, CSV) and POST /api/v1/events, against a floor.

The floor is a raw sqlite3 executemany of the same rows into the same table (no validation, no
idempotency check beyond the unique index). Run: python bench/bench_ingest.py [--events N]
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_rows(n: int) -> list[dict[str, object]]:
    kinds = ["message", "message", "reaction", "checkin", "order", "task_completed"]
    return [{"event_id": f"ev-{i}", "type": kinds[i % len(kinds)], "ts": f"2026-03-{1 + i % 28:02d}T10:00:00+08:00",
             "member_id": f"m{i % 50_000}", "channel": ("ads", "content", "website")[i % 3], "group": f"g{i % 40}",
             **({"amount": "199.0", "margin": "80.0"} if i % 6 == 4 else {})} for i in range(n)]


def timed(label: str, n: int, run, results: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    results.append((label, n, seconds, n / seconds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    n = parser.parse_args().events
    from qunflow.services.ingest import import_event_file, ingest_batch
    from qunflow.services.tokens import create_token
    from qunflow.workspace import init_workspace

    rows = make_rows(n)
    results: list = []  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        jsonl = base / "events.jsonl"
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
        csv_path = base / "events.csv"
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["event_id", "type", "ts", "member_id", "channel", "group",
                                                        "amount", "margin"])
            writer.writeheader()
            writer.writerows(rows)

        ws = init_workspace(base / "floor")
        db = sqlite3.connect(base / "floor" / "qunflow.db")
        db.execute("PRAGMA synchronous=FULL")
        now = datetime.now().isoformat(" ")
        tuples = [(r["event_id"], r["type"], str(r["ts"])[:19].replace("T", " "), r["member_id"], r["channel"],
                   r["group"], r.get("amount"), r.get("margin"), now) for r in rows]

        def floor() -> None:
            with db:
                db.executemany("INSERT OR IGNORE INTO events (event_id, type, ts, member_id, channel, group_key, "
                               "amount, margin, received_at) VALUES (?,?,?,?,?,?,?,?,?)", tuples)

        timed("floor: raw sqlite3 executemany", n, floor, results)
        db.close()
        ws.close()

        for label, path in (("qunflow events import (JSONL)", jsonl), ("qunflow events import (CSV)", csv_path)):
            ws = init_workspace(base / label.split("(")[1][:-1])
            timed(label, n, lambda p=path, w=ws: import_event_file(w.engine, p), results)
            ws.close()

        ws = init_workspace(base / "cli")
        command = [sys.executable, "-c", "from qunflow.cli.main import main; main()", "events", "import",
                   str(jsonl), "--workspace", str(ws.home)]
        timed("qunflow events import, whole process (JSONL)", n,
              lambda: subprocess.run(command, check=True, capture_output=True), results)
        ws.close()

        ws = init_workspace(base / "http")
        token = create_token(ws.engine, "bench")
        from tests.conftest import LiveServer

        with LiveServer(ws) as server, httpx.Client(base_url=server.url, timeout=60,
                                                      headers={"authorization": f"Bearer {token}"}) as client:
            bodies = [json.dumps(rows[i:i + 10_000]).encode() for i in range(0, n, 10_000)]

            def post_all() -> None:
                for body in bodies:
                    response = client.post("/api/v1/events", content=body)
                    assert response.status_code == 200, response.text

            timed("POST /api/v1/events (10k per batch, loopback)", n, post_all, results)
        ws.close()
        _ = (ingest_batch, threading)

    floor_rate = results[0][3]
    table = Table(title=f"Ingest, {n:,} events (2-core machine, SQLite synchronous=FULL)")
    for column in ("path", "events", "seconds", "events/s", "vs floor"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, count, seconds, rate in results:
        table.add_row(label, f"{count:,}", f"{seconds:.2f}", f"{rate:,.0f}", f"{rate / floor_rate:.2f}x")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
