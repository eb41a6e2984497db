"""Shipping and importing at scale (issue 15): the first metrics call after an import, against DuckDB
loading the same rows from Parquet, and `qunflow events import` from Parquet.

Data: the reference generator in ../shared/floor/ (gen.py; --floor names its folder), converted to an
event file qunflow imports (ids as text, channel names, group keys, the tier on each join, money as
decimals). In one run:
1. DuckDB loads the converted Parquet file into a table: the shipping floor;
2. `qunflow events import` of that file into a fresh workspace (SQLite), timed as a whole process (it ships
   its batches along to the analytics store as they commit: analytics/ship_along.py);
3. the first `qunflow metrics --by channel` after it (ships what is left, then runs the suite), and the
   ship alone (analytics.shipper.ship) of the whole state database into a copy without an analytics store,
   both as whole processes.
The package is byte-compiled first, as an install does: with PYTHONDONTWRITEBYTECODE set (this development
machine), every process would otherwise compile qunflow's modules again, about 0.3 s a process.
Prints the ratios against the floor. Run: python bench/bench_ship.py --members 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLOOR = Path(os.environ.get("QUNFLOW_FLOOR", ROOT.parent / "shared" / "floor"))
GOAL_FIRST_CALL = 3.0  # the first metrics call after an import within 3x of DuckDB's Parquet load
PERIOD = ["--from", "2026-01-01", "--to", "2026-03-31", "--as-of", "2026-03-31", "--format", "json"]


# The floor's events as a file `qunflow events import` reads: text ids, channel names, group keys, the group's tier
# on each join, money as decimals (and the channel's spend as a CSV file `qunflow spend import` reads).
IMPORT_EVENTS = """
COPY (SELECT CAST(e.event_id AS VARCHAR) AS event_id, e.type, e.ts, 'm' || e.member_id AS member_id,
             c.name AS channel, 'g' || e.group_id AS "group", 'm' || e.referrer_id AS referrer_id,
             CAST(e.amount AS DECIMAL(18, 4)) AS amount, CAST(e.margin AS DECIMAL(18, 4)) AS margin,
             CASE WHEN e.amount IS NOT NULL THEN 'CNY' END AS currency,
             CASE WHEN e.type = 'joined' THEN CAST(json_object('tier', g.tier) AS VARCHAR) END AS properties
      FROM read_parquet('{data}/events.parquet') e
      LEFT JOIN read_parquet('{data}/channels.parquet') c ON c.id = e.channel_id
      LEFT JOIN read_parquet('{data}/groups.parquet') g ON g.id = e.group_id
      ORDER BY e.event_id) TO '{out}' (FORMAT parquet)
"""
IMPORT_SPEND = """
COPY (SELECT c.name AS channel, s.day, CAST(s.amount AS DECIMAL(18, 4)) AS amount, 'CNY' AS currency
      FROM read_parquet('{data}/spend.parquet') s JOIN read_parquet('{data}/channels.parquet') c ON c.id = s.channel_id
      ORDER BY 1, 2) TO '{out}' (HEADER)
"""


def generate(floor: Path, members: int, data: Path) -> None:
    """The floor generator's data (seeded) in `data`, unless it already holds that many members."""
    meta = data / "meta.json"
    if meta.exists() and json.loads(meta.read_text())["members"] == members:
        return
    subprocess.run([sys.executable, str(floor / "gen.py"), "--members", str(members), "--out", str(data)],
                   check=True, capture_output=True)


def convert(data: Path, out: Path) -> tuple[Path, Path]:
    """The floor's data as an event file and a spend file qunflow imports (events.parquet, spend.csv in `out`)."""
    import duckdb

    events, spend = out / "events.parquet", out / "spend.csv"
    with duckdb.connect() as conn:
        conn.execute(IMPORT_EVENTS.format(data=data, out=events))
        conn.execute(IMPORT_SPEND.format(data=data, out=spend))
    return events, spend


