"""The dashboard's previous period on a store with history before it: bench_facts.py's period starts on the data's
first day, so its previous period is empty and costs nothing. Here a 6-week dashboard ends on the data's last day
and its previous 6 weeks are full; the previous period's report (by none, as of its own past day) and the whole
dashboard are timed, wall and the process's CPU, median of 3 warm runs, next to ../shared/floor/'s DuckDB suite on the
same data in the same run (its median of 3, as bench_facts.py runs it).

    python bench/bench_previous_period.py --data /tmp/facts-data/m1000000 --ws /tmp/prev-ws

The store is made once under --ws from the floor's data (bench_facts.py's load, DuckDB) and reused; a dashboard
brings its spend in line with the (empty) state database, so time main and a branch on copies of one store.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Median wall and CPU seconds of 3 runs after a warm-up, and the last result."""
    run()
    wall, cpu, out = [], [], None
    for _ in range(3):
        began, began_cpu = time.perf_counter(), time.process_time()
        out = run()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return statistics.median(wall), statistics.median(cpu), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the floor's data directory (gen.py --out)")
    parser.add_argument("--ws", type=Path, required=True, help="the workspace to make (once) and read")
    args = parser.parse_args()
    from bench.bench_facts import period, run_stage, stage_load

    if not args.ws.exists():
        stage_load(args.data, args.ws)
    from qunflow.services.dashboard import build_dashboard, previous_period
    from qunflow.services.metrics import metrics_report
    from qunflow.workspace import open_workspace

    floor, _floor_peak = run_stage(["--stage", "floor", "--data", str(args.data)])
    ws = open_workspace(args.ws)
    _first, end = period(args.data)
    start = end - timedelta(days=41)
    before = previous_period(start, end, end)
    previous_wall, previous_cpu, previous = timed(lambda: metrics_report(
        ws, start=before[0], end=before[1], as_of=before[2], by="none", ship_first=False))
    board_wall, board_cpu, _board = timed(lambda: build_dashboard(ws, start, end, end))
    print(json.dumps({"period": [str(start), str(end)], "previous": [str(day) for day in before],
                      "previous_wall_s": previous_wall, "previous_cpu_s": previous_cpu,
                      "dashboard_wall_s": board_wall, "dashboard_cpu_s": board_cpu,
                      "floor_suite_s": floor["median_s"], "dashboard_vs_floor": board_wall / floor["median_s"],
                      "previous_cohort_size": previous["total"]["cohort_size"],
                      "previous_current_members": previous["total"]["current_members"]}))


if __name__ == "__main__":
    main()
