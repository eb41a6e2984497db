"""One member's erasure (P8) on a large SQLite workspace, and what a concurrent writer waits meanwhile.

The workspace: one `bench/bench_metrics.py --keep DIR` made (DIR/ws: imported events, a DuckDB analytics store);
erase a copy of it, the erasure writes to the file. Each run erases one member with 20-30 events (their members
row is added first, as a join through qunflow makes it) through `services.erasure.erase_member`, timed in
its parts (the state DB's rows, the file's compaction, the analytics store and the sandbox), while another
process stores one event at a time through `services.ingest.ingest_batch` (every 20 ms): its slowest store
during the erasure is the stall a webhook would see (a store that waited past busy_timeout failed, "database is
locked": counted apart).

    python bench/bench_erasure.py --ws DIR/ws [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

PACE = 0.02  # seconds between the writer's events


def writer(home: Path, out: Path) -> None:
    """Store one event at a time until `out` is asked for (its .stop file appears); write the timings there."""
    from qunflow.services.ingest import ingest_batch
    from qunflow.workspace import open_workspace

    ws = open_workspace(home)
    stop = out.with_suffix(".stop")
    timings: list[tuple[float, float, bool]] = []  # (start, seconds, stored): a store may fail, "database is locked"
    n = 0
    print("ready", flush=True)
    while not stop.exists():
        n += 1
        start = time.time()
        try:
            ingest_batch(ws.engine, [{"event_id": f"bench-w-{os.getpid()}-{n}", "type": "message",
                                      "ts": "2026-03-01T12:00:00+08:00", "member_id": "bench-writer"}])
            stored = True
        except (OperationalError, sqlite3.OperationalError):  # the driver's own, on the event log's cursor
            stored = False
        timings.append((start, time.time() - start, stored))
        time.sleep(PACE)
    out.write_text(json.dumps(timings))


PARTS: dict[str, float] = {}  # seconds in each part of the erasure running now


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            PARTS[name] = PARTS.get(name, 0.0) + time.perf_counter() - start
    return run


def erase_one(home: Path, member: str) -> dict[str, Any]:
    from qunflow.services import erasure
    from qunflow.store.tables import members
    from qunflow.workspace import open_workspace

    ws = open_workspace(home)
    with ws.engine.begin() as conn:
        conn.execute(insert(members).values(id=member, locale="zh", created_at=datetime(2026, 1, 1)))
    PARTS.clear()
    out = home.parent / f"writer-{member}.json"
    process = subprocess.Popen([sys.executable, __file__, "--writer", str(home), str(out)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    start = time.time()
    report = erasure.erase_member(ws, member, actor="bench")
    end = time.time()
    time.sleep(1.0)
    out.with_suffix(".stop").touch()
    process.wait()
    timings = json.loads(out.read_text())
    during = [took for at, took, _stored in timings if at + took >= start and at <= end]
    before = [took for at, took, _stored in timings if at + took < start]
    failed = sum(1 for _at, _took, stored in timings if not stored)
    return {"member_events": report.counts["events"], "erasure_s": round(end - start, 3),
            "parts_s": {k.strip("_"): round(v, 3) for k, v in PARTS.items()},
            "writer_stores_during": len(during), "writer_max_s": round(max(during, default=0.0), 3),
            "writer_failed": failed,
            "writer_median_before_s": round(statistics.median(before), 4) if before else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws", type=Path, help="a workspace bench_metrics.py --keep made (DIR/ws)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writer", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer(*args.writer)
        return
    from qunflow.services import erasure
    from qunflow.store.tables import events
    from qunflow.workspace import open_workspace

    for name in ("_state", "_compact", "_outside_state"):  # the parts erase_member runs one after the other
        setattr(erasure, name, timed(name, getattr(erasure, name)))
    ws = open_workspace(args.ws)
    with ws.engine.connect() as conn:
        count = func.count().label("n")
        chosen = list(conn.execute(select(events.c.member_id, count).where(events.c.member_id.like("m%"))
                                   .group_by(events.c.member_id).having(count.between(20, 30))
                                   .order_by(events.c.member_id).limit(args.runs)).scalars())
        size = conn.execute(select(func.count()).select_from(events)).scalar()
    ws.close()
    print(f"{size:,} events; state DB {os.path.getsize(args.ws / 'qunflow.db') / 2**20:,.0f} MiB")
    for member in chosen:
        print(json.dumps({"member": member, **erase_one(args.ws, member)}), flush=True)


if __name__ == "__main__":
    main()
