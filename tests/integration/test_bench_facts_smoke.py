"""bench/bench_facts.py end to end, small: the floor's data, the facts kept up as late events arrive, the same
reports from the facts and from the events. Needs ../shared/floor/ (QUNFLOW_FLOOR), else skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = Path(os.environ.get("QUNFLOW_FLOOR", ROOT.parent / "shared" / "floor"))


@pytest.mark.skipif(not (FLOOR / "gen.py").exists(), reason="the floor (../shared/floor) is not on this machine")
def test_bench_facts_runs_and_both_paths_agree(tmp_path: Path) -> None:
    # chdb's M1 from the events takes minutes even at 20k members: stopped after 30 s (the capped path runs).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "BENCH_LANDING_CAP_S": "30"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_facts.py"), "--members", "20000",
                           "--data", str(tmp_path / "data")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "kept facts vs rebuild: 0 rows differ" in done.stdout
    assert "same reports: True" in done.stdout
    assert "both slices / floor suite:" in done.stdout
