"""Ingest: validate a batch of events, store the valid ones once, report the rest by index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from qunflow.domain.event_columns import EventColumns, validate_columns
from qunflow.errors import InvalidInput
from qunflow.store.eventlog import append_columns

MAX_BATCH = 10_000


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.errors.extend(other.errors)

    def as_json(self) -> dict[str, Any]:
        return {"received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "rejected": len(self.errors),
                "errors": self.errors}


def validate_batch(raw: Any, *, offset: int = 0) -> tuple[EventColumns, list[dict[str, Any]]]:
    """Split a batch into valid events and per-index errors. A non-list is a malformed body."""
    if isinstance(raw, dict) and "events" in raw:
        raw = raw["events"]
    if not isinstance(raw, list):
        raise InvalidInput('the body must be a JSON array of events or {"events": [...]}')
    if len(raw) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} events, got {len(raw)}")
    valid, errors = validate_columns(raw, str_is_reason=False)
    return valid, [{"index": index + offset, "reason": reason} for index, reason in errors]


def store_events(engine: Engine, valid: EventColumns) -> tuple[int, int]:
    """Commit the events in one transaction; (stored, duplicates). Returns after the commit."""
    with engine.begin() as conn:
        stored = append_columns(conn, valid)
    return stored, valid.count - stored


def ingest_batch(engine: Engine, raw: Any, *, offset: int = 0) -> IngestResult:
    valid, errors = validate_batch(raw, offset=offset)
    stored, duplicates = store_events(engine, valid)
    return IngestResult(received=valid.count + len(errors), stored=stored,
                        duplicates=duplicates, errors=errors)
