"""PostgreSQL connection plumbing that saves round trips and client time: each commit's sync level travels with its
COMMIT, the synced commit after held writes is one statement, a pooled connection is pinged only when it may be
dead, and the statements run on the driver's cursor share one cursor per connection."""

from __future__ import annotations

import select
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

# A transaction's own level, set and committed in one simple-protocol query (one round trip, as a bare COMMIT).
UNSYNCED = "SET LOCAL synchronous_commit TO off"
DEFERRED_COMMIT = f"{UNSYNCED}; COMMIT"
# A transaction that writes a WAL record of its own (a logical-decoding message nobody reads, open to every role):
# its synced commit waits for the log to be on disk up to it, which makes every commit before it durable too. A
# transaction that only takes an id (pg_current_xact_id()) writes no WAL, and PostgreSQL then commits it without
# waiting for the disk whatever synchronous_commit says (xact.c, RecordTransactionCommit).
FLUSH = "SELECT pg_logical_emit_message(true, 'qunflow.sync', '')"
# A connection returned to the pool longer ago than this is pinged before use (a firewall or NAT may have dropped
# it without a word); a younger one only when the server sent it something while it sat idle (a shutdown or a
# pg_terminate_backend says so before it closes the socket).
PING_IDLE_AFTER = 10.0


_CURSORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def shared_cursor(driver: Any) -> Any:
    """The psycopg connection's cursor for statements run on the driver (store/plain.py, the event log, the send
    limits, the commits' own statements), made once per connection: psycopg keeps a statement's results on the
    client, so one cursor serves each statement in turn, and making one costs about a third of what a short read
    costs this process (bench/probe_join_cost.py). Read a statement's rows before the next runs on the connection."""
    cursor = _CURSORS.get(driver)
    if cursor is None or cursor.closed:
        cursor = _CURSORS[driver] = driver.cursor()
    return cursor


_CLIENT_CURSORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
# SQL with %s (or %(name)s) placeholders, and their values (None: no placeholders)
Statement = tuple[str, Sequence[Any] | Mapping[str, Any] | None]


def one_query(driver: Any, statements: list[Statement]) -> str:
    """The statements as one query of the simple protocol, their values bound here as literals (psycopg's
    ClientCursor.mogrify, which quotes them for this connection): one execute and one round trip for them all,
    where psycopg's pipeline costs this process a statement's client time each. Run it with prepare=False."""
    client = _CLIENT_CURSORS.get(driver)
    if client is None or client.closed:
        from psycopg import ClientCursor  # here: SQLite installs never load psycopg

        client = _CLIENT_CURSORS[driver] = ClientCursor(driver)
    return "; ".join(sql if params is None else client.mogrify(sql, params) for sql, params in statements)


def commit_at_level(engine: Engine) -> None:
    """Commit at the level the connection's checkout chose (info["qf_sync"], store.db.sync_deferred): an
    unsynced commit sends its SET LOCAL with the COMMIT, so the session's own setting is never changed."""
    from psycopg.pq import TransactionStatus  # here: SQLite installs never load psycopg

    dialect = engine.dialect
    commit = dialect.do_commit
    open_ = TransactionStatus.INTRANS

    def do_commit(connection: Any) -> None:  # the pool's proxy; its info is the connection record's
        driver = connection.driver_connection
        if connection.info.get("qf_sync") == "off" and driver.info.transaction_status == open_:
            shared_cursor(driver).execute(DEFERRED_COMMIT, prepare=False)
        else:
            commit(connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign, assignment]


def commit_synced(driver: Any) -> None:
    """A synced commit of a transaction of its own (none may be open): every commit before it is durable once
    it returns. One round trip: the statement runs alone in autocommit."""
    driver.autocommit = True
    try:
        shared_cursor(driver).execute(FLUSH)
    finally:
        driver.autocommit = False


def ping_when_stale(engine: Engine) -> None:
    """Check a connection at checkout only when it may be dead (PING_IDLE_AFTER), instead of SQLAlchemy's
    pool_pre_ping round trip at every checkout; a failed ping makes the pool open a new connection
    (DisconnectionError: SQLAlchemy's pessimistic disconnect handling)."""

    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["qf_returned"] = time.monotonic()

    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("qf_returned", 0.0)
        if idle <= PING_IDLE_AFTER and not _has_input(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises for a dead connection
            raise DisconnectionError(f"the pooled connection is gone: {exc}") from exc
        if not alive:
            raise DisconnectionError("the pooled connection did not answer")

    event.listen(engine, "connect", returned)  # a new connection was just used: no ping on its first checkout
    event.listen(engine, "checkin", returned)
    event.listen(engine, "checkout", check)


def _has_input(dbapi_connection: Any) -> bool:
    """The server sent something to a connection that waits for no answer: a shutdown's or a terminated
    backend's error, or the socket's end. A local check, no round trip."""
    if dbapi_connection.closed:
        return True
    fd = dbapi_connection.fileno()
    if hasattr(select, "poll"):  # select() refuses a descriptor of 1024 or more (a busy process has them)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # Windows has no poll()
    return bool(readable)
