"""The append-only event log in the state database: idempotent on event_id, ordered by seq.

On PostgreSQL, event writers take one lock (EVENT_LOCK_KEY) until their commit, so that seq order equals commit
order: a reader that has seen seq N (the shipper's watermark, the automation and sync cursors) never meets a
row below N committed later. Every process's event writers queue on it, so it is held as briefly as can be:
an inbound update (store.db.UpdateTransaction) holds its events back and writes them as its last statements
before each COMMIT (store.db.held_writes), sent with it in one round trip, so the lock covers that INSERT
and the COMMIT, not the rest of the update's work (the welcome's rendering, its other writes); a commit that
must wait for the disk waits after the lock is given back (UpdateTransaction._commit_with_held).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError

from qunflow.domain.event_columns import EventColumns, event_columns
from qunflow.domain.events import MONEY_FIELDS, Event
from qunflow.store.db import before_driver_write, held_writes
from qunflow.store.postgres import shared_cursor
from qunflow.store.tables import events

# Serialises event writers on PostgreSQL so that seq order equals commit order:
# the shipper's watermark can then never skip a row committed late.
EVENT_LOCK_KEY = 7_311_020_001
_LOCK = f"SELECT pg_advisory_xact_lock({EVENT_LOCK_KEY})"
# PostgreSQL: a batch of up to this many events is one INSERT of several rows (rows in the order given, the
# same seq order and ON CONFLICT outcome as one INSERT per row), a larger one psycopg's executemany.
ONE_STATEMENT = 20


def utcnow() -> datetime:
    """Naive UTC: the storage convention for every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


def append_events(conn: Connection, batch: Sequence[Event]) -> int:
    """Insert the events not yet stored, in this transaction. Returns how many were new."""
    return append_columns(conn, event_columns(batch)) if batch else 0


# Event field -> events table column, where they differ.
_COLUMN = {"group": "group_key"}


def append_columns(conn: Connection, batch: EventColumns) -> int:
    """Insert the events not yet stored, in this transaction. Returns how many were new (inside an inbound
    update on PostgreSQL: how many were held for its commit, which drops the ones stored already)."""
    if not batch.count:
        return 0
    return append_driver_columns(conn, driver_columns(batch, postgres=conn.dialect.name == "postgresql"))


def append_driver_columns(conn: Connection, columns: dict[str, list[Any]]) -> int:
    """append_columns for columns driver_columns already made (the import makes them in another process).

    Goes straight to the driver's executemany: this is the ingest hot path. Columns no event of the
    batch uses are left to their default (NULL): most events carry four or five of the seventeen.
    """
    if not columns:
        return 0
    held = held_writes(conn)
    if held is not None:
        before_driver_write(conn)  # a write of the update's: its commit is owed
        pending = held.get("events")
        if not isinstance(pending, HeldEvents):
            pending = held["events"] = HeldEvents()
        pending.batches.append(columns)
        return len(next(iter(columns.values())))
    return _insert(conn, columns)


def holds_event(conn: Connection, member_id: str, types: tuple[str, ...]) -> bool:
    """Whether the open inbound update holds back an event of one of `types` for the member (store.db.held_writes):
    a read of the log that could see such an event must write the held ones first; one that cannot leaves them
    held, so the event lock is not taken before the commit."""
    held = held_writes(conn)
    pending = held.get("events") if held is not None else None
    if not isinstance(pending, HeldEvents):
        return False
    for batch in pending.batches:
        members, kinds = batch.get("member_id"), batch.get("type")
        if members and kinds and any(m == member_id and k in types for m, k in zip(members, kinds, strict=True)):
            return True
    return False


class HeldEvents:
    """An inbound update's events, held back until just before its commit (store.db.held_writes): then
    written in one statement (up to ONE_STATEMENT events), in the order they were appended, under the event lock."""

    __slots__ = ("batches",)

    def __init__(self) -> None:
        self.batches: list[dict[str, list[Any]]] = []

    def statements(self) -> list[tuple[str, Any]]:
        """The lock, then the events in INSERTs of up to ONE_STATEMENT rows each (ON CONFLICT drops the ones
        stored already)."""
        if len(self.batches) == 1:
            columns = self.batches[0]
        else:
            names = list(dict.fromkeys(name for batch in self.batches for name in batch))
            columns = {name: [] for name in names}
            for batch in self.batches:
                size = len(next(iter(batch.values())))
                for name in names:
                    columns[name].extend(batch.get(name) or [None] * size)  # a column the batch leaves NULL
        sql, row_marks = _insert_sql(columns, postgres=True)
        rows = _postgres_rows(columns)
        return [(_LOCK, None), *(_rows_in_one(sql, row_marks, rows[start:start + ONE_STATEMENT])
                                 for start in range(0, len(rows), ONE_STATEMENT))]


