"""The append-only event log in the state database: idempotent on event_id, ordered by seq."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from qunflow.domain.events import Event
from qunflow.store.tables import events

# Serialises event writers on PostgreSQL so that seq order equals commit order:
# the shipper's watermark can then never skip a row committed late.
EVENT_LOCK_KEY = 7_311_020_001


def utcnow() -> datetime:
    """Naive UTC: the storage convention for every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


def append_events(conn: Connection, batch: Sequence[Event]) -> set[str]:
    """Insert events not yet stored, in this transaction. Returns the event_ids newly stored."""
    if not batch:
        return set()
    insert: Any
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_LOCK_KEY})
        insert = postgresql.insert(events)
    else:
        insert = sqlite.insert(events)
    received = utcnow()
    rows: list[dict[str, Any]] = []
    for event in batch:
        row = event.as_row()
        row["received_at"] = received
        rows.append(row)
    stmt = insert.on_conflict_do_nothing(index_elements=["event_id"]).returning(events.c.event_id)
    stored = conn.execute(stmt, rows).scalars().all()
    return set(stored)


def count_events(conn: Connection, event_type: str | None = None) -> int:
    query = select(func.count()).select_from(events)
    if event_type:
        query = query.where(events.c.type == event_type)
    return int(conn.execute(query).scalar_one())


def max_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())
