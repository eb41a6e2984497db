"""The ClickHouse facts' parts (facts_clickhouse_parts.merge_parts) at scale, on one chdb store: what the parts that
catch-ups leave cost the reads, and what merging them costs, by kind of OPTIMIZE and size of catch-up.

    python bench/bench_facts_parts.py --data DIR [--ships 5] [--tiny 20]
    python bench/bench_facts_parts.py --data DIR --catch-up 20,2000 [--repeat 3] [--engine chdb|duckdb]

DIR holds ../shared/floor/'s data (gen.py --members 1000000 --out DIR). The events but the last 50,000 (at most
5%) are loaded and the facts built (one part per table), then the facts tables' merges are stopped (SYSTEM STOP
MERGES: ClickHouse's background merges cannot blur the figures) and those events are shipped: all but the last
2 x --tiny in --ships catch-ups, the dashboard page (`build_dashboard`) and both slices (COHORT_FACTS and
CURRENT_FACTS by channel and by cohort week) timed before the first and after each (1 warm run and 3 timed,
median of the process's CPU, chdb's threads included), with the most active parts any table holds. Then, merges
started: one plain `OPTIMIZE TABLE` per table (the merge selector's pick, timed, the parts it leaves), the page,
merge_parts (`OPTIMIZE ... FINAL` of every table left with more than one part, timed), the page; and two tiny
catch-ups of --tiny events each, merges stopped during the ship, the first merged by merge_parts and the
second by a plain OPTIMIZE (each timed, with the parts left).

With --catch-up N,M,...: what one catch-up of N events costs, as a metrics read after new events pays it (one
store held open; on chdb merges free). The events but the last (N + M + ...) x --repeat are loaded and the
facts built; then --repeat catch-ups of each size in turn, each timed (process CPU, the engine's threads
included, and wall) with the CPU of its five costliest statements. The baselines, in the same run: the floor's
DuckDB suite on the same data (its median wall time: a catch-up is what a metrics read pays before it answers)
and the facts' rebuild (what a catch-up saves). `--engine duckdb` does the same on the default engine
(analytics/facts_duckdb.py; the store loaded as bench_facts.py loads it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_facts import (  # noqa: E402
    LATE,
    LOAD_SPEND,
    SLICES,
    chdb_store,
    event_count,
    load_rows,
    period,
    replace_spend,
    run_stage,
)


def active_parts(engine: Any) -> dict[str, int]:
    from qunflow.analytics.facts_clickhouse_parts import LOG_TABLES

    return dict(engine.query("SELECT table, count() FROM system.parts WHERE database = currentDatabase() AND active "
                             f"AND table IN {LOG_TABLES!r} GROUP BY table ORDER BY table", {})[1])


def median_cpu(work: Callable[[], Any]) -> float:
    work()
    runs = []
    for _ in range(3):
        began = time.process_time()
        work()
        runs.append(time.process_time() - began)
    return statistics.median(runs)


def page_cpu(ws: Any, data: Path) -> float:
    from qunflow.services.dashboard import build_dashboard

    start, as_of = period(data)
    return median_cpu(lambda: build_dashboard(ws, start, as_of, as_of))


def slices_cpu(ws: Any, data: Path) -> float:
    from qunflow.analytics.engines import open_engine
    from qunflow.analytics.queries import COHORT_FACTS, CURRENT_FACTS, render
    from qunflow.domain.metrics import Period
    from qunflow.services.metrics import _params

    start, as_of = period(data)
    params = _params(ws, Period(start, as_of, as_of, ws.settings.zone), {}, None)
    with open_engine(ws) as engine:
        return median_cpu(lambda: [engine.query(render(t, by, {}), params) for by in SLICES
                                   for t in (COHORT_FACTS, CURRENT_FACTS)])


def reads(ws: Any, data: Path, parts: dict[str, int]) -> dict[str, Any]:
    return {"max_parts": max(parts.values()), "parts": parts, "page_cpu_s": page_cpu(ws, data),
            "slices_cpu_s": slices_cpu(ws, data)}


def merges(engine: Any, start: bool) -> None:
    from qunflow.analytics.facts_clickhouse_parts import LOG_TABLES

    for table in LOG_TABLES:
        engine.command(f"SYSTEM {'START' if start else 'STOP'} MERGES {table}")


def timed(engine: Any, work: Callable[[], None]) -> dict[str, Any]:
    began = time.process_time()
    work()
    return {"cpu_s": time.process_time() - began, "parts_after": active_parts(engine)}


def plain_optimize(engine: Any) -> None:
    from qunflow.analytics.facts_clickhouse_parts import LOG_TABLES

    for table in LOG_TABLES:
        engine.command(f"OPTIMIZE TABLE {table}")


def run(data: Path, ws_dir: Path, ships: int, tiny: int) -> dict[str, Any]:

    from qunflow.analytics.engines import open_engine
    from qunflow.analytics.facts import refresh_facts
    from qunflow.analytics.facts_clickhouse_parts import merge_parts

    ws, source, append = chdb_store(data, ws_dir)
    total = event_count(source, data)
    late = min(LATE, total // 20)  # as bench_facts: a small run keeps the catch-ups incremental
    first, last = total - late, total - 2 * tiny
    out: dict[str, Any] = {"events": total, "late_events": late, "ships": ships, "tiny_events": tiny,
                           "catch_up_cpu_s": [], "by_parts": []}

    def ship(low: int, high: int, merge: Callable[[Any], None] | None = None) -> dict[str, Any] | None:
        """Events low < id <= high shipped with merges stopped; then `merge` timed with merges started."""
        with open_engine(ws) as engine:
            merges(engine, start=False)
            append(engine, f"e.event_id > {low} AND e.event_id <= {high}")
            began = time.process_time()
            refresh_facts(engine, ws.settings)
            catch_up = time.process_time() - began
            if merge is None:
                out["catch_up_cpu_s"].append(catch_up)
                return None
            merges(engine, start=True)
            return {"catch_up_cpu_s": catch_up, "parts_before": active_parts(engine),
                    **timed(engine, lambda: merge(engine))}

    with open_engine(ws) as engine:
        append(engine, f"e.event_id <= {first}")
        replace_spend(engine, source, data)
        refresh_facts(engine, ws.settings)
        merges(engine, start=False)
        parts = active_parts(engine)
    out["by_parts"].append(reads(ws, data, parts))
    bounds = [first + (last - first) * i // ships for i in range(ships + 1)]
    for low, high in zip(bounds, bounds[1:], strict=False):
        ship(low, high)
        with open_engine(ws) as engine:
            parts = active_parts(engine)
        out["by_parts"].append(reads(ws, data, parts))
    out["parts_unmerged"] = out["by_parts"][-1]["parts"]
    out["page_unmerged_cpu_s"] = out["by_parts"][-1]["page_cpu_s"]
    with open_engine(ws) as engine:
        merges(engine, start=True)
        out["plain_after_ships"] = timed(engine, lambda: plain_optimize(engine))
    out["page_plain_cpu_s"] = page_cpu(ws, data)
    with open_engine(ws) as engine:
        merge = timed(engine, lambda: merge_parts(engine))
        out["merge_cpu_s"], out["parts_merged"] = merge["cpu_s"], merge["parts_after"]
    out["page_merged_cpu_s"] = page_cpu(ws, data)
    out["final_after_tiny"] = ship(last, last + tiny, merge_parts)
    out["plain_after_tiny"] = ship(last + tiny, total, plain_optimize)
    ws.close()
    return out


class Statements:
    """Each statement's CPU, recorded (cpu_s, sql)."""

    def __init__(self) -> None:
        self.spent: list[tuple[float, str]] = []

    def _timed(self, run: Callable[[], Any], sql: str) -> Any:
        began = time.process_time()
        try:
            return run()
        finally:
            self.spent.append((time.process_time() - began, " ".join(sql.split())[:100]))


