"""The metrics benchmark's cross-check, small: the floor query and pandas agree with qunflow, and disagree
when they should."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from bench.metric_suites import TOTAL, differences, floor_suite, pandas_suite, qunflow_suite

from qunflow.services.fileimport import import_event_file
from qunflow.services.metrics import metrics_report
from qunflow.sim.generator import generate
from qunflow.workspace import Workspace

START, END, AS_OF = date(2026, 1, 1), date(2026, 4, 30), date(2026, 4, 30)


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "events.parquet"
    pq.write_table(generate(3000, seed=11), path)
    return path


@pytest.mark.parametrize("by", ["channel", "cohort_week"])
def test_floor_and_pandas_agree_with_qunflow(workspace: Workspace, parquet: Path, by: str) -> None:
    result = import_event_file(workspace.engine, parquet)
    assert not result.errors and result.stored == pq.read_metadata(parquet).num_rows
    ours = qunflow_suite(metrics_report(workspace, start=START, end=END, as_of=AS_OF, by=by))
    floor = floor_suite(duckdb.connect(), parquet, by, START, END, AS_OF)
    plain = pandas_suite(parquet, by, START, END, AS_OF)

    assert differences(ours, floor, ("qunflow", "floor")) == []
    assert differences(ours, plain, ("qunflow", "pandas")) == []
    total = ours[TOTAL]
    # The data reaches the rules that are easy to get wrong: open windows, leaves and rejoins, money.
    assert total["in_progress"] > 0 and total["converted"] > 0
    assert 0 < total["current_members"] < pq.read_table(parquet, filters=[("type", "=", "joined")]).num_rows
    assert total["landing_visitors"] > total["cohort_size"] > 0
    assert total["k_factor"] and total["revenue_per_member"] and total["median_seconds_to_conversion"]
    assert len(ours) > (4 if by == "channel" else 15)


def test_the_cross_check_sees_a_disagreement(parquet: Path) -> None:
    conn = duckdb.connect()
    floor = floor_suite(conn, parquet, "channel", START, END, AS_OF)
    earlier = floor_suite(conn, parquet, "channel", START, END, date(2026, 4, 20))
    found = differences(floor, earlier, ("as of 04-30", "as of 04-20"))
    assert any("in_progress" in line for line in found) and any("current_members" in line for line in found)

    changed = {dim: dict(values) for dim, values in floor.items()}
    changed[TOTAL]["retention_d7"] += 1e-6
    del changed["expo"]
    assert differences(floor, changed, ("a", "b")) == [
        f"'__total__' retention_d7: a {floor[TOTAL]['retention_d7']!r} vs b {changed[TOTAL]['retention_d7']!r}",
        "row 'expo' only in a",
    ]


def test_the_connectors_bench_runs_small_and_prints_both_platforms() -> None:
    """bench/bench_connectors.py at a tiny size: qunflow serve, both fake platforms, the floors, the tables."""
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_connectors.py"
    run = subprocess.run([sys.executable, str(bench), "--rate", "20", "--seconds", "0.5",
                          "--sqlite-synchronous", "normal"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "telegram: 10 arrivals" in out and "wecom: 10 arrivals" in out  # both platforms' tables
    assert "telegram: welcomed 10 of 10, approved 10 of 10" in out
    assert "wecom: welcomed 10 of 10" in out
    assert "floor: sendMessage straight to the fake" in out and "decrypt-only handler" in out
    assert "telegram: goal p99 < 100 ms" in out and "wecom: goal p99 < 100 ms" in out
    assert "where the time goes" in out


def test_the_connectors_bench_on_postgres_counts_every_web_process_and_the_event_lock() -> None:
    """--postgres --workers 2: the webhooks go to the web processes, whose CPU the bench reads from /proc, and
    the event lock's use is sampled."""
    import os
    import re
    import subprocess
    import sys

    admin = os.environ.get("QUNFLOW_TEST_POSTGRES_URL")
    if not admin:
        pytest.skip("needs QUNFLOW_TEST_POSTGRES_URL")
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_connectors.py"
    run = subprocess.run([sys.executable, str(bench), "--platform", "wecom", "--rate", "20", "--seconds", "1",
                          "--postgres", admin, "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = " ".join(run.stdout.split())  # rich wraps long lines
    assert "wecom: welcomed 20 of 20" in out
    assert "serve's parent handled no webhook" in out
    line = re.search(r"wecom: every serve process, from /proc .*? \(parent ([\d.]+), (\d+) child processes ([\d.]+)\);"
                     r" event lock held (\d+)% of the time", out)
    assert line is not None, out[-3000:]
    assert int(line.group(2)) >= 2 and float(line.group(3)) > 0  # the web processes' CPU is counted
    # Where the machine's CPU went: the database server's share is read too, and the cores it all comes to.
    machine = re.search(r"wecom: CPU s per 1,000 joins on this machine: serve ([\d.]+), PostgreSQL ([\d.]+), this "
                        r"bench \(fake platform and driver\) ([\d.]+); at 1,000 joins/s serve and PostgreSQL would "
                        r"keep ([\d.]+) cores busy", out)
    assert machine is not None, out[-3000:]
    assert float(machine.group(2)) > 0 and float(machine.group(3)) > 0
    assert float(machine.group(4)) == pytest.approx(float(machine.group(1)) + float(machine.group(2)), abs=0.11)
