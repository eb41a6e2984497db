"""Ingest: validate a batch of events, store the valid ones once, report the rest by index."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from qunflow.domain.event_columns import EventColumns, validate_columns, validate_raw
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


def import_event_file(engine: Engine, path: Any, on_progress: Any = None, *, chunk: int | None = None) -> IngestResult:
    """Import a CSV/JSONL/Parquet file chunk by chunk; each committed chunk is durable.

    Invalid rows are reported with their line number (in `line`) and skipped. Chunks commit in file
    order and progress is reported after each commit; an error stops the import after them. (Storing
    in a second thread was measured slower: sqlite3 gives Python's lock back for every row.)
    """
    from pathlib import Path

    from qunflow.services.eventfiles import CHUNK, read_chunks

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    total = IngestResult()
    with engine.connect() as conn, _import_cache(conn):
        for lines, raw, position in read_chunks(path, chunk or CHUNK):
            valid, rejected = validate_raw(raw)  # a str row is the reason its line could not be read
            errors = [{"line": lines[index], "reason": reason} for index, reason in rejected]
            with conn.begin():
                stored = append_columns(conn, valid)
            total.add(IngestResult(raw.count, stored, valid.count - stored, errors))
            if on_progress:
                on_progress(position)
    return total


# SQLite page cache while a file is imported, in KiB (the cache grows only as pages are touched).
# At a million members the member index outgrows the default 2 MiB and every chunk reads its pages
# back from the OS: 41k events/s with the default, 72k with this (bench/bench_metrics.py, 9.7M events).
IMPORT_CACHE_KIB = 512 * 1024


@contextmanager
def _import_cache(conn: Connection) -> Iterator[None]:
    """A large page cache on this connection for the import, the usual one again afterwards."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}")
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")
        conn.commit()
