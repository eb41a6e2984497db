"""Ingest: validate a batch of events, store the valid ones once, report the rest by index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from qunflow.domain.event_columns import EventColumns, validate_columns
from qunflow.domain.identity import carries_identity
from qunflow.errors import InvalidInput
from qunflow.store.eventlog import append_columns
from qunflow.workspace import Workspace

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


def _items(raw: Any) -> list[Any]:
    if isinstance(raw, dict) and "events" in raw:
        raw = raw["events"]
    if not isinstance(raw, list):
        raise InvalidInput('the body must be a JSON array of events or {"events": [...]}',
                           zh='请求体须为事件的 JSON 数组,或 {"events": [...]}')
    if len(raw) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} events, got {len(raw)}",
                           zh=f"每批最多 {MAX_BATCH} 个事件,收到了 {len(raw)} 个")
    return raw


def validate_batch(raw: Any, *, offset: int = 0,
                   reasons: dict[int, str] | None = None) -> tuple[EventColumns, list[dict[str, Any]]]:
    """Split a batch into valid events and per-index errors. A non-list is a malformed body.
    `reasons`: items already refused (by identity resolution), with the reason to report."""
    items = _items(raw)
    valid, errors = validate_columns(items, str_is_reason=False)
    reasons = reasons or {}
    return valid, [{"index": index + offset, "reason": reasons.get(index, reason)} for index, reason in errors]


def store_events(engine: Engine, valid: EventColumns, links: list[dict[str, Any]] | None = None,
                 candidates: list[tuple[str, str, str]] | None = None, now: Any = None) -> tuple[int, int]:
    """Commit the events (and the identity links they made) in one transaction; (stored, duplicates).
    Returns after the commit."""
    with engine.begin() as conn:
        stored = append_columns(conn, valid)
        if links or candidates:
            from qunflow.services.identity import store_links  # rarely needed: kept off start-up (CLI import)

            store_links(conn, links or [], candidates, now)
    return stored, valid.count - stored


def ingest_batch(engine: Engine, raw: Any, *, offset: int = 0, ws: Workspace | None = None) -> IngestResult:
    """Validate and store a batch. With the workspace `ws`, events may name their member by external_id,
    phone or coupon (services/identity.py); without it those fields are unknown fields."""
    items = _items(raw)
    reasons: dict[int, str] = {}
    links: list[dict[str, Any]] = []
    candidates: list[tuple[str, str, str]] = []
    if ws is not None and any(map(carries_identity, items)):  # most batches name members by id: no lookups
        from qunflow.services.identity import resolve_items

        with engine.connect() as conn:
            resolved = resolve_items(conn, ws, items)
        items, reasons, links, candidates = resolved.items, resolved.reasons, resolved.links, resolved.candidates
    valid, errors = validate_batch(items, offset=offset, reasons=reasons)
    stored, duplicates = store_events(engine, valid, links, candidates, ws.clock() if ws is not None else None)
    return IngestResult(received=valid.count + len(errors), stored=stored,
                        duplicates=duplicates, errors=errors)
