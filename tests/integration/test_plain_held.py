"""A write held back for the update's commit (store/plain.py write_plain's `hold`): on PostgreSQL inside an inbound
update it waits for the COMMIT's one query, yet the update reads it back, and a rollback drops it; elsewhere it is
written at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from qunflow.store.db import transaction, update_transaction
from qunflow.store.eventlog import utcnow
from qunflow.store.plain import insert_ignore, read_scalar
from qunflow.store.tables import inbound_updates
from qunflow.workspace import Workspace

_KEY = select(inbound_updates.c.key).where(inbound_updates.c.platform == "sandbox")


def marks(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        return list(conn.execute(_KEY).scalars())


def mark(ws: Workspace, key: str) -> None:
    with transaction(ws.engine) as conn:
        insert_ignore(conn, inbound_updates, [{"platform": "sandbox", "key": key, "status": "done",
                                               "received_at": utcnow()}], hold=True)


def test_a_held_write_is_read_back_by_its_update_and_committed_with_it(any_workspace: Workspace) -> None:
    ws = any_workspace
    with update_transaction(ws.engine) as tx:
        mark(ws, "u1")
        assert ("inbound_updates" in tx.held) == (ws.engine.dialect.name == "postgresql")  # not sent yet
        assert read_scalar(tx.connection(), _KEY, {}) == "u1"  # a read of its table runs it first
        assert "inbound_updates" not in tx.held
        mark(ws, "u2")
        tx.end(lambda _conn: None)
    assert sorted(marks(ws)) == ["u1", "u2"]


def test_a_held_write_is_dropped_with_its_updates_rollback(any_workspace: Workspace) -> None:
    ws = any_workspace
    with pytest.raises(RuntimeError), update_transaction(ws.engine):
        mark(ws, "u1")
        raise RuntimeError("the update failed")
    assert marks(ws) == []
    mark(ws, "u3")  # outside an update: written and committed at once
    assert marks(ws) == ["u3"]


def test_a_transaction_of_held_writes_only_that_fails_leaves_its_connection_as_it_was(pg_workspace: Workspace) -> None:
    """Its BEGIN went in its commit's query, in autocommit (store/db.py _run_alone): after the failure the
    connection is out of autocommit and idle again, and the next update goes as usual."""
    ws = pg_workspace
    with pytest.raises(IntegrityError), update_transaction(ws.engine) as tx:
        driver = tx.connection().connection.driver_connection
        with transaction(ws.engine) as conn:  # a key may not be NULL: refused at the commit
            insert_ignore(conn, inbound_updates, [{"platform": "sandbox", "key": None, "status": "done",
                                                   "received_at": utcnow()}], hold=True)
        tx.end(lambda _conn: None)
    assert driver.autocommit is False and driver.info.transaction_status == 0
    with update_transaction(ws.engine) as tx:
        mark(ws, "u4")
        tx.end(lambda _conn: None)
    assert marks(ws) == ["u4"]
