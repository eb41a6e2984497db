"""Events changed in the state DB after they were shipped (a member merge and its undo rewrite member_id and
referrer_id of known seqs): the analytics store's copies of exactly those seqs are replaced by the rows as
the state DB holds them now, on every engine (Engine.restate), so the store stays a copy of the log.

Only seqs at or below the store's watermark are replaced: later ones are not shipped yet and the shipper
will copy them as they are. The watermark is read under the shipper's lock, after the state change was
committed, so a row shipped before the change is at or below it and is replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from qunflow.analytics.engines import open_engine
from qunflow.analytics.facts import restate_with_facts
from qunflow.analytics.shipper import ARROW_SCHEMA, COLUMNS, _lock
from qunflow.store.tables import events
from qunflow.workspace import Workspace

BATCH = 5_000  # seqs per IN list when reading the state DB


def _table(rows: list[Any]) -> pa.Table:
    """Rows as the shipper ships them (properties as JSON text)."""
    data = {name: [getattr(r, name) for r in rows] for name in COLUMNS}
    data["properties"] = [json.dumps(p, ensure_ascii=False) if p else None for p in data["properties"]]
    return pa.table(data, schema=ARROW_SCHEMA)


def restate_events(ws: Workspace, seqs: Iterable[int]) -> int:
    """Replace the store's copies of these events by the state DB's rows; returns how many were replaced."""
    wanted = sorted({int(s) for s in seqs})
    if not wanted:
        return 0
    if ws.settings.analytics_engine == "duckdb" and not Path(ws.settings.analytics_file).exists():
        return 0  # nothing shipped yet: the shipper will copy the rows as they are now
    with _lock, open_engine(ws) as engine:
        watermark = engine.watermark()
        shipped = [s for s in wanted if s <= watermark]
        rows: list[Any] = []
        with ws.engine.connect() as conn:
            for i in range(0, len(shipped), BATCH):
                rows += conn.execute(select(*[events.c[n] for n in COLUMNS])
                                     .where(events.c.seq.in_(shipped[i:i + BATCH]))).all()
        if rows:
            rows.sort(key=lambda r: r.seq)
            restate_with_facts(engine, ws.settings, _table(rows))  # the per-member facts follow the rewrite
        return len(rows)