def _insert_sql(columns: dict[str, list[Any]], *, postgres: bool) -> tuple[str, str]:
    """The INSERT of one row of these columns, and its VALUES row (repeat it for more rows)."""
    mark = "%s" if postgres else "?"
    # received_at is one value for the batch: bound once, in the statement, not once per row.
    row_marks = f"({', '.join([mark] * len(columns))}, {mark if postgres else _received(postgres)})"
    return (f"INSERT INTO events ({', '.join(columns)}, received_at) VALUES {row_marks} "
            "ON CONFLICT (event_id) DO NOTHING"), row_marks


def _postgres_rows(columns: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    received = _received(True)
    return [(*row, received) for row in zip(*columns.values(), strict=True)]


def _rows_in_one(sql: str, row_marks: str, rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """One INSERT of these rows (in their order: the same seq order and ON CONFLICT outcome as one INSERT a row)."""
    return sql.replace(row_marks, ", ".join([row_marks] * len(rows))), [value for row in rows for value in row]


def _insert(conn: Connection, columns: dict[str, list[Any]]) -> int:
    """Write the rows under the event lock (PostgreSQL); returns how many were new."""
    postgres = conn.dialect.name == "postgresql"
    sql, row_marks = _insert_sql(columns, postgres=postgres)
    # sqlite3 takes the rows one by one from the zip, which then reuses one tuple: no list of a chunk's tuples
    # for the garbage collector to walk through again and again while it is built.
    rows: Any = _postgres_rows(columns) if postgres else zip(*columns.values(), strict=True)
    values: list[Any] | None = None  # PostgreSQL, a few rows: one statement's parameters
    if postgres and len(rows) <= ONE_STATEMENT:  # psycopg's executemany costs more client time than one INSERT
        sql, values = _rows_in_one(sql, row_marks, rows)
    before_driver_write(conn)
    # On PostgreSQL the driver's errors are raised as SQLAlchemy's, so retry_busy knows a deadlock by them; SQLite's
    # pass as the driver raised them, as callers (the file import) have always seen them.
    driver_error = conn.dialect.loaded_dbapi.Error if postgres else ()
    driver: Any = conn.connection.driver_connection
    cursor = shared_cursor(driver) if postgres else driver.cursor()
    try:
        if postgres:
            cursor.execute(_LOCK)
        if values is not None:
            cursor.execute(sql, values)
        else:
            cursor.executemany(sql, rows)
        return int(cursor.rowcount)  # summed over the batch by both drivers
    except driver_error as exc:
        raise DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc
    finally:
        if not postgres:
            cursor.close()


def _received(postgres: bool) -> Any:
    """Now, as the driver stores it; on SQLite a quoted literal of SQLAlchemy's format (digits only)."""
    received = utcnow()
    return received if postgres else f"'{received.isoformat(' ', 'microseconds')}'"


def driver_columns(batch: EventColumns, postgres: bool) -> dict[str, list[Any]]:
    """The batch's columns in the driver's types, keyed by table column (no database needed)."""
    out: dict[str, list[Any]] = {}
    for name, values in batch.columns.items():
        if name == "ts":
            values = [v.replace(tzinfo=None) for v in values] if postgres else _sqlite_stamps(values)
        elif name in MONEY_FIELDS and not postgres:  # numbers as text, as SQLAlchemy stores them
            values = [None if v is None else str(v) for v in values]
        out[_COLUMN.get(name, name)] = values
    return out


def _sqlite_stamps(stamps: list[datetime]) -> list[str]:
    """SQLAlchemy's storage format for SQLite, "YYYY-MM-DD HH:MM:SS.ffffff" (UTC, no offset).

    Arrow's cast to text writes exactly what isoformat(" ", "microseconds") does for every datetime
    (tests/unit/test_event_columns.py), three times faster.
    """
    if len(stamps) < 100:  # a few events (a join, a welcome): not worth Arrow's fixed cost
        return [stamp.isoformat(" ", "microseconds")[:26] for stamp in stamps]
    import pyarrow as pa

    utc = pa.array(stamps, pa.timestamp("us", "UTC"))
    return utc.cast(pa.timestamp("us")).cast(pa.string()).to_pylist()  # type: ignore[no-any-return]


def count_events(conn: Connection, event_type: str | None = None) -> int:
    query = select(func.count()).select_from(events)
    if event_type:
        query = query.where(events.c.type == event_type)
    return int(conn.execute(query).scalar_one())


def max_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())
