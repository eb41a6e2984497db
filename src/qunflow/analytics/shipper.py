"""The shipper: copies new events, in seq order, from the state DB to the analytics store.

Resumable from its watermark, which lives in the analytics store and moves in the same transaction
as the rows it covers, so a crash between chunks neither duplicates nor skips an event.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from qunflow.analytics.engines import open_engine
from qunflow.store.tables import events, spend
from qunflow.workspace import Workspace

CHUNK = 50_000
COLUMNS = ("seq", "event_id", "type", "ts", "member_id", "visitor_id", "channel", "campaign", "entry_point",
           "group_key", "referrer_id", "amount", "margin", "currency", "experiment", "variant", "properties")
ARROW_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("event_id", pa.string()), ("type", pa.string()), ("ts", pa.timestamp("us")),
    *[(name, pa.string()) for name in ("member_id", "visitor_id", "channel", "campaign", "entry_point",
                                       "group_key", "referrer_id")],
    ("amount", pa.decimal128(18, 4)), ("margin", pa.decimal128(18, 4)),
    *[(name, pa.string()) for name in ("currency", "experiment", "variant", "properties")],
])
_lock = threading.Lock()  # one shipper at a time per process


def _arrow(rows: list[Any]) -> pa.Table:
    columns: list[list[Any]] = [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in COLUMNS]
    props = COLUMNS.index("properties")
    columns[props] = [json.dumps(p, ensure_ascii=False) if p else None for p in columns[props]]
    return pa.table(columns, schema=ARROW_SCHEMA)


SPEND_SCHEMA = pa.schema([("channel", pa.string()), ("day", pa.date32()), ("amount", pa.decimal128(18, 4)),
                          ("currency", pa.string())])


def ship(ws: Workspace, chunk: int = CHUNK) -> int:
    """Ship every event not yet shipped, and refresh spend. Returns the number of events shipped."""
    shipped = 0
    with _lock, open_engine(ws) as engine:
        watermark = engine.watermark()
        query = select(*[events.c[name] for name in COLUMNS]).order_by(events.c.seq)
        while True:
            with ws.engine.connect() as conn:
                rows = conn.execute(query.where(events.c.seq > watermark).limit(chunk)).all()
            if not rows:
                break
            engine.append(_arrow([tuple(r) for r in rows]))
            watermark = rows[-1].seq
            shipped += len(rows)
        with ws.engine.connect() as conn:
            spend_rows = conn.execute(select(spend.c.channel, spend.c.day, spend.c.amount, spend.c.currency)).all()
        columns = [list(c) for c in zip(*spend_rows, strict=True)] if spend_rows else [[], [], [], []]
        engine.replace_spend(pa.table(columns, schema=SPEND_SCHEMA))
    return shipped
