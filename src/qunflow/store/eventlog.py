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
    received = utcnow()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_LOCK_KEY})
    received_at: Any = received if postgres else received.isoformat(" ", "microseconds")
    rows = [_driver_row(event, received_at, postgres) for event in batch]
    marks = ", ".join(["%s" if postgres else "?"] * len(INSERT_COLUMNS))
    sql = (f"INSERT INTO events ({', '.join(INSERT_COLUMNS)}) VALUES ({marks}) "
           "ON CONFLICT (event_id) DO NOTHING")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)  # summed over the batch by both drivers
    finally:
        cursor.close()


INSERT_COLUMNS = ("event_id", "type", "ts", "member_id", "visitor_id", "channel", "campaign", "entry_point",
                  "group_key", "referrer_id", "amount", "margin", "currency", "experiment", "variant",
                  "properties", "received_at")


def _driver_row(event: Event, received_at: Any, postgres: bool) -> tuple[Any, ...]:
    ts = event.ts.replace(tzinfo=None)
    properties = json.dumps(event.properties, ensure_ascii=False) if event.properties else None
    if postgres:
        stamp: Any = ts
        amount: Any = event.amount
        margin: Any = event.margin
    else:  # SQLAlchemy's storage formats for SQLite: "YYYY-MM-DD HH:MM:SS.ffffff", numbers for money
        stamp = ts.isoformat(" ", "microseconds")
        amount = None if event.amount is None else str(event.amount)
        margin = None if event.margin is None else str(event.margin)
    return (event.event_id, event.type, stamp, event.member_id, event.visitor_id, event.channel, event.campaign,
            event.entry_point, event.group, event.referrer_id, amount, margin, event.currency, event.experiment,
            event.variant, properties, received_at)



def count_events(conn: Connection, event_type: str | None = None) -> int:
    query = select(func.count()).select_from(events)
    if event_type:
        query = query.where(events.c.type == event_type)
    return int(conn.execute(query).scalar_one())


def max_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())
