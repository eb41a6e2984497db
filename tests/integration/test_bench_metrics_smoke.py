"""bench/bench_metrics.py (issue 15's check) end to end, small: the floor's data imported through the CLI, every
goal printed, and qunflow's values equal to ../shared/floor/'s; its comparison sees a value that differs.
Needs ../shared/floor/ (QUNFLOW_FLOOR), else skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = Path(os.environ.get("QUNFLOW_FLOOR", ROOT.parent / "shared" / "floor"))
pytestmark = pytest.mark.skipif(not (FLOOR / "gen.py").exists(),
                                reason="the floor (../shared/floor) is not on this machine")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    base = tmp_path_factory.mktemp("bench-metrics")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_metrics.py"), "--members", "20000",
                           "--data", str(base / "data"), "--keep", str(base / "work")],
                          env=env, capture_output=True, text=True, timeout=600)
    return done, base


def test_bench_metrics_runs_and_agrees_with_the_floor(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, _ = run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "qunflow and the floor agree on all" in done.stdout
    for goal in ("both slices / floor suite", "peak RSS of the slices process", "first call after the import",
                 "dashboard page"):
        assert f"goal: {goal}" in done.stdout
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["differences"] == [] and figures["compared"] > 300
    assert figures["events"] == json.loads((run[1] / "data" / "meta.json").read_text())["events"]


def test_the_live_dashboard_reads_ship_their_new_events_and_keep_the_facts_up(
        run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    sys.path[:0] = [str(ROOT)]
    from bench.bench_metrics import LIVE_EVENTS

    from qunflow.analytics.facts import usable
    from qunflow.analytics.shipper import analytics
    from qunflow.workspace import open_workspace

    done, base = run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["slices"]["live_dashboard_s"] > 0 and "after 20 new events" in done.stdout
    ws = open_workspace(base / "work" / "ws")
    try:
        with analytics(ws, ship_first=False) as engine:
            assert engine.watermark() == figures["events"] + 3 * LIVE_EVENTS
            assert usable(engine, ws.settings, None)
    finally:
        ws.close()


def test_the_comparison_sees_a_value_that_differs(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Reports rebuilt from the floor's own values agree with it; one value off by 1e-6, or a missing row, not. A
    group with no member has no row in qunflow's report: that is no difference."""
    sys.path[:0] = [str(ROOT), str(FLOOR)]
    from bench.bench_metrics import BY_CHANNEL, BY_GROUP, BY_WEEK, differences, week_key
    from queries.common import RESULTS

    floor = json.loads((run[1] / "data" / "floor-duckdb.json").read_text())["results"]
    names = {values[0]: f"channel {values[0]}" for values in floor["q5_conversion_ltv_cpa"]}
    reports: dict[str, dict[str, dict[str, object]]] = {"channel": {}, "cohort_week": {}, "group": {}}
    slicings = (("channel", BY_CHANNEL, names.__getitem__), ("cohort_week", BY_WEEK, week_key),
                ("group", BY_GROUP, lambda k: f"g{k}"))
    for by, mapping, key in slicings:
        for result, columns in mapping.items():
            for values in floor[result]:
                row = dict(zip(RESULTS[result], values, strict=True))
                if by != "group" or row["members"]:
                    reports[by].setdefault(key(values[0]), {by: key(values[0])}).update(
                        {ours: row[theirs] for theirs, ours in columns.items()})
    rows = {by: list(by_key.values()) for by, by_key in reports.items()}
    found, compared = differences(rows, floor, names)
    assert (found, compared) == ([], sum(len(floor[r]) * len(c) for m in (BY_CHANNEL, BY_WEEK, BY_GROUP)
                                         for r, c in m.items()))
    assert len(rows["group"]) > 0

    first = reports["channel"][names[floor["q5_conversion_ltv_cpa"][0][0]]]
    first["conversion_rate"] = (first["conversion_rate"] or 0) + 1e-6  # type: ignore[operator]
    week = rows["cohort_week"].pop()
    group = rows["group"][0]
    group["current_members"] = int(group["current_members"]) + 1  # type: ignore[call-overload]
    found, _ = differences(rows, floor, names)
    assert len(found) == 3
    assert found[0].startswith(f"by channel {first['channel']}: conversion_rate = ")
    assert found[1] == f"q2_retention_week {week['cohort_week']}: no row by cohort_week in qunflow's report"
    assert found[2].startswith(f"by group {group['group']}: current_members = ")
