"""The event log's secondary indexes during a bulk import into SQLite (issue 15): dropped for the import and
built once at its end. Kept, every committed chunk rewrites the index pages its rows touch, which at
bench/bench_ingest.py's 50,000 members is nearly every page, once a chunk; built at the end, each page is
written once, from sorted keys.

Only indexes that decide nothing are deferred: the unique index on event_id stays, so a re-sent id is skipped
as always, and every query gives the same rows without the others (only slower). While they are deferred the
import holds a lock on a file next to the database; an import that did not end normally (a killed process)
leaves them missing, and the next `open_workspace` builds them, unless an import of that database still runs
(the lock is free once its process is gone).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.schema import CreateIndex

from qunflow.store.db import before_driver_write
from qunflow.store.tables import events

DEFERRED = ("ix_events_type", "ix_events_member")
# Fewer rows than this are imported with the indexes kept: building them again would cost more than it saves.
MIN_ROWS = 100_000
_MISSING = text(f"SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN {DEFERRED!r}")


@contextmanager
def deferred(conn: Connection, rows: int) -> Iterator[bool]:
    """Within: the DEFERRED indexes dropped when `rows` (the import's expected rows) is a bulk load into this
    SQLite file, at least MIN_ROWS and at least as many as it holds; built again on the way out, however the
    import ends. Yields whether they were dropped."""
    path = _lock_path(conn)
    if path is None or rows < MIN_ROWS:
        yield False
        return
    with _held(path) as held:
        if not held:  # another import of this database defers them and builds them at its end
            yield False
            return
        with conn.begin():
            dropped = conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one() <= rows
            if dropped:
                before_driver_write(conn)
                for name in DEFERRED:
                    conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        try:
            yield dropped
        finally:
            conn.rollback()  # an error may have left the import's transaction open
            if dropped:
                _create(conn)


def restore(engine: Engine) -> None:
    """Build the DEFERRED indexes an interrupted import left missing, unless an import of the database still
    runs (one query when none is missing)."""
    with engine.connect() as conn:
        path = _lock_path(conn)
        if path is None or conn.execute(_MISSING).scalar_one() == len(DEFERRED):
            return
        conn.rollback()  # the read's transaction
        with _held(path) as held:
            if held:
                _create(conn)


def _create(conn: Connection) -> None:
    with conn.begin():
        before_driver_write(conn)  # DDL passes the process's writer lock by: other writers queue there, not in SQLite
        for index in sorted(events.indexes, key=lambda index: str(index.name)):
            if index.name in DEFERRED:
                conn.execute(CreateIndex(index, if_not_exists=True))


def _lock_path(conn: Connection) -> Path | None:
    """The lock file of a SQLite database file; None for PostgreSQL and in-memory databases."""
    database = conn.engine.url.database
    if conn.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).with_name(Path(database).name + "-import.lock")


@contextmanager
def _held(path: Path) -> Iterator[bool]:
    """Within: whether this took the file's lock without waiting (an OS lock, so it is free again once its
    process is gone, however it ended)."""
    lock = FileLock(path, blocking=False)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
