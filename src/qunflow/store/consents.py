"""Consent records in the state DB: append a decision (with its `consent_changed` event), read what is in force.

Used by the gate, the outbox (a marketing DM needs the marketing consent) and the consent handlers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select

from qunflow.domain.consent import PURPOSES, SOURCES, TEXT_VERSION, ConsentRecord, in_force
from qunflow.domain.events import Event
from qunflow.errors import InvalidInput
from qunflow.store.eventlog import append_events
from qunflow.store.tables import consents


def consent_records(conn: Connection, member_id: str) -> list[ConsentRecord]:
    c = consents.c
    rows = conn.execute(select(c.purpose, c.granted, c.recorded_at, c.source, c.text_version)
                        .where(c.member_id == member_id).order_by(c.id)).all()
    return [ConsentRecord(r.purpose, bool(r.granted), r.recorded_at, r.source, r.text_version) for r in rows]


def consents_in_force(conn: Connection, member_id: str) -> dict[str, bool]:
    """purpose -> granted; a purpose never asked about is absent."""
    return in_force(consent_records(conn, member_id))


def has_consent(conn: Connection, member_id: str, purpose: str) -> bool:
    c = consents.c
    granted = conn.execute(select(c.granted).where(c.member_id == member_id, c.purpose == purpose)
                           .order_by(c.recorded_at.desc(), c.id.desc()).limit(1)).scalar()
    return bool(granted)


def record_consent(conn: Connection, member_id: str, purpose: str, granted: bool, source: str, now: datetime,
                   *, text_version: str = TEXT_VERSION, event: bool = True) -> None:
    """Append a decision in the caller's transaction, and a `consent_changed` event (no metric reads it)."""
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    conn.execute(insert(consents).values(member_id=member_id, purpose=purpose, text_version=text_version,
                                         granted=granted, recorded_at=now, source=source))
    if event:
        append_events(conn, [Event(event_id=f"cs-{uuid.uuid4().hex}", type="consent_changed",
                                   ts=now.replace(tzinfo=UTC), member_id=member_id,
                                   properties={"purpose": purpose, "granted": granted, "source": source})])
