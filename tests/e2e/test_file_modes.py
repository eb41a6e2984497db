"""The workspace's files hold personal data and secrets: on a fresh `qunflow init` and `qunflow demo`, the
folder is 0700 and the databases (with their -wal/-shm), the analytics store, the settings and the secret
are 0600, also those made later by `qunflow serve`; an older workspace is tightened when opened."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx

from qunflow.workspace import init_workspace, open_workspace
from tests.serve_process import QUNFLOW, ServeProcess


def qunflow(*args: str) -> None:
    subprocess.run([*QUNFLOW, *args], check=True, capture_output=True, env={**os.environ, "COLUMNS": "200"},
                   stdin=subprocess.DEVNULL, timeout=300)


def modes(home: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}


def assert_private(home: Path) -> None:
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    found = modes(home)
    for name, mode in found.items():
        if not name.startswith(".qunflow-demo"):  # the demo's marker says nothing about anyone
            assert mode == (0o700 if (home / name).is_dir() else 0o600), (name, oct(mode), found)


def test_a_new_workspace_and_what_serve_adds_are_private(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    qunflow("init", str(home))
    assert {"qunflow.toml", ".qunflow-secret", "qunflow.db"} <= set(modes(home))
    assert_private(home)
    with ServeProcess(home, log=tmp_path / "serve.log") as server:  # the sandbox and analytics files appear
        httpx.get(f"{server.url}/api/v1/metrics")
        httpx.get(f"{server.url}/console")
        httpx.post(f"{server.url}/hooks/sandbox", json={})
        assert_private(home)
    assert any(name.startswith("sandbox.db") for name in modes(home))
    assert_private(home)


def test_the_demo_workspace_is_private(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    qunflow("demo", "--workspace", str(home), "--days", "7", "--no-automate", "--no-serve")
    assert {"qunflow.db", "sandbox.db", "analytics.duckdb"} <= set(modes(home))
    assert_private(home)


def test_an_older_workspace_is_made_private_when_opened(tmp_path: Path) -> None:
    home = tmp_path / "old"
    init_workspace(home).close()
    home.chmod(0o755)
    for path in home.iterdir():
        path.chmod(0o644)
    open_workspace(home).close()
    assert_private(home)
