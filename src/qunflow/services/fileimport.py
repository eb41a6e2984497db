"""`qunflow events import`: a CSV/JSONL/Parquet file into the event log, chunk by committed chunk.

A large file is read in a second process: it reads, validates and converts a chunk to the driver's
columns while this one stores the chunk before it. The two halves take about the same time, and a
thread would not do (sqlite3 hands Python's lock back and forth for every row it inserts).
A Parquet batch that Arrow compute proves valid skips the row-by-row work (services/eventfiles_arrow.py);
a file of such columns is read in this process, as reading it then costs little next to storing it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from qunflow.domain.identity import carries_identity
from qunflow.errors import InvalidInput
from qunflow.services.ingest import IngestResult
from qunflow.workspace import Workspace

# Files from this size on are read in a second process (starting it costs about half a second).
PIPELINE_BYTES = 16 * 1024 * 1024

# A guess at the bytes a row takes in a CSV or JSONL file, to tell a bulk load (store/event_indexes.py).
BYTES_PER_ROW = 100

# SQLite page cache while a file's chunks are stored, in KiB (the cache grows only as pages are touched).
# At a million members the member index outgrows the default 2 MiB and every chunk reads its pages
# back from the OS (bench/bench_metrics.py, 9.7M events). Given back before the deferred indexes are built:
# SQLite's sorter takes as much memory again as the cache allows, and sorts faster in the usual small
# runs (CREATE INDEX of both at 10.2M events: 9.5 s of CPU with 2 MiB, 22-23 s with 512 MiB).
IMPORT_CACHE_KIB = 512 * 1024

_DONE = "done"


@dataclass
class Prepared:
    """One chunk, ready to store: the valid events as driver columns and the refused rows by line."""

    received: int
    valid: int
    columns: dict[str, list[Any]]
    errors: list[dict[str, Any]]
    position: int  # bytes of the file read so far
    # Rows naming their member by external_id, phone or coupon: resolved by the importing process, which
    # holds the database (line, row).
    pending: list[tuple[int, Any]]
    # The valid events as Arrow columns (eventfiles_arrow.checked_columns), when a batch took the Arrow path:
    # what ships along to the analytics store (analytics/ship_along.py).
    arrow: dict[str, Any] | None = None


def prepared_chunks(path: Path, chunk: int, postgres: bool) -> Generator[Prepared]:
    """Everything the import does to a file but storing it; no database involved."""
    from qunflow.services.eventfiles import file_format, parquet_batches, parquet_raw, read_chunks
    from qunflow.services.eventfiles_arrow import checked_columns, driver_lists

    if file_format(path) != "parquet":
        for lines, raw, position in read_chunks(path, chunk):
            yield _prepared(lines, raw, position, postgres)
        return
    for first, batch, position in parquet_batches(path, chunk):
        # A batch whose every row is provably valid goes to the driver's columns straight from Arrow.
        columns = checked_columns(batch)
        if columns is not None:
            yield Prepared(batch.num_rows, batch.num_rows, driver_lists(columns, postgres), [], position, [], columns)
        else:
            yield _prepared(*parquet_raw(first, batch), position, postgres)


def _prepared(lines: list[int], raw: Any, position: int, postgres: bool) -> Prepared:
    """A chunk validated row by row where needed (domain.event_columns)."""
    from qunflow.domain.event_columns import validate_raw
    from qunflow.store.eventlog import driver_columns

    valid, rejected = validate_raw(raw)  # a str row is the reason its line could not be read
    pending = {index: row for index, flag in enumerate(raw.doubtful)
               if flag and carries_identity(row := raw.row(index))}
    errors = [{"line": lines[index], "reason": reason} for index, reason in rejected if index not in pending]
    columns = driver_columns(valid, postgres) if valid.count else {}
    return Prepared(raw.count - len(pending), valid.count, columns, errors, position,
                    [(lines[index], row) for index, row in pending.items()])


def import_event_file(engine: Engine, path: Any, on_progress: Any = None, *, chunk: int | None = None,
                      pipeline: bool | None = None, ws: Workspace | None = None) -> IngestResult:
    """Import a file chunk by chunk; each committed chunk is durable.

    Invalid rows are reported with their line number (in `line`) and skipped. Chunks commit in file
    order and progress (bytes read) is reported after each commit; an error stops the import after
    them. `pipeline` (default: from PIPELINE_BYTES on, unless a Parquet file's columns suit the Arrow path)
    reads in a second process. With the workspace
    `ws`, rows may name their member by external_id, phone or coupon (services/identity.py), and batches
    of an Arrow-ready Parquet file ship to the analytics store as they commit (analytics/ship_along.py). A bulk
    load into SQLite builds the event log's secondary indexes once at its end (store/event_indexes.py).
    """
    from qunflow.analytics.ship_along import seqs_taken, ship_along
    from qunflow.services.eventfiles import CHUNK, file_format
    from qunflow.store import event_indexes
    from qunflow.store.eventlog import append_driver_columns

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file", zh=f"{path}:文件不存在")
    file_format(path)  # an unknown extension fails here, before a process is started
    arrow_ready = _arrow_ready(path)
    if pipeline is None:
        pipeline = path.stat().st_size >= PIPELINE_BYTES and not arrow_ready
    postgres = engine.dialect.name == "postgresql"
    chunks = _read_elsewhere if pipeline else prepared_chunks
    total = IngestResult()
    # Left in reverse order: the cache goes, then the indexes are built, then the final ship is waited for.
    with engine.connect() as conn, closing(chunks(path, chunk or CHUNK, postgres)) as read, \
            ship_along(ws if arrow_ready and ws is not None and ws.engine is engine else None) as along, \
            event_indexes.deferred(conn, _expected_rows(path)), _import_cache(conn):
        for prepared in read:
            stored = 0
            if prepared.valid:
                with conn.begin():
                    stored = append_driver_columns(conn, prepared.columns)
                    seqs = seqs_taken(conn, stored) if along and along.in_step else None
                if along:
                    along.committed(seqs, stored, prepared.arrow, prepared.valid)
            total.add(IngestResult(prepared.received, stored, prepared.valid - stored, prepared.errors))
            if prepared.pending:
                total.add(_import_pending(conn, ws, prepared.pending))
                if along:
                    along.stop()  # rows stored apart from the batch's Arrow columns: the normal ship takes them
            if on_progress:
                on_progress(prepared.position)
        if along:
            along.finish()  # the final ship runs while the indexes are built
    total.errors.sort(key=lambda error: error["line"])
    return total


def _arrow_ready(path: Path) -> bool:
    """A Parquet file whose columns the Arrow path takes: reading it costs little next to storing it, and a
    reader process would cost more than it saves (bench/bench_ingest.py)."""
    from qunflow.services.eventfiles import file_format
    from qunflow.services.eventfiles_arrow import schema_fits

    if file_format(path) != "parquet":
        return False
    import pyarrow.parquet as pq

    try:
        return schema_fits(pq.read_schema(path))
    except Exception:  # pyarrow raises several types for a damaged file: the reader reports it
        return False


def _expected_rows(path: Path) -> int:
    """The rows of a Parquet file; a guess from the size for CSV and JSONL."""
    from qunflow.services.eventfiles import file_format

    if file_format(path) != "parquet":
        return path.stat().st_size // BYTES_PER_ROW
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception:  # pyarrow raises several types for a damaged file: the reader reports it
        return 0


def _import_pending(conn: Connection, ws: Workspace | None, pending: list[tuple[int, Any]]) -> IngestResult:
    """Resolve and store the rows that name their member by external_id, phone or coupon, in one transaction.
    Without a workspace those fields are unknown fields, as before."""
    from qunflow.domain.event_columns import validate_columns
    from qunflow.services.identity import resolve_items, store_links
    from qunflow.store.eventlog import append_columns

    lines = [line for line, _ in pending]
    items = [row for _, row in pending]
    with conn.begin():
        resolved = resolve_items(conn, ws, items) if ws is not None else None
        valid, rejected = validate_columns(resolved.items if resolved else items, str_is_reason=False)
        stored = append_columns(conn, valid) if valid.count else 0
        if resolved and ws is not None:
            store_links(conn, resolved.links, resolved.candidates, ws.clock())
    reasons = resolved.reasons if resolved else {}
    errors = [{"line": lines[index], "reason": reasons.get(index, reason)} for index, reason in rejected]
    return IngestResult(len(pending), stored, valid.count - stored, errors)


def _read_elsewhere(path: Path, chunk: int, postgres: bool) -> Generator[Prepared]:
    """prepared_chunks, made in a child process one chunk ahead of the caller.

    A plain child process (not multiprocessing: that would import the caller's main script again)
    sends pickles on its stdout. It holds the only writing end of that pipe, so when this process
    dies mid-import the child's next write fails and it ends instead of waiting for ever.
    """
    import qunflow

    env = dict(os.environ)
    source = str(Path(qunflow.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "from qunflow.services.fileimport import _reader; _reader()",
               str(path), str(chunk), "postgresql" if postgres else "sqlite"]
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    assert child.stdout is not None and child.stderr is not None
    try:
        while True:
            try:
                item = pickle.load(child.stdout)
            except EOFError:
                child.wait(10)
                problem = child.stderr.read().decode(errors="replace").strip().splitlines()
                raise RuntimeError(f"the process reading {path.name} ended unexpectedly (exit code "
                                   f"{child.returncode}): {problem[-1] if problem else 'no message'}") from None
            if isinstance(item, BaseException):
                raise item
            if item == _DONE:
                return
            yield item
    finally:
        child.stdout.close()  # a child still writing gets a broken pipe and ends
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        child.stderr.close()


def _reader() -> None:
    """The child (argv: path, chunk, dialect): prepared chunks pickled to stdout, then _DONE or the error."""
    path, chunk, dialect = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    out = sys.stdout.buffer

    def put(item: Any) -> None:
        try:
            pickle.dump(item, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        except OSError:  # the importing process is gone (killed, or stopped by an error)
            os._exit(1)

    try:
        for prepared in prepared_chunks(path, chunk, dialect == "postgresql"):
            put(prepared)
    except Exception as exc:  # the caller raises it: a read error after the chunks before it
        put(exc if isinstance(exc, InvalidInput) else RuntimeError(f"{type(exc).__name__}: {exc}"))
        return
    put(_DONE)


@contextmanager
def _import_cache(conn: Connection) -> Iterator[None]:
    """A large page cache on this connection for the import, the usual one again afterwards, its memory
    handed back to the OS."""
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
        conn.exec_driver_sql("PRAGMA shrink_memory")
        conn.commit()
        trim_heap()


def trim_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc's malloc_trim; elsewhere nothing). SQLite's freed
    cache pages lie among live allocations, so free() alone keeps them in the process: at 1M members the
    import held 1.3 GiB into the facts build, 0.8 GiB after this."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (AttributeError, OSError, TypeError):  # not glibc (musl, macOS, Windows)
        return
    trim(0)
