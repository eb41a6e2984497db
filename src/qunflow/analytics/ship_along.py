"""Shipping an import as it goes (issue 15): each batch `qunflow events import` commits from Arrow is
appended, in the same Arrow form, to the analytics store, the watermark moving with it (Engine.append), so the
first metrics call after a large import has (almost) nothing to ship.

The state database stays the truth. A batch ships along only when the store is in step: the batch's rows
took consecutive seqs after the last one before it, one each in file order (checked inside the batch's own
transaction), and at append time the store's watermark is that last seq. The append comes after the state
commit, so a crash between the two leaves the store behind, never ahead, and the next ship brings it up; a
store another shipper moved on is never appended to. The first batch that cannot ship along (a re-sent
event_id in it, rows that needed row-by-row checks, money SQLite would round, a store out of step or held
by another process) ends shipping along for the import. At the end the import runs the normal ship
(shipper.ship's path): whatever did not ship along, the per-member facts and spend, in the thread and through
the connection that appended, while the import builds its indexes (store/event_indexes.py).

On DuckDB and chdb (ALONG). DuckDB moves its watermark in the append's transaction. chdb has no transactions:
its watermark is max(seq) of the rows, and each append is one block, which lands whole or not at all
(engines.ONE_BLOCK), so a crash mid-append leaves the store as it was. Either store is held by one process at
a time (DuckDB's file lock, the lock chdb takes on its directory), and within the process by the thread
(shipper's lock, and engines._chdb_lock, which the import's own thread never takes), so nothing moves the
watermark between the check and the append. Both let go of Python's lock while they work, so the appends run
in the thread while the import stores the next batch (docs/metrics.md has the figures).

A ClickHouse server keeps the normal ship (its first metrics call ships): other processes ship into it at the
same time, so a batch could be checked in step, then shipped and restated (a merge, an erasure) by another
process, and then appended: its old rows, inserted last, would win in events_log's ReplacingMergeTree.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from decimal import Decimal

import pyarrow as pa
from sqlalchemy import Connection, func, select

from qunflow.analytics.eventlog_arrow import ARROW_SCHEMA, MONEY
from qunflow.store.tables import events
from qunflow.workspace import Workspace

# SQLite keeps money in a NUMERIC column: text becomes a double, exact to 15 significant digits, and the
# ship reads it back with printf('%.4f'). Below 1e11 (at most 11 + 4 digits) that gives the very text
# stored; larger amounts ship the normal way, so both ways agree to the last digit.
SQLITE_EXACT_MONEY = Decimal("1e11")
# The longest the import holds the store between two batches' appends: under the 10 s another process waits
# for it (store.LOCK_WAIT_SECONDS).
HOLD_SECONDS = 4.0
_FINISH = "finish"  # the thread's job after the import's last batch
ALONG = ("duckdb", "chdb")  # the engines batches ship along to


def ship_table(columns: dict[str, pa.Array], first_seq: int, postgres: bool) -> pa.Table | None:
    """A batch of eventfiles_arrow.checked_columns as the ship would read it back from the state database,
    its rows numbered from `first_seq`; None when the ship might read a value back differently."""
    import numpy as np  # loaded by pyarrow already; pa.array of Python ints would import pandas

    count = len(columns["event_id"])
    seq = pa.Array.from_buffers(pa.int64(), count, [None, pa.py_buffer(
        np.arange(first_seq, first_seq + count, dtype=np.int64))])
    arrays = [seq]
    for field in ARROW_SCHEMA:
        if field.name == "seq":
            continue
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(count, field.type))
            continue
        if field.name in MONEY and not postgres and not _exact_on_sqlite(values):
            return None
        arrays.append(values if values.type == field.type else values.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)


def _exact_on_sqlite(money: pa.Array) -> bool:
    import pyarrow.compute as pc

    bounds = pc.min_max(money).as_py()
    return bounds["min"] is None or max(-bounds["min"], bounds["max"]) < SQLITE_EXACT_MONEY


def seqs_taken(conn: Connection, stored: int) -> tuple[int, int] | None:
    """Inside the batch's transaction, after its insert of `stored` new rows: (the last seq before them, their
    first seq) when they took consecutive seqs, one each in the order inserted; otherwise None. The two differ
    by a gap where no row is (PostgreSQL's sequence skips the values of refused or rolled-back rows)."""
    top = conn.execute(select(func.max(events.c.seq))).scalar()
    if top is None or not stored:
        return None
    low = int(top) - stored
    # New rows have the highest seqs (this transaction holds the write lock); `stored` rows above `low`
    # means they fill low + 1 .. top without a gap.
    if conn.execute(select(func.count()).where(events.c.seq > low)).scalar_one() != stored:
        return None
    before = conn.execute(select(func.coalesce(func.max(events.c.seq), 0)).where(events.c.seq <= low)).scalar_one()
    return int(before), low + 1


class ShipAlong:
    """Appends committed batches to the analytics store in a thread, while the store is in step."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.postgres = ws.engine.dialect.name == "postgresql"
        self.in_step = True
        self.shipped = 0
        self._failure: BaseException | None = None
        self._finishing = False
        self._jobs: queue.Queue[tuple[int, pa.Table] | str | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="qunflow-ship-along", daemon=True)
        self._thread.start()

    def committed(self, seqs: tuple[int, int] | None, stored: int, columns: dict[str, pa.Array] | None,
                  valid: int) -> None:
        """After a batch's commit: ship its `stored` new rows along, the batch's `valid` events in `columns`
        (checked_columns) with the seqs `seqs` gives (seqs_taken); or end shipping along when they cannot."""
        if not stored or not self.in_step:
            return
        table = None
        if seqs is not None and columns is not None and stored == valid:
            table = ship_table(columns, seqs[1], self.postgres)
        if seqs is None or table is None:
            self.stop()
        else:
            self._jobs.put((seqs[0], table))  # waits while the thread appends the batch before

    def stop(self) -> None:
        """End shipping along: the import's final ship takes the rest."""
        self.in_step = False

    def finish(self) -> None:
        """After the import's last commit: the thread runs the normal ship for what did not ship along, the facts
        and spend (only if anything shipped along: otherwise the store is left to its next ship, as before), while
        the caller finishes its own work; close() waits for it."""
        if not self._finishing:
            self._finishing = True
            self._jobs.put(_FINISH)

    def _run(self) -> None:
        from qunflow.analytics.store import AnalyticsBusy

        try:
            with ExitStack() as held:
                self._append_all(held)
            return
        except AnalyticsBusy:  # another process holds the store: its own ship will catch up
            self.in_step = False
        except BaseException as exc:  # raised by close()
            self._failure, self.in_step = exc, False
        while self._jobs.get() is not None:  # after a failure: take what is still sent, up to close()'s None
            pass

    def _append_all(self, held: ExitStack) -> None:
        """Each batch in its own transaction of the store, through one connection held for up to HOLD_SECONDS
        (opening and closing the file per batch cost a checkpoint each, a third of the appends' time); it is
        let go in between and whenever no batch comes for a second, so other processes take their turn."""
        from qunflow.analytics.shipper import append_in_step, held_store, ship_into

        engine, since = None, 0.0
        while True:
            try:
                job = self._jobs.get(timeout=1.0)
            except queue.Empty:
                held.close()
                engine = None
                continue
            if job is None:
                return
            if job == _FINISH:
                if self.shipped:  # another process holding the store (AnalyticsBusy): its ship finishes the work
                    ship_into(self.ws, engine or held.enter_context(held_store(self.ws, wait=True)))
                continue
            if not self.in_step or isinstance(job, str):
                continue
            if engine is None:
                engine, since = held.enter_context(held_store(self.ws)), time.monotonic()
            before, table = job
            if not append_in_step(engine, before, table):
                self.in_step = False
                continue
            self.shipped += table.num_rows
            if time.monotonic() - since > HOLD_SECONDS:
                held.close()
                engine = None

    def close(self, finish: bool) -> None:
        """Wait for the appends, and when `finish` for the final ship (see finish())."""
        if finish:
            self.finish()
        elif not self.in_step and not self._finishing:  # drop a waiting batch: the normal ship takes it
            with suppress(queue.Empty):
                self._jobs.get_nowait()
        self._jobs.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure


@contextmanager
def ship_along(ws: Workspace | None) -> Iterator[ShipAlong | None]:
    """A ShipAlong for the import into `ws` (None without a workspace or on an engine not in ALONG). An import
    that fails or is interrupted waits for the appends under way and leaves the rest to the next ship."""
    if ws is None or ws.settings.analytics_engine not in ALONG:
        yield None
        return
    along = ShipAlong(ws)
    try:
        yield along
    except BaseException:
        along.stop()
        along.close(finish=False)
        raise
    along.close(finish=True)

