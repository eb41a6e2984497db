"""Shipping and importing at scale (issue 15): the first metrics call after an import, against DuckDB
loading the same rows from Parquet, and `qunflow events import` from Parquet.

Data: the reference generator in ../shared/floor/ (gen.py; --floor names its folder), converted to an
event file qunflow imports (ids as text, channel names, group keys, money as decimals). In one run:
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


def generate(floor: Path, members: int, out: Path) -> Path:
    """The floor generator's events, as a Parquet file `qunflow events import` reads."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    raw = out / "floor"
    subprocess.run([sys.executable, str(floor / "gen.py"), "--members", str(members), "--out", str(raw)],
                   check=True, capture_output=True)
    events = pq.read_table(raw / "events.parquet")
    channels = pq.read_table(raw / "channels.parquet")

    def text(prefix: str, column: Any) -> Any:
        return pc.binary_join_element_wise(prefix, column.cast(pa.string()), "")

    names = pc.take(channels["name"], pc.index_in(events["channel_id"], channels["id"]))
    money = pa.decimal128(18, 4)
    table = pa.table({
        "event_id": text("e", events["event_id"]), "type": events["type"], "ts": events["ts"],
        "member_id": text("m", events["member_id"]), "channel": names,
        "group": text("g", events["group_id"]), "referrer_id": text("m", events["referrer_id"]),
        "amount": pc.round(events["amount"], 2).cast(money), "margin": pc.round(events["margin"], 2).cast(money),
    })
    path = out / "events.parquet"
    pq.write_table(table, path)
    return path


def timed_process(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{done.stderr[-2000:]}")
    return seconds


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
    parquet = generate(args.floor, args.members, base)
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
