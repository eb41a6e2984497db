"""`qunflow demo --no-serve` as a user runs it: a real process, a fresh folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QUNFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_demo_prints_welcome_latency_and_metrics_by_channel(tmp_path: Path) -> None:
    result = run("demo", "--no-serve", "--days", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Welcome DM after join" in out and "Metrics by channel" in out
    assert "simulated day 1/10:" in out and "simulated day 10/10:" in out  # progress lines off a terminal
    for channel in ("douyin-ads", "xhs-notes", "website", "expo"):
        assert channel in out
    assert (tmp_path / "qunflow-demo" / "qunflow.db").exists()
    # The worker ran the shipped playbooks (S2 warm-up sends) and the referral program earned rewards.
    steps, sent = map(int, re.search(r"Automation: (\d+) playbook steps run, (\d+) messages sent", out).groups())
    assert steps > 0 and sent > 0
    assert re.search(r"referral rewards: .*(held|paid) \d+", out)
    # The demo is set up as the seed's four weeks say: the pitfall doctor finds nothing to fix.
    doctor = run("doctor", "--format", "json", "--workspace", str(tmp_path / "qunflow-demo"), cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stderr
    assert json.loads(doctor.stdout) == {"findings": []}


def test_demo_refuses_to_replace_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "qunflow-demo").mkdir()
    (tmp_path / "qunflow-demo" / "precious.txt").write_text("keep me")
    result = run("demo", "--no-serve", cwd=tmp_path)
    assert result.returncode == 2 and "not a demo workspace" in result.stderr
    assert (tmp_path / "qunflow-demo" / "precious.txt").read_text() == "keep me"


def test_demo_rejects_bad_days(tmp_path: Path) -> None:
    result = run("demo", "--no-serve", "--days", "3", cwd=tmp_path)
    assert result.returncode == 2 and "--days" in result.stderr
    assert not (tmp_path / "qunflow-demo").exists()
