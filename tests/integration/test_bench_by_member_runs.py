"""bench/bench_by_member_runs.py end to end on a small store (DuckDB's copy of the events ordered by member)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def test_bench_by_member_runs_finds_the_same_events_in_every_shape_of_the_copy(tmp_path: Path) -> None:
    """bench/bench_by_member_runs.py on a small store: the tail, the sorted runs, the whole copy and no copy give
    the same lookups (the bench times equal work), and it times the run's append against the whole sort."""
    from qunflow.analytics.shipper import analytics
    from qunflow.services.ingest import ingest_batch
    from qunflow.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    ingest_batch(ws.engine, [{"event_id": f"e{i}", "type": "joined" if i < 60 else "message",
                              "ts": f"2026-03-{1 + i % 20:02d}T10:{i % 60:02d}:00Z", "member_id": f"m{(i * 7) % 60}"}
                             for i in range(400)])
    with analytics(ws):
        pass
    ws.close()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_by_member_runs.py"), "--store",
                           ws.settings.analytics_file, "--tail", "0.5", "--runs", "3", "--members", "10",
                           "--repeat", "3"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    found = {shape: out["lookup_" + shape]["events_found"] for shape in ("tail", "run", "whole", "no_copy")}
    assert len(set(found.values())) == 1 and found["tail"] > 0, found
    assert out["runs"] == 3 and out["extend"]["wall_s"] > 0 and out["build"]["wall_s"] > 0
    assert "whole copy sorted again" in done.stdout
