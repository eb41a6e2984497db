"""Consent records in the state DB: append a decision (with its `consent_changed` event), read what is in force.

Used by the gate, the outbox (a marketing DM needs the marketing consent) and the consent handlers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, insert, select

from qunflow.domain.consent import MARKETING, PURPOSES, SOURCES, TEXT_VERSION, ConsentRecord, in_force
from qunflow.domain.events import Event
from qunflow.errors import InvalidInput
from qunflow.store.eventlog import append_events
from qunflow.store.memo import remember, remembered
from qunflow.store.plain import read_first
from qunflow.store.tables import consents

# Built once: read on every welcome and every marketing send.
_RECORDS = (select(consents.c.purpose, consents.c.granted, consents.c.recorded_at, consents.c.source,
                   consents.c.text_version)
            .where(consents.c.member_id == bindparam("member_id")).order_by(consents.c.id))
_LAST_DECISION = (select(consents.c.granted)
                  .where(consents.c.member_id == bindparam("member_id"), consents.c.purpose == bindparam("purpose"))
                  .order_by(consents.c.recorded_at.desc(), consents.c.id.desc()).limit(1))
# Any marketing decision on record (the newest decides what is in force; here only whether there is one).
_MARKETING_DECIDED = select(consents.c.id).where(consents.c.member_id == bindparam("member_id"),
                                                 consents.c.purpose == MARKETING).limit(1)


def consent_records(conn: Connection, member_id: str) -> list[ConsentRecord]:
    rows = conn.execute(_RECORDS, {"member_id": member_id}).all()
    return [ConsentRecord(r.purpose, bool(r.granted), r.recorded_at, r.source, r.text_version) for r in rows]


def consents_in_force(conn: Connection, member_id: str) -> dict[str, bool]:
    """purpose -> granted; a purpose never asked about is absent."""
    return in_force(consent_records(conn, member_id))


def has_consent(conn: Connection, member_id: str, purpose: str) -> bool:
    return bool(conn.execute(_LAST_DECISION, {"member_id": member_id, "purpose": purpose}).scalar())


def record_consent(conn: Connection, member_id: str, purpose: str, granted: bool, source: str, now: datetime,
                   *, text_version: str = TEXT_VERSION, event: bool = True) -> None:
    """Append a decision in the caller's transaction, and a `consent_changed` event (no metric reads it)."""
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}",
                           zh=f"purpose 须为以下之一:{', '.join(PURPOSES)};收到的是 {purpose!r}")
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source!r}",
                           zh=f"source 须为以下之一:{', '.join(SOURCES)};收到的是 {source!r}")
    conn.execute(insert(consents).values(member_id=member_id, purpose=purpose, text_version=text_version,
                                         granted=granted, recorded_at=now, source=source))
    if purpose == MARKETING:
        remember(("marketing_decided", member_id), True)
    if event:
        append_events(conn, [Event(event_id=f"cs-{uuid.uuid4().hex}", type="consent_changed",
                                   ts=now.replace(tzinfo=UTC), member_id=member_id,
                                   properties={"purpose": purpose, "granted": granted, "source": source})])


def marketing_decided(conn: Connection, member_id: str) -> bool:
    """Whether the member decided on marketing already; within an inbound update, known without a read for a
    member it made (no_consent_yet) or whose decision it recorded (store/memo.py)."""
    return remembered(("marketing_decided", member_id),
                      lambda: read_first(conn, _MARKETING_DECIDED, {"member_id": member_id}) is not None)


def no_consent_yet(member_id: str) -> None:
    """The inbound update just made this member: no decision is on record."""
    remember(("marketing_decided", member_id), False)
