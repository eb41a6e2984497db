"""SQLite's writers queue on this process's writer lock (store.db._one_writer_at_a_time) until the previous
writer's COMMIT has run, not merely until SQLAlchemy announced it: a writer let through earlier meets the
commit still running and sleeps in SQLite's busy handler while holding the lock, and every writer behind it
waits too (seen as 0.4 s stalls at 100 joins/s in bench/bench_connectors.py)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from qunflow.domain.events import Event
from qunflow.store.eventlog import append_events
from qunflow.workspace import Workspace


def event(event_id: str) -> list[Event]:
    return [Event(event_id=event_id, type="landing_view", ts=datetime(2026, 12, 1, tzinfo=UTC), visitor_id="v")]


def test_the_next_writer_starts_only_after_the_commit_ran(workspace: Workspace) -> None:
    ws = workspace
    order: list[str] = []
    other: list[threading.Thread] = []

    def write_meanwhile() -> None:
        with ws.engine.connect() as conn:
            conn.connection.driver_connection.set_trace_callback(  # type: ignore[union-attr]
                lambda sql: order.append("other writes") if sql.lstrip().upper().startswith("INSERT") else None)
            with conn.begin():
                append_events(conn, event("second"))
            conn.connection.driver_connection.set_trace_callback(None)  # type: ignore[union-attr]

    def traced(sql: str) -> None:
        if sql.strip().upper() == "COMMIT" and not other:  # SQLite is about to run the first writer's COMMIT
            order.append("commit starts")
            thread = threading.Thread(target=write_meanwhile, daemon=True)
            other.append(thread)
            thread.start()
            time.sleep(0.3)  # time enough for the other writer to start, were it let through
            order.append("commit runs")

    with ws.engine.connect() as conn:
        driver = conn.connection.driver_connection
        with conn.begin():
            append_events(conn, event("first"))
            driver.set_trace_callback(traced)  # type: ignore[union-attr]
        driver.set_trace_callback(None)  # type: ignore[union-attr]
    other[0].join(15)
    assert not other[0].is_alive()
    assert order == ["commit starts", "commit runs", "other writes"], order
