"""The metric suite at scale (issue 3): ingest, shipping, the suite by channel and by join week, cold and warm.

Compared in the same run with (a) the floor: one hand-written DuckDB query straight over the Parquet
file (bench/floor_suite.sql) and (b) a straightforward full pandas version of the same keys
(bench/metric_suites.py). The three must agree on every number; the run says so.
Every stage runs in its own child process, measured with os.wait4, so each peak RSS is that stage's own
(the generator does not pollute the suite's figure). Ingest is the real `qunflow events import`.
Run: python bench/bench_metrics.py --members 1000000 [--engine duckdb|chdb|clickhouse] [--skip-pandas]
(clickhouse: a server at QUNFLOW_CLICKHOUSE_URL, which should name a fresh database)
Goals at 1M members: suite <= 1.5x floor, pandas >= 10x suite, suite < 2 GiB, ingest >= 50,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START, END, AS_OF = date(2026, 1, 1), date(2026, 4, 30), date(2026, 4, 30)
GOALS = {"suite_vs_floor": 1.5, "pandas_vs_suite": 10.0, "suite_mib": 2048.0, "ingest_rate": 50_000.0}


# ---- stages, each run in a child process ------------------------------------------------------------------------

def stage_generate(base: Path, members: int, engine: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from qunflow.sim.generator import generate
    from qunflow.workspace import init_workspace

    started = time.perf_counter()
    table = generate(members)
    seconds = time.perf_counter() - started
    pq.write_table(table, base / "events.parquet")
    ws = init_workspace(base / "ws")
    with (base / "ws" / "qunflow.toml").open("a") as settings:
        settings.write(f'\nanalytics_engine = "{engine}"\n')
    ws.close()
    return {"seconds": seconds, "events": table.num_rows}


def stage_ship(base: Path) -> dict[str, Any]:
    from qunflow.analytics.shipper import ship
    from qunflow.workspace import open_workspace

    ws = open_workspace(base / "ws")
    started = time.perf_counter()
    shipped = ship(ws)
    return {"seconds": time.perf_counter() - started, "events": shipped}


def stage_suite(base: Path, by: str) -> dict[str, Any]:
    """qunflow's metrics_report in a fresh process (cold), then again (warm)."""
    from bench.metric_suites import qunflow_suite

    from qunflow.services.metrics import metrics_report
    from qunflow.workspace import open_workspace

    ws = open_workspace(base / "ws")
    times = []
    for _ in ("cold", "warm"):
        started = time.perf_counter()
        report = metrics_report(ws, start=START, end=END, as_of=AS_OF, by=by)
        times.append(time.perf_counter() - started)
    (base / f"qunflow-{by}.pickle").write_bytes(pickle.dumps(qunflow_suite(report)))
    return {"cold": times[0], "warm": times[1]}


def stage_floor(base: Path, by: str) -> dict[str, Any]:
    """The floor query on a fresh connection in a fresh process (cold), then again (warm)."""
    import duckdb
    from bench.metric_suites import floor_suite

    conn = duckdb.connect()
    times = []
    for _ in ("cold", "warm"):
        started = time.perf_counter()
        result = floor_suite(conn, base / "events.parquet", by, START, END, AS_OF)
        times.append(time.perf_counter() - started)
    (base / f"floor-{by}.pickle").write_bytes(pickle.dumps(result))
    return {"cold": times[0], "warm": times[1]}


def stage_pandas(base: Path, by: str) -> dict[str, Any]:
    from bench.metric_suites import pandas_suite

    started = time.perf_counter()
    result = pandas_suite(base / "events.parquet", by, START, END, AS_OF)
    seconds = time.perf_counter() - started
    (base / f"pandas-{by}.pickle").write_bytes(pickle.dumps(result))
    return {"cold": seconds}


STAGES = {"generate": stage_generate, "ship": stage_ship, "suite": stage_suite, "floor": stage_floor,
          "pandas": stage_pandas}


# ---- the parent: run children, measure, compare, print -----------------------------------------------------------

