"""SIGKILL during ingestion: every acknowledged event survives, none is stored twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from qunflow.services.tokens import create_token
from qunflow.store import event_indexes
from qunflow.store.tables import events
from qunflow.workspace import init_workspace, open_workspace
from tests.conftest import free_port

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]
BATCH = 500


class Server:
    """`qunflow serve` as its own process, as an operator runs it."""

    def __init__(self, home: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([*QUNFLOW, "serve", "--port", str(port), "--workspace", str(home)],
                                        env=dict(os.environ), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.process.kill()
        raise RuntimeError(f"qunflow serve did not start: {self.process.communicate()[1].decode()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def batch_ids(number: int) -> list[str]:
    return [f"k{number}-{i}" for i in range(BATCH)]


def body(ids: list[str]) -> list[dict[str, str]]:
    return [{"event_id": i, "type": "message", "ts": "2026-03-01T00:00:00Z", "member_id": f"m{n % 50}"}
            for n, i in enumerate(ids)]


class Client(threading.Thread):
    """Posts batches until the server goes away; remembers exactly the batches answered 200."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.acknowledged: list[str] = []
        self.connection_lost = False

    def run(self) -> None:
        headers = {"authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=20) as http:
            for number in range(2_000):  # far more than fits in the test's time: the kill ends it
                ids = batch_ids(number)
                try:
                    response = http.post("/api/v1/events", json=body(ids))
                except httpx.HTTPError:
                    self.connection_lost = True  # killed mid-request: this batch was never acknowledged
                    return
                if response.status_code == 200:
                    self.acknowledged.extend(ids)


def stored_ids(home: Path) -> tuple[set[str], int]:
    ws = open_workspace(home)
    try:
        with ws.engine.connect() as conn:
            ids = set(conn.execute(select(events.c.event_id)).scalars())
            total = int(conn.execute(select(func.count()).select_from(events)).scalar_one())
    finally:
        ws.close()
    return ids, total


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "ws"


def kill_during_ingest(home: Path) -> None:
    ws = init_workspace(home)
    token = create_token(ws.engine, "shop", ["events:write"])
    ws.close()
    port = free_port()
    server = Server(home, port)
    client = Client(server.url, token)
    client.start()
    deadline = time.monotonic() + 60
    while len(client.acknowledged) < 10 * BATCH and client.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    server.stop(signal.SIGKILL)
    client.join(30)
    assert len(client.acknowledged) >= 10 * BATCH, "the client never got going"
    assert client.connection_lost, "the server was not killed in the middle of ingestion"

    restarted = Server(home, port)  # the workspace opens cleanly after the kill
    try:
        have, total = stored_ids(home)
        assert set(client.acknowledged) <= have, "an acknowledged event was lost"
        assert total == len(have), "an event was stored twice"
        response = httpx.post(f"{restarted.url}/api/v1/events", json=body(client.acknowledged[-BATCH:]),
                              headers={"authorization": f"Bearer {token}"}, timeout=20)
        assert response.json()["duplicates"] == BATCH  # the client's retry of its last batch is a no-op
    finally:
        restarted.stop()


def test_sigkill_loses_no_acknowledged_event_on_sqlite(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUNFLOW_DATABASE_URL", raising=False)
    kill_during_ingest(home)


@pytest.mark.postgres
def test_sigkill_loses_no_acknowledged_event_on_postgres(home: Path, pg_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUNFLOW_DATABASE_URL", pg_url)  # for this process and the server's
    kill_during_ingest(home)


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody has reaped yet (a container's init may not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _reader_of(pid: int) -> int | None:
    """The import's reader process (a child), if it has started."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"fileimport import _reader" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    return None


def test_a_killed_import_keeps_its_committed_chunks_and_leaves_no_reader_behind(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUNFLOW_DATABASE_URL", raising=False)
    init_workspace(home).close()
    rows, chunk = 150_000, 50_000  # three chunks, and a file large enough (> 16 MiB) to be read in a second process
    path = tmp_path / "events.jsonl"
    note = "x" * 60
    path.write_text("".join(f'{{"event_id": "f{i}", "type": "message", "ts": "2026-03-01T00:00:00Z", '
                            f'"member_id": "m{i % 997}", "properties": {{"note": "{note}"}}}}\n'
                            for i in range(rows)), encoding="utf-8")
    assert path.stat().st_size >= 16 * 1024 * 1024
    process = subprocess.Popen([*QUNFLOW, "events", "import", str(path), "--workspace", str(home),
                                "--rows-per-commit", str(chunk)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reader, stored = None, 0
    deadline = time.monotonic() + 60
    while (reader is None or not stored) and process.poll() is None and time.monotonic() < deadline:
        reader = reader or _reader_of(process.pid)
        stored = len(stored_ids(home)[0])
        time.sleep(0.02)
    process.kill()
    process.wait(10)
    assert reader is not None and 0 < stored < rows, f"not killed in the middle: {process.stderr.read()!r}"  # type: ignore[union-attr]
    deadline = time.monotonic() + 15
    while not _gone(reader) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(reader), "the reader process outlived the killed import"

    have, total = stored_ids(home)
    assert total == len(have) and len(have) % chunk == 0  # whole chunks: each one committed or not at all
    again = subprocess.run([*QUNFLOW, "events", "import", str(path), "--workspace", str(home)],
                           capture_output=True, text=True, timeout=120, check=True)
    assert f"{rows - len(have)} stored, {len(have)} already present" in again.stdout
    assert len(stored_ids(home)[0]) == rows
    with sqlite3.connect(home / "qunflow.db") as db:  # a bulk import's indexes, dropped by the killed one
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'events'")}
    assert names.issuperset(event_indexes.DEFERRED)
