"""bench/bench_erasure.py end to end on a small workspace: it erases a member while another process writes, and
reports the parts and the writer's stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qunflow.services.ingest import ingest_batch
from qunflow.workspace import init_workspace

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def test_bench_erasure_erases_a_member_while_a_writer_stores(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    ingest_batch(ws.engine, [{"event_id": f"e{m}-{i}", "type": "joined" if i == 0 else "message",
                              "ts": f"2026-03-01T10:{i:02d}:00+08:00", "member_id": f"m{m}"}
                             for m in range(3) for i in range(20 + m)])
    ws.close()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_erasure.py"), "--ws", str(tmp_path / "ws"),
                           "--runs", "1"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["member"] == "m0" and run["member_events"] == 20
    assert set(run["parts_s"]) == {"state", "compact", "outside_state"}
    assert run["writer_median_before_s"] is not None and run["writer_failed"] == 0  # it stored, none failed