def child_env() -> dict[str, str]:
    """Children import qunflow from this checkout (the venv's editable install may point elsewhere)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def timed_process(command: list[str], env: dict[str, str] | None = None) -> float:
    return measured_process(command, env)[0]


def measured_process(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """A whole process's wall seconds and peak RSS (MiB: the largest of it and the children it waited for)."""
    with tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env or child_env())
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command[:4])}... failed:\n{errors.read()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def duckdb_floor(parquet: Path, base: Path) -> float:
    """DuckDB loading the rows from Parquet into a table of a fresh file, as a whole process."""
    script = ("import duckdb,sys; c=duckdb.connect(sys.argv[2]); "
              "c.execute(\"CREATE TABLE events AS SELECT * FROM read_parquet('\" + sys.argv[1] + \"')\"); c.close()")
    return timed_process([sys.executable, "-c", script, str(parquet), str(base / "floor.duckdb")])


def compile_package() -> None:
    """Byte-compile qunflow, as installing it does (compileall writes .pyc even under PYTHONDONTWRITEBYTECODE)."""
    import compileall

    import qunflow

    compileall.compile_dir(str(Path(qunflow.__file__).parent), quiet=1)


def qunflow_command() -> list[str]:
    found = shutil.which("qunflow")
    return [found] if found else [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--floor", type=Path, default=FLOOR, help="the reference generator's folder")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        figures = bench(base, args)
    report(figures, args.members)


def bench(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    import pyarrow.parquet as pq

    compile_package()
    generate(args.floor, args.members, base / "floor")
    parquet, _ = convert(base / "floor", base)
    events = pq.ParquetFile(parquet).metadata.num_rows
    qunflow = qunflow_command()
    figures: dict[str, Any] = {"events": events, "load": os.getloadavg()[0]}
    figures["duckdb_parquet_load"] = duckdb_floor(parquet, base)
    for name in ("ws", "ws-ship"):
        subprocess.run([*qunflow, "init", str(base / name)], check=True, capture_output=True)
    figures["import"] = timed_process([*qunflow, "events", "import", str(parquet), "--workspace",
                                       str(base / "ws")])
    shutil.copytree(base / "ws", base / "ws-ship", dirs_exist_ok=True)
    (base / "ws-ship" / "analytics.duckdb").unlink(missing_ok=True)  # the ship alone ships every event
    ship = ("import sys; from qunflow.workspace import open_workspace; from qunflow.analytics.shipper import ship; "
            "print(ship(open_workspace(sys.argv[1])))")
    figures["ship"] = timed_process([sys.executable, "-c", ship, str(base / "ws-ship")])
    figures["first_call"] = timed_process([*qunflow, "metrics", "--by", "channel", *PERIOD, "--workspace",
                                           str(base / "ws")])
    figures["warm_call"] = timed_process([*qunflow, "metrics", "--by", "channel", *PERIOD, "--workspace",
                                          str(base / "ws")])
    figures["load_after"] = os.getloadavg()[0]
    return figures


def report(figures: dict[str, Any], members: int) -> None:
    floor = figures["duckdb_parquet_load"]
    events = figures["events"]
    print(f"bench_ship: {members:,} members, {events:,} events; load average {figures['load']:.2f} before, "
          f"{figures['load_after']:.2f} after (2 cores, shared)")
    rows = [("DuckDB: CREATE TABLE AS read_parquet (the floor)", floor),
            ("qunflow events import (Parquet, whole process)", figures["import"]),
            ("ship alone (analytics.shipper.ship, whole process)", figures["ship"]),
            ("first qunflow metrics --by channel after the import", figures["first_call"]),
            ("the same call again (nothing to ship)", figures["warm_call"]),
            ("the import and the first call together", figures["import"] + figures["first_call"])]
    for label, seconds in rows:
        print(f"  {label:<55} {seconds:8.2f} s  {events / seconds:>12,.0f} events/s  {seconds / floor:6.1f}x floor")
    ratio = figures["first_call"] / floor
    verdict = "met" if ratio <= GOAL_FIRST_CALL else "MISSED"
    print(f"goal: first call within {GOAL_FIRST_CALL:.0f}x of the floor: {ratio:.1f}x, {verdict}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
