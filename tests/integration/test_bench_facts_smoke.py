"""bench/bench_facts.py end to end, small: the floor's data, the facts kept up as late events arrive, the same
reports from the facts and from the events; bench/bench_facts_parts.py on chdb: parts left by catch-ups with
merges stopped, the reads timed at each count, one part per facts table after merge_parts, the two tiny
catch-ups merged; its --catch-up mode timing catch-ups of two sizes, on chdb and on DuckDB. Needs
../shared/floor/ (QUNFLOW_FLOOR), else skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = Path(os.environ.get("QUNFLOW_FLOOR", ROOT.parent / "shared" / "floor"))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
pytestmark = pytest.mark.skipif(not (FLOOR / "gen.py").exists(),
                                reason="the floor (../shared/floor) is not on this machine")


def test_bench_facts_runs_and_both_paths_agree(tmp_path: Path) -> None:
    # chdb's M1 from the events takes minutes even at 20k members: stopped after 30 s (the capped path runs).
    env = {**ENV, "BENCH_LANDING_CAP_S": "30"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_facts.py"), "--members", "20000",
                           "--data", str(tmp_path / "data")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "kept facts vs rebuild: 0 rows differ" in done.stdout
    assert "same reports: True" in done.stdout
    assert "both slices / floor suite:" in done.stdout


def test_bench_facts_parts_leaves_parts_then_merges_them(tmp_path: Path) -> None:
    pytest.importorskip("chdb", reason="the bench runs on chdb: pip install -e '.[test]'")
    subprocess.run([sys.executable, str(FLOOR / "gen.py"), "--members", "20000", "--out", str(tmp_path / "data")],
                   check=True, capture_output=True, timeout=300)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_facts_parts.py"), "--data",
                           str(tmp_path / "data"), "--ships", "2"], env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out["catch_up_cpu_s"]) == 2 and max(out["parts_unmerged"].values()) == 3
    assert [step["max_parts"] for step in out["by_parts"]] == [1, 2, 3]
    assert set(out["parts_merged"].values()) == {1}
    for tiny in ("final_after_tiny", "plain_after_tiny"):  # each tiny catch-up adds a part, then merged
        assert max(out[tiny]["parts_before"].values()) == 2 and out[tiny]["cpu_s"] > 0, out[tiny]
    assert set(out["final_after_tiny"]["parts_after"].values()) == {1}
    assert out["page_unmerged_cpu_s"] > 0 and out["page_merged_cpu_s"] > 0
    for engine in ("chdb", "duckdb"):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_facts_parts.py"), "--data",
                               str(tmp_path / "data"), "--catch-up", "20,200", "--repeat", "2", "--engine", engine],
                              env=ENV, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["engine"] == engine and [step["events"] for step in out["catch_ups"]] == [20, 200, 20, 200]
        assert all(step["cpu_s"] > 0 and step["wall_s"] > 0 and len(step["costliest"]) == 5
                   for step in out["catch_ups"])
        assert out["floor"]["median_s"] > 0 and "x the floor suite" in done.stdout  # the baseline, same run
