"""The shipper: copies new events, in seq order, from the state DB to the analytics store.

Resumable from its watermark, which lives in the analytics store and moves in the same transaction
as the rows it covers, so a crash between chunks neither duplicates nor skips an event. Spend is
rewritten only when it differs from what the store holds.

`analytics(ws)` is how a reader gets the store: one connection for the whole read, brought up to date
first; with nothing to ship, an embedded DuckDB store is opened read-only (no write, no write lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select

from qunflow.analytics.engines import Engine, open_engine
from qunflow.analytics.eventlog_arrow import ARROW_SCHEMA, COLUMNS, read_ahead
from qunflow.analytics.facts import refresh_facts
from qunflow.store.tables import events, spend
from qunflow.workspace import Workspace

# Events per chunk, one append (and one watermark move) each: larger chunks cost fewer round trips to the
# analytics store and a few hundred MiB at most (bench/bench_ship.py).
CHUNK = 100_000
__all__ = ["ARROW_SCHEMA", "COLUMNS", "CHUNK", "analytics", "append_in_step", "held_store", "ship", "ship_into"]
_lock = threading.Lock()  # one shipper at a time per process

SPEND_SCHEMA = pa.schema([("channel", pa.string()), ("day", pa.date32()), ("amount", pa.decimal128(18, 4)),
                          ("currency", pa.string())])


def ship(ws: Workspace, chunk: int = CHUNK) -> int:
    """Ship every event not yet shipped, and refresh spend. Returns the number of events shipped."""
    with _lock, open_engine(ws) as engine:
        return ship_into(ws, engine, chunk)


@contextmanager
def held_store(ws: Workspace, *, wait: bool = False) -> Iterator[Engine]:
    """The store for writing, as this process's one shipper, by default with no wait for a store another process
    holds (store.AnalyticsBusy at once): analytics/ship_along.py appends and ships through it."""
    with _lock, open_engine(ws, wait=wait) as engine:
        yield engine


def append_in_step(engine: Engine, before: int, table: pa.Table) -> bool:
    """Append `table` (ARROW_SCHEMA, the events stored next after seq `before`) when the store's watermark is
    `before`; False, appending nothing, when it is not."""
    if engine.watermark() != before:
        return False
    engine.append(table)
    return True


@contextmanager
def analytics(ws: Workspace, *, ship_first: bool = True) -> Iterator[Engine]:
    """The analytics store for one read, up to date first when `ship_first`: one connection throughout,
    read-only (DuckDB) when nothing is left to ship."""
    with ExitStack() as stack:
        if ws.settings.analytics_engine == "duckdb" and Path(ws.settings.analytics_file).exists():
            engine = stack.enter_context(open_engine(ws, read_only=True))
            if not ship_first or _current(ws, engine):
                yield engine
                return
            stack.close()  # something to ship: reopen for writing
        stack.enter_context(_lock)
        engine = stack.enter_context(open_engine(ws))
        if ship_first:
            ship_into(ws, engine)
        yield engine


def ship_into(ws: Workspace, engine: Engine, chunk: int = CHUNK) -> int:
    """ship() through a store the caller holds (as this process's one shipper)."""
    shipped = 0
    engine.sync_days()  # a change of zone: the stored days follow before the facts are rebuilt from them
    for table in read_ahead(ws.engine, engine.watermark(), chunk):
        engine.append(table)
        shipped += table.num_rows
    refresh_facts(engine, ws.settings)  # the per-member facts follow the events just shipped
    wanted = _spend_in_state(ws)
    if wanted != _spend_in_store(engine):
        engine.replace_spend(_spend_table(wanted))
    return shipped


def _spend_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Spend rows as SPEND_SCHEMA, through JSON text: pa.table() of Python values would import pandas."""
    import orjson
    import pyarrow.json as pj

    if not rows:
        return SPEND_SCHEMA.empty_table()
    text = b"\n".join(orjson.dumps({"channel": channel, "day": day.isoformat(), "amount": str(amount),
                                     "currency": currency}) for channel, day, amount, currency in rows)
    raw = pj.read_json(pa.BufferReader(text), parse_options=pj.ParseOptions(
        explicit_schema=pa.schema([(name, pa.string()) for name in SPEND_SCHEMA.names])))
    return pa.Table.from_arrays([raw[f.name].cast(f.type) for f in SPEND_SCHEMA], schema=SPEND_SCHEMA)


def _current(ws: Workspace, engine: Engine) -> bool:
    """Nothing to ship: the store has every event and the very spend of the state database."""
    with ws.engine.connect() as conn:
        last = conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one()
    return engine.watermark() >= last and _spend_in_store(engine) == _spend_in_state(ws)


def _spend_key(rows: Any) -> list[tuple[Any, ...]]:
    """Spend rows as the store keeps them (amounts to 4 places), in one order, to compare both sides."""
    return sorted((str(c), d, Decimal(a).quantize(Decimal("0.0001")), str(cur)) for c, d, a, cur in rows)


def _spend_in_state(ws: Workspace) -> list[tuple[Any, ...]]:
    with ws.engine.connect() as conn:
        return _spend_key(conn.execute(select(spend.c.channel, spend.c.day, spend.c.amount, spend.c.currency)))


def _spend_in_store(engine: Engine) -> list[tuple[Any, ...]]:
    _names, rows = engine.query("SELECT channel, day, amount, currency FROM spend", {})
    return _spend_key(rows)
