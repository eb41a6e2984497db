"""PostgreSQL plumbing that saves round trips (store/postgres.py) keeps its promises, seen on the server itself:
- each commit is made at its promised level: as the server sees it at the COMMIT (a deferred trigger reads
  synchronous_commit), and for a synced one in the write-ahead log, on disk past the commit once it returns;
- a pooled connection that PostgreSQL ended (a restart, pg_terminate_backend) does not fail the next request,
  though connections are no longer pinged at every checkout.
The send limiter's fewer statements: tests/integration/test_shared_limits.py."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

from qunflow.services.join import submit_gate
from qunflow.store.db import commit_update, transaction, update_transaction
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_ignore
from qunflow.store.tables import inbound_updates
from qunflow.workspace import Workspace
from tests.integration.test_eventlog import make
from tests.integration.test_join_flow import FORM, invite_token, setup_community
from tests.integration.test_recovery import joined_events
from tests.integration.test_update_durability import note_commit_levels

pytestmark = pytest.mark.postgres
TRIES = 5


def log_written(conn: Connection) -> str:
    """Where the log ends now: past everything this transaction wrote so far."""
    return str(conn.exec_driver_sql("SELECT pg_current_wal_insert_lsn()").scalar())


def on_disk(observer: Engine, lsn: str) -> bool:
    """The log is on disk past `lsn` (read on an engine of its own, as another process would)."""
    with observer.connect() as conn:
        return bool(conn.execute(text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)"),
                                 {"lsn": lsn}).scalar())


def mark(key: str, seen: list[str]) -> Callable[[Connection], None]:
    """A handled mark as inbound.dispatch writes it, noting where the log ended after it."""

    def write(conn: Connection) -> None:
        insert_ignore(conn, inbound_updates, [{"platform": "test", "key": key, "status": "done",
                                               "received_at": datetime(2026, 12, 1)}])
        seen.append(log_written(conn))

    return write


def test_an_updates_commits_before_platform_calls_wait_for_no_disk_and_its_last_reaches_it(
        pg_workspace: Workspace) -> None:
    """Each COMMIT carries its level, so unlike SQLite's (whose level is the connection's, set before the
    transaction begins) an update's second commit waits for no disk either: only the last one does. That one
    carries held events: committed unsynced under the event lock, then a synced commit of its own, which must
    write a log record: one that only takes a transaction id writes none, and PostgreSQL commits it without
    waiting for the disk whatever synchronous_commit says."""
    ws = pg_workspace
    with ws.engine.begin() as conn:
        for statement in note_commit_levels("inbound_updates"):
            conn.exec_driver_sql(statement)
    observer = create_engine(ws.engine.url)
    last_on_disk = []
    for n in range(TRIES):
        written: list[str] = []
        with update_transaction(ws.engine) as tx:
            with transaction(ws.engine) as conn:
                append_events(conn, make([f"send-{n}"]))  # held until the commit
                mark(f"send-{n}", written)(conn)
            commit_update()  # before the DM
            with transaction(ws.engine) as conn:
                mark(f"result-{n}", written)(conn)  # no event: a plain COMMIT
            commit_update()  # before the approval
            with transaction(ws.engine) as conn:
                append_events(conn, make([f"handled-{n}"]))
            tx.end(mark(f"handled-{n}", written))
        last_on_disk.append(on_disk(observer, written[-1]))
    observer.dispose()
    with ws.engine.connect() as conn:
        levels = dict(conn.exec_driver_sql("SELECT key, level FROM qf_commit_levels").all())
    # the handled mark's own commit too: the commit after it, of its own, is the synced one
    assert levels == {f"{step}-{n}": "off" for n in range(TRIES) for step in ("send", "result", "handled")}
    assert all(last_on_disk), last_on_disk


def test_a_commit_outside_an_update_is_synced(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    observer = create_engine(ws.engine.url)
    for n in range(TRIES):
        written: list[str] = []
        with ws.engine.begin() as conn:
            mark(f"plain-{n}", written)(conn)
        assert on_disk(observer, written[-1])
    observer.dispose()


def test_a_join_right_after_postgresql_ended_every_connection_is_handled(pg_workspace: Workspace) -> None:
    """The pool pings a connection only when it sat idle for a while or the server spoke to it meanwhile: a
    terminated backend says so (FATAL 57P01) before closing the socket, as a restart does to every backend."""
    ws = pg_workspace
    setup_community(ws, core_capacity=10)
    first = submit_gate(ws, "xhs-note-1", "v1", FORM)
    assert ws.sandbox.join("u1", "Li Lei", invite_token(first.invite_url)) == "joined"
    admin = create_engine(ws.engine.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        others = "datname = current_database() AND pid <> pg_backend_pid()"
        assert conn.execute(text(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")).scalar()
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}"))
        for _ in range(100):
            if not conn.execute(text(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")).scalar():
                break
            time.sleep(0.02)
    admin.dispose()
    second = submit_gate(ws, "xhs-note-1", "v2", FORM)
    assert ws.sandbox.join("u2", "Han Meimei", invite_token(second.invite_url)) == "joined"
    assert joined_events(ws) == Counter({first.member_id: 1, second.member_id: 1})
    assert ws.sandbox.unacknowledged() == 0
