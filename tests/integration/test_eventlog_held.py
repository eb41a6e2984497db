"""An inbound update's events on PostgreSQL: held back and written just before each commit, so the event lock
(store/eventlog.py) covers that INSERT and the COMMIT only, and seq order still equals commit order."""

from __future__ import annotations

import random
import time

from sqlalchemy import create_engine, text

from qunflow.domain.events import Event
from qunflow.services.join import _in_group
from qunflow.store.db import commit_update, transaction, update_transaction
from qunflow.store.eventlog import EVENT_LOCK_KEY, append_events, count_events
from qunflow.workspace import Workspace
from tests.integration.test_eventlog import (
    T0,
    assert_no_row_lands_below_a_seen_seq,
    make,
    stored_ids_in_seq_order,
)


def lock_is_free(ws: Workspace) -> bool:
    """Whether another process could take the event lock now (it gives it back at once). Not through the
    workspace's engine, whose next connection inside an update commits the update first."""
    other = create_engine(ws.engine.url)
    try:
        with other.connect() as conn:
            return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": EVENT_LOCK_KEY}).scalar())
    finally:
        other.dispose()


def test_an_updates_events_take_the_lock_only_when_written_at_its_commit(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    with update_transaction(ws.engine) as tx:
        with transaction(ws.engine) as conn:
            append_events(conn, make(["a1", "a2"]))
        assert lock_is_free(ws), "the lock waits for the commit"
        assert count_events(conn) == 2, "the update reads its own events"  # written first, so the lock is taken
        assert not lock_is_free(ws)
        with transaction(ws.engine) as conn:
            append_events(conn, make(["a3"]))
        commit_update()
        assert lock_is_free(ws)
        with transaction(ws.engine) as conn:
            append_events(conn, make(["a4"], channel="ads"))  # a batch with other columns
        tx.end(lambda _conn: None)
    assert stored_ids_in_seq_order(ws) == ["a1", "a2", "a3", "a4"]
    with ws.engine.connect() as conn:
        assert conn.execute(text("SELECT channel FROM events WHERE event_id = 'a4'")).scalar() == "ads"


def test_whether_a_member_is_in_a_group_is_read_without_writing_events_it_cannot_see(
        pg_workspace: Workspace) -> None:
    """The approval asks whether the member is in the group after the welcome DM's result was recorded with its
    event: that event stays held (the lock waits for the commit); a held join or leave of the member is written
    first, so the update still reads its own."""
    ws = pg_workspace
    move = [Event(event_id="j1", type="joined", ts=T0, member_id="m1", group="g1")]
    with update_transaction(ws.engine) as tx:
        with transaction(ws.engine) as conn:
            append_events(conn, [Event(event_id="w1", type="welcome_sent", ts=T0, member_id="m1", group="g1")])
            assert not _in_group(conn, "m1", "g1")
        assert lock_is_free(ws), "the welcome's event is still held"
        with transaction(ws.engine) as conn:
            append_events(conn, move)
            assert _in_group(conn, "m1", "g1")  # written first: the update reads its own join
        assert not lock_is_free(ws)
        tx.end(lambda _conn: None)
    assert stored_ids_in_seq_order(ws) == ["w1", "j1"]


def test_held_events_are_written_in_order_in_one_statement(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    with update_transaction(ws.engine) as tx:
        with transaction(ws.engine) as conn:
            append_events(conn, make(["b2", "b1"]))
            append_events(conn, make(["b3"], channel="ads", properties={"k": 1}))
            append_events(conn, make(["b1", "b0"]))  # a repeated id: stored once, at its first place
        tx.end(lambda _conn: None)
    assert stored_ids_in_seq_order(ws) == ["b2", "b1", "b3", "b0"]


def test_a_rolled_back_update_leaves_none_of_its_held_events(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    with update_transaction(ws.engine) as tx:
        with transaction(ws.engine) as conn:
            append_events(conn, make(["r1"]))
        conn.rollback()  # as retry_busy does before running the update again
        with transaction(ws.engine) as conn:
            append_events(conn, make(["r2"]))
        tx.end(lambda _conn: None)
    with update_transaction(ws.engine), transaction(ws.engine) as conn:
        append_events(conn, make(["r3"]))
        # never committed: the update failed
    assert stored_ids_in_seq_order(ws) == ["r2"]


def test_a_rollback_to_a_savepoint_keeps_the_events_held_before_it(pg_workspace: Workspace) -> None:
    ws = pg_workspace
    with update_transaction(ws.engine) as tx:
        with transaction(ws.engine) as conn:
            append_events(conn, make(["s1"]))
            savepoint = conn.begin_nested()
            append_events(conn, make(["s2"]))  # inside the savepoint: written at once, taken back with it
            savepoint.rollback()
        tx.end(lambda _conn: None)
    assert stored_ids_in_seq_order(ws) == ["s1"]


def test_seq_order_equals_commit_order_for_updates_in_many_connections(pg_workspace: Workspace) -> None:
    """Updates hold their events while they do other work (here: sleep), then write them at each commit. A
    reader polling like the shipper (rows above its watermark) never sees a row appear below a seq it has
    seen."""
    ws = pg_workspace

    def writer(name: str) -> None:
        size = 1 + int(name[1:]) * 100  # from 1 to 301 events: without the lock, a small commit overtakes a large one
        for batch in range(20):
            with update_transaction(ws.engine) as tx:
                with transaction(ws.engine) as conn:
                    append_events(conn, make([f"{name}-{batch}-{i}" for i in range(size)]))
                time.sleep(random.random() / 200)  # the welcome's rendering, the update's other writes
                with transaction(ws.engine) as conn:
                    append_events(conn, make([f"{name}-{batch}-late"]))
                commit_update()  # its next commit is synced: committed, then the log synced after the lock
                time.sleep(random.random() / 500)
                with transaction(ws.engine) as conn:
                    append_events(conn, make([f"{name}-{batch}-sent"]))
                tx.end(lambda _conn: None)

    assert_no_row_lands_below_a_seen_seq(ws, writer)
    assert len(stored_ids_in_seq_order(ws)) == 20 * (1 + 101 + 201 + 301 + 4 * 2)
