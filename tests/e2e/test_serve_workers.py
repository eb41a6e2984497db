"""`qunflow serve --workers N`: several web processes behind one port on PostgreSQL, the background loops in
the parent only; refused on SQLite with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from qunflow.services.tokens import create_token
from qunflow.store.tables import events
from qunflow.workspace import init_workspace, open_workspace
from tests.serve_process import QUNFLOW, ServeProcess


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def wait_for(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    init_workspace(home).close()
    result = subprocess.run([*QUNFLOW, "serve", "--workspace", str(home), "--workers", "2"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "QUNFLOW_LANG": "en"})
    assert result.returncode == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_share_one_port_and_keep_every_event(tmp_path: Path, pg_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNFLOW_DATABASE_URL", pg_url)
    home = tmp_path / "ws"
    ws = init_workspace(home)
    token = create_token(ws.engine, "shop", ["events:write"])
    ws.close()
    with ServeProcess(home, args=("--workers", "2")) as server:
        assert server.process is not None
        assert wait_for(lambda: len(children(server.process.pid)) >= 2, 30), server.log()[-2000:]
        workers = children(server.process.pid)

        def post(i: int) -> int:
            body = {"events": [{"event_id": f"o-{i}", "type": "landing_view", "ts": "2026-12-01T08:00:00+00:00",
                                "visitor_id": f"v{i}"}]}
            return httpx.post(f"{server.url}/api/v1/events", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {token}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(200)))
        assert set(answers) == {202} or set(answers) == {200}, answers
        # one worker killed: the other keeps answering, and uvicorn starts a new one in its place
        os.kill(workers[0], signal.SIGKILL)
        assert all(httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200 for _ in range(20))
        assert wait_for(lambda: len([p for p in children(server.process.pid) if p != workers[0]]) >= 2, 30)
    ws = open_workspace(home)
    try:
        with ws.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(events)
                                  .where(events.c.type == "landing_view")).scalar()
        assert stored == 200  # every acknowledged event, whichever process took it
    finally:
        ws.close()
