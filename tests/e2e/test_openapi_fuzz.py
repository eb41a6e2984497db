"""schemathesis against the OpenAPI schema of a real `qunflow serve`, with a valid token, over a workspace
with a week of simulated community (members, inbox items, coupons, rewards, dead letters): no server
error, no response that breaks the schema, no status code the schema does not list, no malformed request
accepted. A bounded budget (QUNFLOW_TEST_EXAMPLES scales it); the seed is fixed so CI is repeatable
(QUNFLOW_FUZZ_SEED picks another)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qunflow.domain.access import TOKEN_SCOPES
from qunflow.services.tokens import create_token
from qunflow.sim.demo import Simulation
from qunflow.workspace import init_workspace
from tests.examples import examples
from tests.serve_process import ServeProcess

pytest.importorskip("schemathesis", reason="the OpenAPI fuzz test needs schemathesis: pip install -e '.[test]'")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def demo_workspace(home: Path) -> str:
    """A workspace with a simulated week of traffic (automation on), and an API token for it."""
    ws = init_workspace(home)
    try:
        Simulation(ws, days=7, seed=7, automate=True).run(lambda _day: None)
        return create_token(ws.engine, "fuzz", sorted(TOKEN_SCOPES))  # every route is tried
    finally:
        ws.close()


def test_the_api_holds_to_its_openapi_schema(tmp_path: Path) -> None:
    token = demo_workspace(tmp_path / "ws")
    with ServeProcess(tmp_path / "ws") as server:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
             f"{server.url}/openapi.json", "--header", f"Authorization: Bearer {token}",
             "--max-examples", str(examples(25)), "--seed", os.environ.get("QUNFLOW_FUZZ_SEED", "20261211"),
             # one worker: hypothesis describes its filters with ast.parse, which CPython 3.11 cannot run in
             # two threads at once ("AST constructor recursion depth mismatch", an error of the tool)
             "--workers", "1", "--no-shrink", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        server_log = server.log()
    report = run.stdout + run.stderr
    cases = re.search(r"(\d+) generated", report)
    print(f"schemathesis: {cases[1] if cases else '?'} test cases")  # shown with -s; the figure for the report
    assert run.returncode == 0, report[-6000:]
    assert cases and int(cases[1]) > 500, report[-2000:]
    assert "Traceback" not in server_log, server_log[-4000:]
