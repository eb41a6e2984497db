"""Automation engine at scale: loading 1,000,000 pending timers, and due-step throughput per worker.

Timers are enrollment rows in the state DB. "Load" = enrolling every member from their `joined` event
(the trigger path a real join takes), against a floor in the same run: a bare executemany of the same
rows. Throughput = steps/s with 1, 2 and 4 worker processes when every timer is due at once; each
enrollment runs `add_tag` (a tag row and a `tag_added` event, committed with the step) and a `wait`.
Also in the same run, the floor: claiming and releasing the same rows without running steps.
Run: python bench/bench_automation.py [--timers 1000000] [--seconds 10] [--db sqlite|postgres|both] [--no-vacuum]
(postgres needs QUNFLOW_BENCH_POSTGRES_URL or QUNFLOW_TEST_POSTGRES_URL; goal: >= 2,000 steps/s)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PLAYBOOK = """
kind: playbook
key: bench
title: {zh: 压测, en: Bench}
trigger: {on: member_joined}
marketing: false
steps:
  - add_tag: warmed
  - wait: {days: 1}
"""
CHUNK = 10_000


def child(home: str, name: str, seconds: float, floor: bool) -> None:
    """One worker process: run due steps (or only claim/release) for `seconds`; print the count."""
    from sqlalchemy import bindparam, update

    from qunflow.services.automation import claim, run_due
    from qunflow.store.tables import enrollments
    from qunflow.workspace import open_workspace

    ws = open_workspace(home)
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        if floor:
            rows = claim(ws, name, 500)
            with ws.engine.begin() as conn:  # one executemany of one UPDATE per row, as the engine's bookkeeping
                if rows:
                    conn.execute(update(enrollments).where(enrollments.c.id == bindparam("w_id")),
                                 [{"w_id": row.id, "step": 2, "lease_owner": None, "lease_until": None}
                                  for row in rows])
            count = len(rows)
        else:
            count = run_due(ws, worker=name, limit=500).steps
        if not count:
            break
        done += count
    print(json.dumps({"steps": done, "seconds": time.perf_counter() - started}))


def make_workspace(kind: str, base: Path) -> tuple[object, str | None]:
    from sqlalchemy import create_engine, text

    from qunflow.store.db import normalise_url
    from qunflow.workspace import init_workspace

    if kind == "sqlite":
        return init_workspace(base / "sqlite"), None
    admin_url = os.environ.get("QUNFLOW_BENCH_POSTGRES_URL") or os.environ["QUNFLOW_TEST_POSTGRES_URL"]
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"qf_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    os.environ["QUNFLOW_DATABASE_URL"] = url
    return init_workspace(base / "postgres"), name


def drop(name: str | None) -> None:
    if name is None:
        return
    from sqlalchemy import create_engine, text

    from qunflow.store.db import normalise_url

    admin_url = os.environ.get("QUNFLOW_BENCH_POSTGRES_URL") or os.environ["QUNFLOW_TEST_POSTGRES_URL"]
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


VACUUM = True  # --no-vacuum: measure with the dead row versions of each reset left in place


def reset(ws: object) -> None:
    """Every timer due again, and what the last run wrote removed."""
    from sqlalchemy import delete, update

    from qunflow.store.tables import enrollments, events, member_tags

    past = datetime(2026, 1, 1)
    with ws.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(enrollments).values(step=0, due_at=past, status="active", lease_owner=None,
                                                lease_until=None))
        conn.execute(delete(member_tags))
        conn.execute(delete(events).where(events.c.type == "tag_added"))
    if VACUUM and ws.engine.dialect.name == "postgresql":  # type: ignore[attr-defined]
        # Each reset leaves a million dead row versions; a live database has autovacuum to clear them
        # between runs, a bench that resets every few seconds does not (the claim would scan them all).
        from sqlalchemy import text

        with ws.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[attr-defined]
            for table in ("enrollments", "member_tags", "events"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))


def run_workers(ws: object, workers: int, seconds: float, floor: bool) -> float:
    home = str(ws.home)  # type: ignore[attr-defined]
    procs = [subprocess.Popen([sys.executable, __file__, "--child", home, f"w{i}", str(seconds),
                               "floor" if floor else "steps"], stdout=subprocess.PIPE, env=dict(os.environ))
             for i in range(workers)]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    return sum(o["steps"] for o in outs) / max(o["seconds"] for o in outs)


def bench_db(kind: str, timers: int, seconds: float, console: Console) -> list[tuple[str, str, str]]:
    from sqlalchemy import insert

    from qunflow.services.automation import dispatch_triggers
    from qunflow.services.ingest import ingest_batch
    from qunflow.services.playbooks import apply_playbooks
    from qunflow.store.tables import enrollments

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ws, pg_name = make_workspace(kind, base)
        try:
            path = base / "bench.yaml"
            path.write_text(PLAYBOOK)
            apply_playbooks(ws, [path])  # type: ignore[arg-type]
            with Progress(console=console) as progress:
                task = progress.add_task(f"{kind}: {timers:,} joins", total=timers)
                for start in range(0, timers, CHUNK):
                    ingest_batch(ws.engine, [  # type: ignore[attr-defined]
                        {"event_id": f"j{i}", "type": "joined", "ts": "2026-03-02T10:00:00+08:00",
                         "member_id": f"m{i}"} for i in range(start, min(start + CHUNK, timers))])
                    progress.advance(task, min(CHUNK, timers - start))
            started = time.perf_counter()
            made = 0
            while (n := dispatch_triggers(ws, limit=CHUNK)):  # type: ignore[arg-type]
                made += n
            load = time.perf_counter() - started
            rows.append((kind, f"load {made:,} timers (enroll from the event log)", f"{made / load:,.0f} timers/s "
                         f"({load:.1f} s)"))
            now = datetime(2026, 1, 1)
            floor_rows = [{"playbook_key": "floor", "version": 1, "subject": f"m{i}", "occurrence": "x", "step": 0,
                           "status": "done", "due_at": now + timedelta(seconds=i), "attempts": 0, "context": {},
                           "created_at": now, "updated_at": now} for i in range(timers)]
            started = time.perf_counter()
            with ws.engine.begin() as conn:  # type: ignore[attr-defined]
                for start in range(0, timers, CHUNK):
                    conn.execute(insert(enrollments), floor_rows[start:start + CHUNK])
            floor_load = time.perf_counter() - started
            rows.append((kind, "floor: bare executemany of the same rows", f"{timers / floor_load:,.0f} timers/s "
                         f"({floor_load:.1f} s)"))
            with ws.engine.begin() as conn:  # type: ignore[attr-defined]
                conn.execute(enrollments.delete().where(enrollments.c.playbook_key == "floor"))
            for workers in (1, 2, 4):
                reset(ws)
                rate = run_workers(ws, workers, seconds, floor=False)
                rows.append((kind, f"due steps, {workers} worker(s)", f"{rate:,.0f} steps/s"))
            reset(ws)
            rate = run_workers(ws, 1, seconds, floor=True)
            rows.append((kind, "floor: claim + release only, 1 worker", f"{rate:,.0f} enrollments/s"))
        finally:
            ws.close()  # type: ignore[attr-defined]
            drop(pg_name)
            os.environ.pop("QUNFLOW_DATABASE_URL", None)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] == "floor")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--timers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--no-vacuum", action="store_true",
                        help="PostgreSQL: no VACUUM after each reset (the claim meets every dead row version)")
    args = parser.parse_args()
    global VACUUM
    VACUUM = not args.no_vacuum
    console = Console(width=140)
    rows: list[tuple[str, str, str]] = []
    for kind in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        rows += bench_db(kind, args.timers, args.seconds, console)
    table = Table(title=f"Automation, {args.timers:,} timers ({os.cpu_count()} cores, load "
                        f"{os.getloadavg()[0]:.1f}; goal >= 2,000 steps/s"
                        f"{'; no VACUUM between runs' if args.no_vacuum else ''})")
    for column in ("db", "what", "rate"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
