"""The append-only event log in the state database: idempotent on event_id, ordered by seq."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from qunflow.domain.event_columns import EventColumns, event_columns
from qunflow.domain.events import MONEY_FIELDS, Event
from qunflow.store.db import before_driver_write
from qunflow.store.tables import events

# Serialises event writers on PostgreSQL so that seq order equals commit order:
# the shipper's watermark can then never skip a row committed late.
EVENT_LOCK_KEY = 7_311_020_001


def utcnow() -> datetime:
    """Naive UTC: the storage convention for every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


def append_events(conn: Connection, batch: Sequence[Event]) -> int:
    """Insert the events not yet stored, in this transaction. Returns how many were new."""
    return append_columns(conn, event_columns(batch)) if batch else 0


# Event field -> events table column, where they differ.
_COLUMN = {"group": "group_key"}


def append_columns(conn: Connection, batch: EventColumns) -> int:
    """Insert the events not yet stored, in this transaction. Returns how many were new."""
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
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_LOCK_KEY})
    mark = "%s" if postgres else "?"
    # received_at is one value for the batch: bound once, in the statement, not once per row.
    sql = (f"INSERT INTO events ({', '.join(columns)}, received_at) "
           f"VALUES ({', '.join([mark] * len(columns))}, {mark if postgres else _received(postgres)}) "
           "ON CONFLICT (event_id) DO NOTHING")
    # sqlite3 takes the rows one by one from the zip, which then reuses one tuple: no list of a chunk's tuples
    # for the garbage collector to walk through again and again while it is built.
    rows: Any = zip(*columns.values(), strict=True)
    if postgres:
        received = _received(postgres)
        rows = [(*row, received) for row in rows]
    before_driver_write(conn)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)  # summed over the batch by both drivers
    finally:
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
