"""The append-only event log in the state database: idempotent on event_id, ordered by seq."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from qunflow.domain.events import Event
from qunflow.store.tables import events

# Serialises event writers on PostgreSQL so that seq order equals commit order:
# the shipper's watermark can then never skip a row committed late.
EVENT_LOCK_KEY = 7_311_020_001


def utcnow() -> datetime:
    """Naive UTC: the storage convention for every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


def append_events(conn: Connection, batch: Sequence[Event]) -> int:
    """Insert the events not yet stored, in this transaction. Returns how many were new.

    Goes straight to the driver's executemany: this is the ingest hot path.
    """
    if not batch:
        return 0
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_LOCK_KEY})
    columns = _driver_columns(batch, postgres)
    # Columns no event of the batch uses are left to their default (NULL): binding a NULL costs
    # about as much as a value, and most events carry four or five of the seventeen columns.
    used = [name for name, values in columns.items() if values.count(None) != len(batch)]
    marks = ", ".join(["%s" if postgres else "?"] * len(used))
    sql = f"INSERT INTO events ({', '.join(used)}) VALUES ({marks}) ON CONFLICT (event_id) DO NOTHING"
    rows = list(zip(*(columns[name] for name in used), strict=True))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)  # summed over the batch by both drivers
    finally:
        cursor.close()


def _driver_columns(batch: Sequence[Event], postgres: bool) -> dict[str, list[Any]]:
    """The batch column by column, in the driver's types. Column-wise is the cheap way in Python."""
    received = utcnow()
    properties = [json.dumps(e.properties, ensure_ascii=False) if e.properties else None for e in batch]
    if postgres:
        stamps: list[Any] = [e.ts.replace(tzinfo=None) for e in batch]
        amounts: list[Any] = [e.amount for e in batch]
        margins: list[Any] = [e.margin for e in batch]
        received_at: Any = received
    else:  # SQLAlchemy's storage formats for SQLite: "YYYY-MM-DD HH:MM:SS.ffffff", numbers as text
        stamps = [e.ts.isoformat(" ", "microseconds")[:26] for e in batch]  # UTC: drop the "+00:00"
        amounts = [None if e.amount is None else str(e.amount) for e in batch]
        margins = [None if e.margin is None else str(e.margin) for e in batch]
        received_at = received.isoformat(" ", "microseconds")
    return {
        "event_id": [e.event_id for e in batch], "type": [e.type for e in batch], "ts": stamps,
        "member_id": [e.member_id for e in batch], "visitor_id": [e.visitor_id for e in batch],
        "channel": [e.channel for e in batch], "campaign": [e.campaign for e in batch],
        "entry_point": [e.entry_point for e in batch], "group_key": [e.group for e in batch],
        "referrer_id": [e.referrer_id for e in batch], "amount": amounts, "margin": margins,
        "currency": [e.currency for e in batch], "experiment": [e.experiment for e in batch],
        "variant": [e.variant for e in batch], "properties": properties,
        "received_at": [received_at] * len(batch),
    }


def count_events(conn: Connection, event_type: str | None = None) -> int:
    query = select(func.count()).select_from(events)
    if event_type:
        query = query.where(events.c.type == event_type)
    return int(conn.execute(query).scalar_one())


def max_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())
