"""Acknowledged joins survive a crash of PostgreSQL itself, not only of qunflow.

qunflow commits most of a join without waiting for the disk (synchronous_commit off) and makes it durable with one
synced commit before the platform is answered (store/postgres.py commit_synced). This runs a PostgreSQL of its own
(initdb in a temporary directory), whose WAL writer flushes only every 10 s, so an unsynced commit stays in
PostgreSQL's memory meanwhile; one backend killed with SIGKILL makes the server drop its shared memory and recover
from the log on disk. Every join the sandbox saw acknowledged must be there afterwards. A control write committed
unsynced just before the crash must be gone, which shows the crash did lose what was not on disk."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from qunflow.services.join import submit_gate
from qunflow.workspace import init_workspace
from tests.conftest import DATABASE_ENV, free_port
from tests.integration.test_join_flow import FORM, invite_token, setup_community
from tests.integration.test_recovery import joined_events

pytestmark = pytest.mark.postgres
JOINS = 6
TRIES = 3  # a crash the WAL writer's 10 s cycle happened to precede loses nothing: the scenario runs again


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return (found if isinstance(found, str) else found[-1]) if found else None


class Server:
    """A PostgreSQL server of the test's own, run as the `postgres` user when the test runs as root."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.pg_ctl = pg_ctl
        self.home = Path(tempfile.mkdtemp(prefix="qf-pgcrash-"))
        self.data, self.port = self.home / "data", free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.skip("a PostgreSQL of the test's own needs `runuser` when run as root")
            shutil.chown(self.home, "postgres")
            self.as_user = [runuser, "-u", "postgres", "--"]
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = (f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=on "
                   "-c wal_writer_delay=10s -c checkpoint_timeout=1h")
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.home / "log"), "-o", options, "-w", "start")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, timeout=120)

    def crash(self) -> None:
        """SIGKILL one backend: the postmaster ends every other one at once and recovers from the log on disk."""
        admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            os.kill(pid, signal.SIGKILL)
        admin.dispose()
        for _ in range(300):
            try:
                with create_engine(self.url).connect() as conn:
                    if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one():
                        return
            except OperationalError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"PostgreSQL did not come back: {(self.home / 'log').read_text()[-2000:]}")

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def server(pg_url: str) -> Iterator[Server]:  # pg_url: skipped with its reason where PostgreSQL tests are
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("a PostgreSQL of the test's own needs initdb and pg_ctl (the postgresql server package)")
    started = Server(initdb, pg_ctl)
    yield started
    started.stop()


def test_every_acknowledged_join_survives_a_crash_of_postgresql(server: Server, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for attempt in range(TRIES):
        database = f"qf_crash_{attempt}"
        admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {database}"))
        admin.dispose()
        url = server.url.rsplit("/", 1)[0] + f"/{database}"
        monkeypatch.setenv(DATABASE_ENV, url)
        ws = init_workspace(tmp_path / f"ws{attempt}")
        setup_community(ws, core_capacity=JOINS + 1)
        control = create_engine(url)
        with control.begin() as conn:
            conn.execute(text("CREATE TABLE crash_control (n int)"))  # synced: the server's default
        acknowledged = []
        for n in range(JOINS):
            passed = submit_gate(ws, "xhs-note-1", f"v{n}", FORM)
            assert ws.sandbox.join(f"u{n}", f"Person {n}", invite_token(passed.invite_url)) == "joined"
            acknowledged.append(passed.member_id)
        assert ws.sandbox.unacknowledged() == 0
        with control.begin() as conn:  # committed, not on disk: it waits for the WAL writer's next cycle
            conn.execute(text("SET LOCAL synchronous_commit TO off"))
            conn.execute(text("INSERT INTO crash_control VALUES (1)"))
        control.dispose()
        server.crash()
        ws.engine.dispose()  # its connections died with the server
        with create_engine(url).connect() as conn:
            lost_control = conn.execute(text("SELECT count(*) FROM crash_control")).scalar_one() == 0
        survived = joined_events(ws)
        ws.close()
        assert all(survived[member] == 1 for member in acknowledged), (survived, acknowledged)
        if lost_control:
            return
    pytest.fail(f"in {TRIES} crashes the unsynced control write always survived: the crash lost nothing")
