"""A computation into a scratch (TEMPORARY) table holds no write lock on the state database: on SQLite another
connection writes meanwhile (the levels job at a million members must not stall the webhook path)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import text

from qunflow.domain.events import Event
from qunflow.store.db import scratch_only
from qunflow.store.eventlog import append_events
from qunflow.workspace import Workspace


def write_meanwhile(ws: Workspace) -> threading.Thread:
    def write() -> None:
        with ws.engine.begin() as conn:
            append_events(conn, [Event(event_id="meanwhile", type="landing_view",
                                       ts=datetime(2026, 12, 1, tzinfo=UTC), visitor_id="v1")])

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    thread.join(5)
    return thread


def test_a_scratch_table_transaction_lets_other_writers_through(any_workspace: Workspace) -> None:
    ws = any_workspace
    with ws.engine.connect() as conn:
        with scratch_only(conn), conn.begin():
            conn.execute(text("CREATE TEMPORARY TABLE qf_scratch_test (n INTEGER)"))
            conn.execute(text("INSERT INTO qf_scratch_test SELECT 1"))
            other = write_meanwhile(ws)  # while this transaction is still open
            assert not other.is_alive(), "a writer waited for a transaction that wrote only its scratch table"
        with ws.engine.connect() as check:
            assert check.execute(text("SELECT count(*) FROM events WHERE event_id = 'meanwhile'")).scalar() == 1


def test_without_it_a_write_transaction_keeps_other_writers_waiting(workspace: Workspace) -> None:
    """The control: the same shape with a real write holds SQLite's one writer until the commit."""
    ws = workspace
    with ws.engine.connect() as conn, conn.begin():
        append_events(conn, [Event(event_id="first", type="landing_view", ts=datetime(2026, 12, 1, tzinfo=UTC),
                                   visitor_id="v0")])
        other = write_meanwhile(ws)
        assert other.is_alive()
    other.join(15)
    assert not other.is_alive()
