"""SIGKILL during ingestion: every acknowledged event survives, none is stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from qunflow.services.tokens import create_token
from qunflow.store.tables import events
from qunflow.workspace import init_workspace, open_workspace
from tests.conftest import free_port

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


def start_server(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*QUNFLOW, "serve", "--port", str(port), "--workspace", str(home)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def kill_during_ingest(tmp_path: Path, database_url: str | None) -> None:
    env = {**os.environ}
    if database_url:
        env["QUNFLOW_DATABASE_URL"] = database_url
        os.environ["QUNFLOW_DATABASE_URL"] = database_url
    try:
        ws = init_workspace(tmp_path / "ws")
        token = create_token(ws.engine, "killer")
        ws.close()
    finally:
        os.environ.pop("QUNFLOW_DATABASE_URL", None)
    port = free_port()
    server = start_server(tmp_path / "ws", port, env)
    acknowledged: list[str] = []
    stop = threading.Event()

    def client() -> None:
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as http:
            for batch in range(10_000):
                if stop.is_set():
                    return
                ids = [f"k{batch}-{i}" for i in range(500)]
                body = [{"event_id": i, "type": "message", "ts": "2026-03-01T00:00:00Z", "member_id": "m"}
                        for i in ids]
                try:
                    response = http.post("/api/v1/events", json=body)
                except httpx.HTTPError:
                    return  # the server died mid-request: this batch was never acknowledged
                if response.status_code == 200:
                    acknowledged.extend(ids)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 5_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.send_signal(signal.SIGKILL)
    server.wait(10)
    stop.set()
    thread.join(15)
    assert len(acknowledged) >= 5_000, "the client never got going"

    restarted = start_server(tmp_path / "ws", port, env)  # the workspace opens cleanly after the kill
    try:
        if database_url:
            os.environ["QUNFLOW_DATABASE_URL"] = database_url
        ws = open_workspace(tmp_path / "ws")
        with ws.engine.connect() as conn:
            have = set(conn.execute(select(events.c.event_id)).scalars())
            total = conn.execute(select(func.count()).select_from(events)).scalar_one()
        ws.close()
    finally:
        os.environ.pop("QUNFLOW_DATABASE_URL", None)
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(10)
    assert set(acknowledged) <= have
    assert total == len(have)  # nothing stored twice


def test_sigkill_loses_no_acknowledged_event_on_sqlite(tmp_path: Path) -> None:
    kill_during_ingest(tmp_path, None)


@pytest.mark.postgres
def test_sigkill_loses_no_acknowledged_event_on_postgres(tmp_path: Path, pg_url: str) -> None:
    kill_during_ingest(tmp_path, pg_url)