class TimedConnection(Statements):
    """A DuckDB connection whose execute() is timed; anything else goes to the connection."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn

    def execute(self, sql: str, *params: Any) -> Any:
        return self._timed(lambda: self.conn.execute(sql, *params), sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class Timed(Statements):
    """The engine, each statement's CPU recorded (cpu_s, sql)."""

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine, self.name = engine, engine.name

    def watermark(self) -> int:
        return self.engine.watermark()  # type: ignore[no-any-return]

    def query(self, sql: str, params: dict[str, Any]) -> Any:
        return self._timed(lambda: self.engine.query(sql, params), sql)

    def command(self, sql: str) -> None:
        self._timed(lambda: self.engine.command(sql), sql)


def catch_ups(data: Path, ws_dir: Path, sizes: list[int], repeat: int) -> dict[str, Any]:

    from qunflow.analytics import facts_clickhouse
    from qunflow.analytics.engines import open_engine
    from qunflow.analytics.facts import refresh_facts

    ws, source, append = chdb_store(data, ws_dir)
    total = event_count(source, data)
    low = total - sum(sizes) * repeat
    out: dict[str, Any] = {"engine": "chdb", "events": total, "sizes": sizes, "catch_ups": []}
    with open_engine(ws) as engine:
        began = time.process_time()
        append(engine, f"e.event_id <= {low}")
        out["load_cpu_s"] = time.process_time() - began
        replace_spend(engine, source, data)
        began = time.process_time()
        refresh_facts(engine, ws.settings)
        out["build_cpu_s"] = time.process_time() - began
        for _ in range(repeat):
            for size in sizes:
                append(engine, f"e.event_id > {low} AND e.event_id <= {low + size}")
                low += size
                timed = Timed(engine)
                out["catch_ups"].append(timed_catch_up(size, timed, lambda t=timed: facts_clickhouse.refresh(
                    t, ws.settings)))
    ws.close()
    return out


