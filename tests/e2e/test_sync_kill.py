"""The outbound sync from the command line: configured in qunflow.toml, killed with SIGKILL mid-post, then
finished by the next worker (every event delivered; a repeat only of posts made before the kill, same event id);
`qunflow sync list` shows dead letters and `qunflow sync retry` puts them back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.domain.sync import verify
from qunflow.services.ingest import ingest_batch
from qunflow.services.sync import LEASE, list_deliveries, sync_round
from qunflow.workspace import Workspace, open_workspace, utc_now
from tests.webhook import Webhook

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]
SECRET = "whsec-e2e-secret"
ENV = "QUNFLOW_E2E_CRM_SECRET"
runner = CliRunner()


def configure(ws: Workspace, url: str, attempts: int = 8) -> None:
    with (ws.home / "qunflow.toml").open("a", encoding="utf-8") as file:
        file.write(f'\n[qunflow.sync.crm]\nurl = "{url}"\nevents = ["level_changed", "member_joined"]\n'
                   f'secret_env = "{ENV}"\nattempts = {attempts}\n')


def level_events(count: int) -> list[dict[str, object]]:
    return [{"event_id": f"lv-{i}", "type": "level_changed", "ts": "2026-03-02T09:00:00+08:00",
             "member_id": f"m_{i}", "properties": {"from": "new", "to": "active"}} for i in range(count)]


def test_a_worker_killed_mid_post_loses_nothing(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, SECRET)
    with Webhook(delay=0.3) as hook:
        configure(workspace, hook.url)
        ingest_batch(workspace.engine, level_events(30))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        worker = subprocess.Popen([*QUNFLOW, "sync", "run", "--workspace", str(workspace.home)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(hook.raw) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        time.sleep(hook.delay + 0.3)  # a post that reached the hook before the kill is noted after its delay
        assert 3 <= len(hook.raw) < 30
        before_kill = {json.loads(raw)["id"] for raw in hook.raw}
        hook.delay = 0.0

        restarted = open_workspace(workspace.home)  # reads the subscription from qunflow.toml
        later = utc_now() + LEASE + timedelta(seconds=1)  # the killed post's lease has run out
        restarted.clock = lambda: later
        for _ in range(30):
            if not list_deliveries(restarted, "pending") + list_deliveries(restarted, "posting"):
                break
            sync_round(restarted)
        seen = Counter(json.loads(raw)["id"] for raw in hook.raw)
        assert set(seen) == {f"lv-{i}" for i in range(30)}
        # a repeat only of what was posted before the kill (its outcome not yet written), never a third time
        repeats = {event_id for event_id, n in seen.items() if n > 1}
        assert repeats <= before_kill and max(seen.values()) <= 2
        for raw, headers in zip(hook.raw, hook.headers, strict=True):
            assert verify(SECRET, headers["x-qunflow-timestamp"], raw, headers["x-qunflow-signature"], time.time())
            assert headers["x-qunflow-event-id"] == json.loads(raw)["id"]
        assert len(list_deliveries(restarted, "sent")) == 30
        restarted.close()


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws.home)], env={"COLUMNS": "200", ENV: SECRET})


def test_sync_list_shows_dead_letters_and_sync_retry_delivers(workspace: Workspace) -> None:
    with Webhook([500]) as hook:
        configure(workspace, hook.url, attempts=1)
        ingest_batch(workspace.engine, level_events(1))
        assert invoke(workspace, "sync", "run").exit_code == 0
        listed = invoke(workspace, "sync", "list")
        assert listed.exit_code == 0, listed.output
        assert "crm: pending 0, posting 0, sent 0, dead 1" in listed.output and "lv-0" in listed.output
        assert "answered 500" in listed.output
        as_json = json.loads(invoke(workspace, "sync", "list", "--format", "json").output)
        [dead] = as_json["deliveries"]
        assert as_json["counts"]["crm"]["dead"] == 1 and dead["event_id"] == "lv-0"

        missing = invoke(workspace, "sync", "retry", "99999")
        assert missing.exit_code == 2 and "not sync dead letters" in missing.output
        assert invoke(workspace, "sync", "retry").exit_code == 2
        assert invoke(workspace, "sync", "list", "--status", "lost").exit_code == 2
        retried = invoke(workspace, "sync", "retry", str(dead["id"]))
        assert retried.exit_code == 0 and "1 back in line" in retried.output
        ran = invoke(workspace, "sync", "run")
        assert "sent 1" in ran.output and hook.statuses == [500, 200]
        assert "dead 0" in invoke(workspace, "sync", "list").output


def test_a_bad_subscription_is_refused_with_what_to_fix(workspace: Workspace, tmp_path: Path) -> None:
    with (workspace.home / "qunflow.toml").open("a", encoding="utf-8") as file:
        file.write('\n[qunflow.sync.crm]\nurl = "https://crm.example.com/hook"\nevents = ["member_left"]\n'
                   'secret_env = "CRM_SECRET"\n')
    result = invoke(workspace, "sync", "list")
    assert result.exit_code == 2 and "unknown event 'member_left'" in result.output
