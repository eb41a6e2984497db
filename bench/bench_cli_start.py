"""The CLI's fixed cost: wall time of `qunflow metrics --help` (and `qunflow --help`) as a fresh process, next
to a floor measured in the same run: a bare Python that imports typer and prints a help screen of its own.

Goal (issue 15): `qunflow metrics --help` under 0.25 s. Each command is run --runs times; the median and the
slowest are printed (the first run warms the file cache and is dropped).
Run: python bench/bench_cli_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

GOAL_S = 0.25
FLOOR = ("import typer\n"
         "app = typer.Typer()\n"
         "@app.command()\n"
         "def metrics(by: str = 'channel', as_of: str = '') -> None:\n"
         "    'Metrics.'\n"
         "app()\n")


def timed(argv: list[str], runs: int) -> list[float]:
    env = {**os.environ, "COLUMNS": "100"}
    seconds = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, cwd=Path(__file__).resolve().parent, check=False)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-400:]}")
    return seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = Path(sys.executable).with_name("qunflow")  # the installed entry point, as a user runs it
    if not script.exists():
        raise SystemExit(f"no {script}: install qunflow into this Python first (pip install -e .)")
    qunflow = [str(script)]
    rows = {
        "floor: python + typer, one command's --help": timed([sys.executable, "-c", FLOOR, "--help"], args.runs),
        "qunflow metrics --help": timed([*qunflow, "metrics", "--help"], args.runs),
        "qunflow --help (lists every group)": timed([*qunflow, "--help"], args.runs),
        "qunflow group add --help": timed([*qunflow, "group", "add", "--help"], args.runs),
    }
    console = Console(width=120)
    console.print(f"machine: {os.cpu_count()} cores, load average "
                  f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min); {args.runs} runs each")
    table = Table(title="CLI start-up, a fresh process per run")
    for column in ("command", "median s", "max s", "median / floor"):
        table.add_column(column, justify="left" if column == "command" else "right")
    floor = statistics.median(next(iter(rows.values())))
    for name, seconds in rows.items():
        middle = statistics.median(seconds)
        table.add_row(name, f"{middle:.3f}", f"{max(seconds):.3f}", f"{middle / floor:.2f}x")
    console.print(table)
    got = statistics.median(rows["qunflow metrics --help"])
    console.print(f"goal: `qunflow metrics --help` under {GOAL_S} s: {'MET' if got < GOAL_S else 'NOT MET'} "
                  f"(median {got:.3f} s)")


if __name__ == "__main__":
    main()