def child_env() -> dict[str, str]:
    """Children import qunflow from this checkout (the venv's editable install may point elsewhere)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def run_child(command: list[str], log: Path) -> tuple[float, float, str]:
    """Run a process to the end: (wall seconds, its own peak RSS in MiB, its stdout)."""
    started = time.perf_counter()
    with log.open("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env())
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{text[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def run_stage(base: Path, name: str, *args: str) -> tuple[dict[str, Any], float]:
    command = [sys.executable, __file__, "--stage", name, "--dir", str(base), *args]
    _, peak, text = run_child(command, base / f"{name}-{'-'.join(args)}.log")
    return json.loads(text.strip().splitlines()[-1]), peak


def qunflow_command() -> list[str]:
    script = Path(sys.executable).with_name("qunflow")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def load(base: Path, name: str, by: str) -> Any:
    return pickle.loads((base / f"{name}-{by}.pickle").read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "chdb", "clickhouse"])
    parser.add_argument("--skip-pandas", action="store_true", help="leave out the pandas baseline")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temporary one)")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--by", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        extra = {"generate": (args.members, args.engine), "ship": ()}.get(args.stage, (args.by,))
        print(json.dumps(STAGES[args.stage](args.dir, *extra)))
        return
    base = args.keep or Path(tempfile.mkdtemp(prefix="qunflow-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        report(bench(base, args), args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def bench(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    figures: dict[str, Any] = {"rows": [], "load": [load_before]}
    rows = figures["rows"]
    generated, peak = run_stage(base, "generate", "--members", str(args.members), "--engine", args.engine)
    events = figures["events"] = generated["events"]
    rows.append(("generate (numpy) + write Parquet", generated["seconds"], None, peak))
    command = [*qunflow_command(), "events", "import", str(base / "events.parquet"), "--workspace", str(base / "ws")]
    seconds, peak, _ = run_child(command, base / "import.log")
    figures["ingest_rate"] = events / seconds
    rows.append(("ingest: qunflow events import (whole process)", seconds, events / seconds, peak))
    shipped, peak = run_stage(base, "ship")
    rows.append((f"ship to {args.engine}", shipped["seconds"], events / shipped["seconds"], peak))
    figures["suite"], figures["floor"], figures["pandas"], figures["checks"] = {}, {}, {}, {}
    for by in ("channel", "cohort_week"):
        suite, peak = run_stage(base, "suite", "--by", by)
        figures["suite"][by] = {**suite, "peak": peak}
        rows += [(f"suite by {by}, qunflow, cold (fresh process)", suite["cold"], None, peak),
                 (f"suite by {by}, qunflow, warm", suite["warm"], None, None)]
        floor, peak = run_stage(base, "floor", "--by", by)
        figures["floor"][by] = {**floor, "peak": peak}
        rows += [(f"suite by {by}, (a) floor: one DuckDB query on Parquet, cold", floor["cold"], None, peak),
                 (f"suite by {by}, (a) floor, warm", floor["warm"], None, None)]
        if not args.skip_pandas:
            pandas, peak = run_stage(base, "pandas", "--by", by)
            figures["pandas"][by] = {**pandas, "peak": peak}
            rows.append((f"suite by {by}, (b) pandas", pandas["cold"], None, peak))
        figures["checks"][by] = cross_check(base, by, with_pandas=not args.skip_pandas)
        figures["load"].append(os.getloadavg())
    return figures


def cross_check(base: Path, by: str, *, with_pandas: bool) -> dict[str, list[str]]:
    from bench.metric_suites import differences

    ours = load(base, "qunflow", by)
    checks = {"floor": differences(ours, load(base, "floor", by), ("qunflow", "floor"))}
    if with_pandas:
        checks["pandas"] = differences(ours, load(base, "pandas", by), ("qunflow", "pandas"))
    checks["rows"] = [str(len(ours))]
    return checks


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    loads = ", ".join("/".join(f"{x:.2f}" for x in load) for load in figures["load"])
    table = Table(title=f"Metric suite, {args.members:,} members, {figures['events']:,} events, engine {args.engine}"
                        f" ({os.cpu_count()} cores; load average 1/5/15 min during the run: {loads})")
    for column in ("stage (each in its own process)", "seconds", "events/s", "peak RSS MiB (that process)"):
        table.add_column(column, justify="left" if column.startswith("stage") else "right")
    for label, seconds, rate, peak in figures["rows"]:
        table.add_row(label, f"{seconds:.2f}", f"{rate:,.0f}" if rate else "", f"{peak:,.0f}" if peak else "")
    console.print(table)

    for by, checks in figures["checks"].items():
        for other in ("floor", "pandas"):
            if other not in checks:
                continue
            found = checks[other]
            if found:
                console.print(f"[red]by {by}: qunflow and {other} DISAGREE on {len(found)} value(s):[/red]")
                for line in found[:20]:
                    console.print(f"  {line}", highlight=False)
            else:
                console.print(f"by {by}: qunflow and {other} agree on every value of {checks['rows'][0]} rows "
                              "(total included), 22 spend-free keys, within float rounding")

    goals = Table(title="Goals (issue 3; they are stated for 1M members)")
    for column in ("goal", "measured", "target", "met"):
        goals.add_column(column, justify="left" if column == "goal" else "right")

    def goal(name: str, value: float, target: float, fmt: str, at_most: bool) -> None:
        met = value <= target if at_most else value >= target
        goals.add_row(name, format(value, fmt), ("<= " if at_most else ">= ") + format(target, fmt),
                      "[green]met[/green]" if met else "[red]not met[/red]")

    for by in figures["suite"]:
        suite, floor = figures["suite"][by], figures["floor"][by]
        goal(f"suite / floor by {by}, cold", suite["cold"] / floor["cold"], GOALS["suite_vs_floor"], ".2f", True)
        goal(f"suite / floor by {by}, warm", suite["warm"] / floor["warm"], GOALS["suite_vs_floor"], ".2f", True)
        if by in figures["pandas"]:
            goal(f"pandas / suite by {by} (cold)", figures["pandas"][by]["cold"] / suite["cold"],
                 GOALS["pandas_vs_suite"], ".1f", False)
        goal(f"peak RSS of the suite stage by {by}, MiB", suite["peak"], GOALS["suite_mib"], ",.0f", True)
    goal("ingest through qunflow events import, events/s", figures["ingest_rate"], GOALS["ingest_rate"], ",.0f",
         False)
    console.print(goals)
    console.print(json.dumps({k: figures[k] for k in ("events", "ingest_rate", "suite", "floor", "pandas", "load")}))


if __name__ == "__main__":
    main()
