"""`qunflow metrics` and GET /api/v1/metrics on a ClickHouse server, configured by environment as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from qunflow.workspace import Workspace
from tests.clickhouse_http import ClickHouseHTTPServer
from tests.conftest import LiveServer, use_clickhouse
from tests.integration.test_metrics_exact import SCENARIO

pytest.importorskip("chdb", reason="the ClickHouse server tests need chdb: pip install -e '.[test]'")
QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]
METRICS = ["metrics", "--from", "2026-03-01", "--to", "2026-03-31", "--as-of", "2026-04-30", "--by", "channel",
           "--format", "json"]


def qunflow(ws: Workspace, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QUNFLOW, *args, "--workspace", str(ws.home)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def test_metrics_cli_on_a_clickhouse_server_matches_duckdb(workspace: Workspace, tmp_path: Path,
                                                            clickhouse_server: ClickHouseHTTPServer) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in SCENARIO))
    assert qunflow(workspace, "events", "import", str(events)).returncode == 0
    server_env = {"QUNFLOW_ANALYTICS_ENGINE": "clickhouse", "QUNFLOW_CLICKHOUSE_URL": clickhouse_server.fresh_url()}
    on_server = qunflow(workspace, *METRICS, **server_env)
    assert on_server.returncode == 0, on_server.stderr
    on_duckdb = qunflow(workspace, *METRICS, QUNFLOW_ANALYTICS_ENGINE="duckdb")
    assert json.loads(on_server.stdout) == json.loads(on_duckdb.stdout)
    assert {r["channel"] for r in json.loads(on_server.stdout)["rows"]} == {"ads", "content"}


def test_metrics_cli_with_a_wrong_password_prints_one_line_and_exits_2(
        workspace: Workspace, clickhouse_server: ClickHouseHTTPServer) -> None:
    url = clickhouse_server.url(database="qf_cli", password="not-the-password")
    result = qunflow(workspace, *METRICS, QUNFLOW_ANALYTICS_ENGINE="clickhouse", QUNFLOW_CLICKHOUSE_URL=url)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "refused user 'default'" in result.stderr
    assert "not-the-password" not in result.stderr


def test_metrics_api_answers_503_while_the_server_is_down(workspace: Workspace, api_token: str,
                                                           tmp_path: Path) -> None:
    server = ClickHouseHTTPServer(tmp_path / "ch", password="pw-down").start()
    use_clickhouse(workspace, server.fresh_url())
    server.stop()
    with LiveServer(workspace) as app, httpx.Client(base_url=app.url,
                                                    headers={"authorization": f"Bearer {api_token}"}) as client:
        answer = client.get("/api/v1/metrics", params={"from": "2026-03-01", "to": "2026-03-31"})
    assert answer.status_code == 503
    assert "is unreachable: Connection refused" in answer.json()["error"]
    assert "pw-down" not in answer.text
