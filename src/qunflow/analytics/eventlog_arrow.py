"""The state database's event log, read in seq order as Arrow tables for the shipper, without a Python
object per value.

SQLite: the database writes each row as one JSON object (json_object, in C), pyarrow.json parses a chunk of
them at once; about twice as fast as fetching rows through the driver and building columns in Python (bench/
bench_ship.py). PostgreSQL: `COPY (SELECT ...) TO STDOUT` as CSV, parsed by pyarrow.csv. Both give text
columns, converted here to ARROW_SCHEMA with Arrow casts: ts from the stored naive-UTC text, money from its
decimal text (on SQLite: printf('%.4f'), the digits SQLAlchemy reads back), and empty properties (`{}`,
`null`) as NULL, as the shipper has always stored them. Nothing here builds Arrow values from Python objects:
that would import pandas (pyarrow looks for it), which costs a reader 0.15 s.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator
from contextlib import suppress
from operator import itemgetter

import pyarrow as pa
from sqlalchemy import Connection, Engine

COLUMNS = ("seq", "event_id", "type", "ts", "member_id", "visitor_id", "channel", "campaign", "entry_point",
           "group_key", "referrer_id", "amount", "margin", "currency", "experiment", "variant", "properties")
MONEY = ("amount", "margin")
MONEY_TYPE = pa.decimal128(18, 4)
ARROW_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("event_id", pa.string()), ("type", pa.string()), ("ts", pa.timestamp("us")),
    *[(name, pa.string()) for name in ("member_id", "visitor_id", "channel", "campaign", "entry_point",
                                       "group_key", "referrer_id")],
    ("amount", MONEY_TYPE), ("margin", MONEY_TYPE),
    *[(name, pa.string()) for name in ("currency", "experiment", "variant", "properties")],
])
EMPTY_AS_NULL = "nullif(nullif({}, '{{}}'), 'null')"  # empty properties are stored as NULL
# As read from either database, before the casts: seq a number, every other column text.
TEXT_SCHEMA = pa.schema([("seq", pa.int64()), *[(name, pa.string()) for name in COLUMNS[1:]]])
JSON_SCHEMA = pa.schema([(str(at), field.type) for at, field in enumerate(TEXT_SCHEMA)])


def read_ahead(db: Engine, after: int, limit: int) -> Iterator[pa.Table]:
    """Every event with seq > `after`, `limit` at a time; a thread reads the next chunk while the caller
    stores this one (sqlite3, psycopg, pyarrow and DuckDB let go of the GIL while they work)."""
    ready: queue.Queue[pa.Table | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def read() -> None:
        start = after
        try:
            while not stop.is_set():
                with db.connect() as conn:
                    table = read_chunk(conn, start, limit)
                ready.put(table)
                if table is None:
                    return
                start = table["seq"][-1].as_py()
        except BaseException as exc:  # the caller raises it
            ready.put(exc)

    reader = threading.Thread(target=read, name="qunflow-ship-reader", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with suppress(queue.Empty):  # a reader waiting to hand over a chunk: take it, so it sees `stop`
            ready.get_nowait()
        reader.join()


def read_chunk(conn: Connection, after: int, limit: int) -> pa.Table | None:
    """Up to `limit` events with seq > `after`, in seq order, as ARROW_SCHEMA; None when there are none."""
    raw = _sqlite_text(conn, after, limit) if conn.dialect.name == "sqlite" else _postgres_text(conn, after, limit)
    return None if raw is None else typed(raw)


def typed(raw: pa.Table) -> pa.Table:
    """Text columns as TEXT_SCHEMA gives them, in the analytics store's types."""
    columns = [raw[field.name] if raw[field.name].type == field.type else raw[field.name].cast(field.type)
               for field in ARROW_SCHEMA]
    return pa.Table.from_arrays(columns, schema=ARROW_SCHEMA)


def _sqlite_select(after_limit: str) -> str:
    def value(name: str) -> str:
        if name in MONEY:
            return f"CASE WHEN {name} IS NULL THEN NULL ELSE printf('%.4f', {name}) END"
        return EMPTY_AS_NULL.format(name) if name == "properties" else name

    # Keys are the column's position: a third less text to write and parse than the names.
    pairs = ", ".join(f"'{at}', {value(name)}" for at, name in enumerate(COLUMNS))
    return f"SELECT CAST(json_object({pairs}) AS BLOB) FROM events {after_limit}"


SQLITE_CHUNK = _sqlite_select("WHERE seq > ? ORDER BY seq LIMIT ?")
# ts in one format whatever the server's DateStyle; the others as their text.
POSTGRES_TEXT = {"seq": "seq", "ts": "to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US')",
                 "properties": EMPTY_AS_NULL.format("properties::text")}


def _sqlite_text(conn: Connection, after: int, limit: int) -> pa.Table | None:
    import pyarrow.json as pj

    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        rows = cursor.execute(SQLITE_CHUNK, (after, limit)).fetchall()
    finally:
        cursor.close()
    if not rows:
        return None
    lines = b"\n".join(map(itemgetter(0), rows))
    options = pj.ParseOptions(explicit_schema=JSON_SCHEMA, unexpected_field_behavior="error")
    return pj.read_json(pa.BufferReader(lines), parse_options=options).rename_columns(list(COLUMNS))


def _postgres_text(conn: Connection, after: int, limit: int) -> pa.Table | None:
    import pyarrow.csv as pcsv

    text_columns = ", ".join(POSTGRES_TEXT.get(name, f"{name}::text") for name in COLUMNS)
    query = (f"COPY (SELECT {text_columns} FROM events WHERE seq > {int(after)} ORDER BY seq LIMIT {int(limit)}) "
             "TO STDOUT (FORMAT csv, FORCE_QUOTE *)")
    buffer = io.BytesIO()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(query) as copy:
            for block in copy:
                buffer.write(block)
    finally:
        cursor.close()
    if not buffer.tell():
        return None
    # NULL is an unquoted empty field; every value, the empty text too, is quoted (FORCE_QUOTE).
    return pcsv.read_csv(
        pa.BufferReader(buffer.getvalue()),
        read_options=pcsv.ReadOptions(column_names=list(COLUMNS)),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types=TEXT_SCHEMA, null_values=[""], strings_can_be_null=True,
                                            quoted_strings_can_be_null=False))
