"""The analytics store (DuckDB, embedded): schema and short-lived connections.

Every event row carries its local day (`day`), computed once when the row is stored, in the zone that
`event_day_zone` records; the metric SQL reads it (@EVENT_DAY) when that zone is the one asked for, and computes the
day per row otherwise. A write in another zone computes the whole column again first (`sync_days`).

Connections are opened per operation so that `qunflow serve` and a CLI command can take turns on
the same file; a held lock is retried for a few seconds. Within one process DuckDB refuses to open a file
read-only and read-write at once, so `connect` lets a reader join an open writer's mode, and a writer wait
for the readers of the moment to finish.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from qunflow.analytics.dialects import local_day_duckdb
from qunflow.analytics.eventlog_arrow import COLUMNS
from qunflow.errors import Unavailable

SCHEMA = """
-- seq has no PRIMARY KEY: the watermark, moved in the chunk's own transaction, already keeps each event once,
-- and the index cost a fifth of the time to ship (bench/bench_ship.py). Stores made before keep theirs.
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT NOT NULL, event_id VARCHAR NOT NULL, type VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,  -- UTC
    member_id VARCHAR, visitor_id VARCHAR, channel VARCHAR, campaign VARCHAR, entry_point VARCHAR,
    group_key VARCHAR, referrer_id VARCHAR, amount DECIMAL(18, 4), margin DECIMAL(18, 4), currency VARCHAR,
    experiment VARCHAR, variant VARCHAR, properties JSON,
    day DATE  -- the local day of ts in event_day_zone's zone, computed once as the row is stored (see sync_days)
);
ALTER TABLE events ADD COLUMN IF NOT EXISTS day DATE;  -- stores from before the stored day: filled on next write
CREATE TABLE IF NOT EXISTS event_day_zone (id INTEGER PRIMARY KEY, zone VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS spend (
    channel VARCHAR NOT NULL, day DATE NOT NULL, amount DECIMAL(18, 4) NOT NULL, currency VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ship_state (id INTEGER PRIMARY KEY, watermark BIGINT NOT NULL);
"""
LOCK_WAIT_SECONDS = 10.0


class AnalyticsBusy(Unavailable):
    """Another process holds the DuckDB file."""


_modes: dict[str, list[Any]] = {}  # path -> [read_only, open connections, writers waiting]
_modes_changed = threading.Condition()


def _enter(path: str, read_only: bool) -> bool:
    """The mode this process opens `path` in: a reader takes a writer's mode; a writer waits for readers."""
    with _modes_changed:
        state = _modes.setdefault(path, [read_only, 0, 0])
        if not read_only:
            state[2] += 1
        while state[1] and state[0] and not read_only:  # readers in read-only mode: wait for them
            _modes_changed.wait()
        while read_only and state[1] and state[0] and state[2]:  # a writer is waiting: let it go first
            _modes_changed.wait()
        if not read_only:
            state[2] -= 1
        if not state[1]:
            state[0] = read_only
        state[1] += 1
        return bool(state[0])


def _leave(path: str) -> None:
    with _modes_changed:
        state = _modes[path]
        state[1] -= 1
        if not state[1] and not state[2]:
            del _modes[path]
        _modes_changed.notify_all()


@contextmanager
def connect(path: str, *, read_only: bool = False, wait: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the store; a file another process holds is retried for LOCK_WAIT_SECONDS (`wait`) or
    refused at once (AnalyticsBusy)."""
    read_only = _enter(path, read_only)
    try:
        deadline = time.monotonic() + (LOCK_WAIT_SECONDS if wait else 0.0)
        while True:
            try:
                conn = duckdb.connect(path, read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise AnalyticsBusy(f"the analytics store {path} is in use by another process: {exc}",
                                        zh=f"分析库 {path} 正被另一个进程占用:{exc}") \
                        from exc
                time.sleep(0.1)
        try:
            if not read_only:
                conn.execute(SCHEMA)
            yield conn
        finally:
            conn.close()
    finally:
        _leave(path)


def day_zone(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The zone of the stored days, or None when no day is stored (a store from before them, opened read-only)."""
    try:
        rows = conn.execute("SELECT zone FROM event_day_zone WHERE id = 1").fetchall()
    except (duckdb.CatalogException, duckdb.InvalidInputException):  # no table (or a Python object of its name)
        return None
    return str(rows[0][0]) if rows else None


def sync_days(conn: duckdb.DuckDBPyConnection, zone: str) -> None:
    """Make `zone` the stored days' zone: every row's day computed again if it was another (or none), inside the
    caller's transaction if there is one. Rows stored later get their day from `insert_events`."""
    if day_zone(conn) != zone:
        from qunflow.analytics import by_member

        conn.execute(f"UPDATE events SET day = {local_day_duckdb('ts', zone)}")
        conn.execute("INSERT OR REPLACE INTO event_day_zone VALUES (1, ?)", [zone])
        by_member.drop(conn)  # its days are the old zone's; the facts' rebuild for the new zone makes it again


def insert_events(source: str, zone: str) -> str:
    """The statement that stores the events of `source` (ARROW_SCHEMA) with their local day in `zone` (which
    must be the stored days' zone: sync_days first)."""
    names = ", ".join(COLUMNS)
    return f"INSERT INTO events ({names}, day) SELECT {names}, {local_day_duckdb('ts', zone)} FROM {source}"