def timed_catch_up(events: int, timed: Statements, refresh: Callable[[], None]) -> dict[str, Any]:
    """One catch-up of `events` events (`refresh`, through `timed`): process CPU, wall, its costliest statements."""
    began, began_wall = time.process_time(), time.perf_counter()
    refresh()
    return {"events": events, "cpu_s": time.process_time() - began, "wall_s": time.perf_counter() - began_wall,
            "costliest": sorted(timed.spent, reverse=True)[:5]}


def duckdb_catch_ups(data: Path, ws_dir: Path, sizes: list[int], repeat: int) -> dict[str, Any]:
    """catch_ups on the default engine: the store loaded as bench_facts.stage_load loads it."""
    from qunflow.analytics.engines import DuckDBEngine
    from qunflow.analytics.facts import refresh_facts
    from qunflow.analytics.store import connect
    from qunflow.workspace import init_workspace

    ws = init_workspace(ws_dir)
    zone = ws.settings.timezone
    with connect(ws.settings.analytics_file) as conn:
        total = conn.execute(f"SELECT count(*) FROM read_parquet('{data}/events.parquet')").fetchall()[0][0]
        low = total - sum(sizes) * repeat
        out: dict[str, Any] = {"engine": "duckdb", "events": total, "sizes": sizes, "catch_ups": []}
        began = time.process_time()
        load_rows(conn, data, zone, 0, low)
        conn.execute(LOAD_SPEND.format(data=data))
        conn.execute("CHECKPOINT")
        out["load_cpu_s"] = time.process_time() - began
        began = time.process_time()
        refresh_facts(DuckDBEngine(conn, zone), ws.settings)
        out["build_cpu_s"] = time.process_time() - began
        for _ in range(repeat):
            for size in sizes:
                load_rows(conn, data, zone, low, low + size)
                low += size
                timed = TimedConnection(conn)
                out["catch_ups"].append(timed_catch_up(size, timed, lambda t=timed: refresh_facts(
                    DuckDBEngine(t, zone), ws.settings)))
    ws.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the floor's data directory")
    parser.add_argument("--ships", type=int, default=5, help="catch-ups the last 50,000 events arrive in")
    parser.add_argument("--tiny", type=int, default=20, help="events in each of the two tiny catch-ups")
    parser.add_argument("--catch-up", help="only time catch-ups of these sizes (events, comma-separated)")
    parser.add_argument("--repeat", type=int, default=3, help="catch-ups of each --catch-up size")
    parser.add_argument("--engine", choices=("chdb", "duckdb"), default="chdb", help="the store --catch-up times")
    args = parser.parse_args()
    if not (args.data / "meta.json").exists():
        raise SystemExit(f"no floor data in {args.data}: python ../shared/floor/gen.py --members N --out {args.data}")
    load_before = os.getloadavg()[0]
    if args.catch_up:
        floor, _peak = run_stage(["--stage", "floor", "--data", str(args.data.resolve())])
        with tempfile.TemporaryDirectory(prefix="qunflow-parts-") as tmp:
            timing = duckdb_catch_ups if args.engine == "duckdb" else catch_ups
            out = timing(args.data.resolve(), Path(tmp) / "ws", [int(n) for n in args.catch_up.split(",")],
                         args.repeat)
        out["floor"] = floor
        print(f"floor (../shared/floor DuckDB suite, Q0-Q5, same data): median of 3 {floor['median_s']:.3f} s")
        for step in out["catch_ups"]:
            print(f"catch-up of {step['events']:,} events: {step['cpu_s']:.3f} s CPU "
                  f"({step['cpu_s'] / out['build_cpu_s']:.3f}x the facts' rebuild), {step['wall_s']:.3f} s wall "
                  f"({step['wall_s'] / floor['median_s']:.2f}x the floor suite); costliest: "
                  + "; ".join(f"{cpu:.3f} {sql[:60]}" for cpu, sql in step["costliest"][:3]))
        print(f"loading the events {out['load_cpu_s']:.1f} s CPU, building the facts {out['build_cpu_s']:.1f} s CPU; "
              f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
        print(json.dumps(out))
        return
    with tempfile.TemporaryDirectory(prefix="qunflow-parts-") as tmp:
        out = run(args.data.resolve(), Path(tmp) / "ws", args.ships, args.tiny)
    out["load_average"] = [load_before, os.getloadavg()[0]]
    print(f"{out['ships']} catch-ups of the last {out['late_events']:,} events: CPU "
          f"{', '.join(f'{s:.2f}' for s in out['catch_up_cpu_s'])} s")
    for step in out["by_parts"]:
        print(f"  up to {step['max_parts']} parts per table: page {step['page_cpu_s']:.3f} s, slices "
              f"{step['slices_cpu_s']:.3f} s of CPU (median)")
    print(f"plain OPTIMIZE after them: {out['plain_after_ships']['cpu_s']:.3f} s CPU, parts "
          f"{out['plain_after_ships']['parts_after']}, page {out['page_plain_cpu_s']:.3f} s")
    print(f"merge_parts (OPTIMIZE FINAL): {out['merge_cpu_s']:.3f} s CPU, parts {out['parts_merged']}, page "
          f"{out['page_merged_cpu_s']:.3f} s")
    for name in ("final_after_tiny", "plain_after_tiny"):
        print(f"{name} ({out['tiny_events']} events, catch-up {out[name]['catch_up_cpu_s']:.2f} s):"
              f" {out[name]['cpu_s']:.3f} s CPU, parts {out[name]['parts_before']} -> {out[name]['parts_after']}")
    print(f"load average {out['load_average'][0]:.1f} -> {out['load_average'][1]:.1f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
