"""The analytics store (DuckDB, embedded): schema and short-lived connections.

Connections are opened per operation so that `qunflow serve` and a CLI command can take turns on
the same file; a held lock is retried for a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from qunflow.errors import Unavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT PRIMARY KEY, event_id VARCHAR NOT NULL, type VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,  -- UTC
    member_id VARCHAR, visitor_id VARCHAR, channel VARCHAR, campaign VARCHAR, entry_point VARCHAR,
    group_key VARCHAR, referrer_id VARCHAR, amount DECIMAL(18, 4), margin DECIMAL(18, 4), currency VARCHAR,
    experiment VARCHAR, variant VARCHAR, properties JSON
);
CREATE TABLE IF NOT EXISTS spend (
    channel VARCHAR NOT NULL, day DATE NOT NULL, amount DECIMAL(18, 4) NOT NULL, currency VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS ship_state (id INTEGER PRIMARY KEY, watermark BIGINT NOT NULL);
"""
LOCK_WAIT_SECONDS = 10.0


class AnalyticsBusy(Unavailable):
    """Another process holds the DuckDB file."""


@contextmanager
def connect(path: str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            conn = duckdb.connect(path, read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise AnalyticsBusy(f"the analytics store {path} is in use by another process: {exc}") from exc
            time.sleep(0.1)
    try:
        if not read_only:
            conn.execute(SCHEMA)
        yield conn
    finally:
        conn.close()
