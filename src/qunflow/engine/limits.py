"""Send limits shared by every send path: per platform bot and per chat (PLATFORMS.md, domain/ratelimit.py).

One process (the embedded SQLite default) keeps its buckets in memory. Several workers over PostgreSQL
share them through the state database: one row per bucket holding the GCRA's theoretical arrival time,
taken under a row lock, so N workers together send no faster than one would. The state database was
chosen over Redis because every multi-process install already has it and needs nothing more to run.
A send reads both buckets under a row lock (one statement that makes the missing rows, a bucket's first
send, and locks and returns both: an upsert) and writes both in one statement.

Inside an inbound update (the welcome's path) that happens in the update's own transaction, the one that
records the send (store.db.update_to_lock_in): the upsert, then the new times held back and written in the
query that sends the COMMIT the outbox makes before the platform call (first, before the event log's lock).
The send, its record and its share of the limit then commit together (one commit less per join), the rows
stay locked only from the upsert to that COMMIT, which never waits for the disk (the update's commits before
its last are unsynced, and its last is made unsynced then synced with the locks given back), and never
through a platform call. Elsewhere (the worker's deliveries), or when the update holds the event log's lock
already (one lock order: bucket rows, then the event log's), the send takes a short transaction of its own,
unsynced inside an update: two round trips, BEGIN with the upsert, then the write with its COMMIT (or a
ROLLBACK when a bucket says wait).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, DateTime, Engine, case, literal, select, update
from sqlalchemy.exc import DBAPIError

from qunflow.domain.ratelimit import Limit, Limiter, gcra
from qunflow.store.db import (
    HeldWrite,
    before_driver_write,
    commit_update,
    hold_first,
    note_write,
    update_to_lock_in,
    write_held,
)
from qunflow.store.plain import insert_new_keys
from qunflow.store.postgres import shared_cursor
from qunflow.store.tables import send_limits

EPOCH = datetime(1970, 1, 1)


class SendLimiter(Protocol):
    def wait(self, platform: str, chat: str, *, group: bool, now: datetime) -> float:
        """0 when a send to `chat` may go now (its share taken), else the seconds until it may. Inside an
        inbound update the share may be taken in the update's transaction: the caller commits it (commit_update)
        right after, before the platform call, whether the send goes or waits."""
        ...


class MemoryLimiter(Limiter):
    """Token buckets in this process: right for one process, the embedded default."""


class SharedLimiter:
    """Buckets in the state database, shared by every process that uses it."""

    def __init__(self, engine: Engine, overrides: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
        self.engine = engine
        self.known = Limiter(overrides)

    def wait(self, platform: str, chat: str, *, group: bool, now: datetime) -> float:
        limits = self.known.limits(platform)
        kind = "group" if group else "user"
        wanted = {platform: limits["bot"], f"{platform}:{kind}:{chat}": limits[kind]}
        keys = sorted(wanted)  # one lock order for every process: no deadlocks
        if self.engine.dialect.name == "postgresql":
            in_update = update_to_lock_in(self.engine)
            if in_update is not None:
                return _take_in_update(*in_update, keys, wanted, now)
            commit_update()  # the update's locks are not held while this waits for the buckets' own
            with self.engine.connect() as conn:
                return _take_postgresql(conn, keys, wanted, now)
        with self.engine.begin() as conn:
            stored = _locked(conn, keys)
            if len(stored) < len(keys):  # a bucket's first send (a DM's first to its user): its row is made
                made = insert_new_keys(conn, send_limits, [{"key": key, "tat": EPOCH} for key in keys
                                                           if key not in stored])
                stored.update((row.key, EPOCH) for row in made)  # ours, so locked until our commit
                if len(stored) < len(keys):  # another process made it first: its row is locked as the others
                    stored = _locked(conn, keys)
            taken, longest = _take(stored, wanted, now)
            if longest > 0:
                return longest
            new_tat = case({key: literal(tat, DateTime()) for key, (tat, _wait) in taken.items()},
                           value=send_limits.c.key)  # both buckets in one statement, on both databases
            conn.execute(update(send_limits).where(send_limits.c.key.in_(keys)).values(tat=new_tat))
        return 0.0


def _take(stored: Mapping[str, datetime], wanted: dict[str, Limit], now: datetime
          ) -> tuple[dict[str, tuple[datetime, float]], float]:
    """Each bucket's new time and wait if a send went now (domain.ratelimit.gcra), and the longest wait: the send
    goes only when that is 0."""
    taken = {key: gcra(stored.get(key), now, limit) for key, limit in wanted.items()}
    return taken, max(wait for _tat, wait in taken.values())


def _locked(conn: Connection, keys: list[str]) -> dict[str, datetime]:
    """The buckets' stored times, on SQLite (PostgreSQL: _take_postgresql). SQLite has no row locks: its write
    transaction is the lock, and a workspace on SQLite (one process) keeps its buckets in memory anyway
    (Workspace.limiter)."""
    query = select(send_limits.c.key, send_limits.c.tat).where(send_limits.c.key.in_(keys)).order_by(send_limits.c.key)
    return dict(conn.execute(query).all())  # type: ignore[arg-type]


# Makes the missing rows and locks every row (DO UPDATE locks the one it finds, in VALUES order: the keys' sorted
# order), returning each bucket's time: a row another process is making is waited for, then read as it made it.
_UPSERT = ("INSERT INTO send_limits (key, tat) VALUES {} ON CONFLICT (key) DO UPDATE SET tat = send_limits.tat "
           "RETURNING key, tat")
_SET = "UPDATE send_limits SET tat = CASE key {} END WHERE key = ANY(%s)"
_OPEN, _FAILED = 2, 3  # psycopg.pq.TransactionStatus INTRANS, INERROR (not imported: SQLite installs lack psycopg)


def _upsert(keys: list[str]) -> tuple[str, list[Any]]:
    return _UPSERT.format(", ".join(["(%s, %s)"] * len(keys))), [value for key in keys for value in (key, EPOCH)]


def _set(keys: list[str], taken: dict[str, tuple[datetime, float]]) -> tuple[str, list[Any]]:
    return (_SET.format(" ".join(["WHEN %s THEN %s"] * len(keys))),
            [*(value for key in keys for value in (key, taken[key][0])), keys])


class _HeldTimes:
    """The buckets' new times, written as the update's last statement before its COMMIT (store.db.held_writes)."""

    __slots__ = ("statement",)

    def __init__(self, statement: tuple[str, list[Any]]) -> None:
        self.statement = statement

    def statements(self) -> list[tuple[str, Any]]:
        return [self.statement]


def _take_in_update(conn: Connection, held: dict[str, HeldWrite], keys: list[str], wanted: dict[str, Limit],
                    now: datetime) -> float:
    """SharedLimiter.wait in the open inbound update's transaction: one round trip (the upsert); the new times go
    with the update's next COMMIT, which the caller sends next, whether the send goes or waits (the rows are
    locked until then)."""
    upsert = _upsert(keys)
    write_held(conn, upsert[0])  # times an earlier send of the update took are read as written
    before_driver_write(conn)  # a write (the rows are made, and locked): the update's commit is owed
    driver: Any = conn.connection.driver_connection
    driver_error = conn.dialect.loaded_dbapi.Error
    try:
        stored = dict(shared_cursor(driver).execute(*upsert).fetchall())
    except driver_error as exc:  # as SQLAlchemy raises it: retry_busy knows a deadlock by it
        raise DBAPIError.instance("send_limits", None, exc, driver_error) from exc
    taken, longest = _take(stored, wanted, now)
    if longest == 0:  # written first at the commit: before the event log's lock, which every writer shares
        hold_first(held, "send_limits", _HeldTimes(_set(keys, taken)))
    return longest


def _take_postgresql(conn: Connection, keys: list[str], wanted: dict[str, Limit], now: datetime) -> float:
    """SharedLimiter.wait's transaction in two round trips: psycopg's pipeline with BEGIN and COMMIT sent as
    statements (in autocommit, so it sends no BEGIN of its own first). The commit waits for the disk as the
    connection's level says (store.db.sync_deferred: not inside an inbound update)."""
    driver: Any = conn.connection.driver_connection
    deferred = conn.info.get("qf_sync") == "off"
    driver_error = conn.dialect.loaded_dbapi.Error
    driver.autocommit = True
    try:
        with driver.pipeline():
            driver.execute("BEGIN")
            cursor = driver.execute(*_upsert(keys))
        taken, longest = _take(dict(cursor.fetchall()), wanted, now)
        if longest > 0:
            driver.execute("ROLLBACK")
            return longest
        with driver.pipeline():
            driver.execute(*_set(keys, taken))
            if deferred:
                driver.execute("SET LOCAL synchronous_commit TO off")
            driver.execute("COMMIT")
        note_write()
        return 0.0
    except driver_error as exc:  # as SQLAlchemy raises it: retry_busy knows a deadlock by it
        raise DBAPIError.instance("send_limits", None, exc, driver_error) from exc
    finally:
        if driver.info.transaction_status in (_OPEN, _FAILED):  # a failure left the transaction open
            driver.execute("ROLLBACK")
        if not driver.closed:  # a broken connection is thrown away by the pool
            driver.autocommit = False
