"""Plain SQL on the driver's cursor for the hot paths (an inbound update's reads and writes, idempotent inserts):
statements built once per dialect and table, SQLAlchemy's own type conversions applied, and the writes an open
update holds back (store.db.held_writes) run first where a statement names their table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from qunflow.store.db import before_driver_write, held_writes, write_held
from qunflow.store.postgres import Statement, shared_cursor

_INSERTS: dict[tuple[str, str, str], Any] = {}


def _insert(conn: Connection, table: Any, returning: str = "") -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the table, built once per dialect (and RETURNING form): the
    values come as parameters, so the statement is not built again for every row written."""
    key = (conn.dialect.name, table.name, returning)
    statement = _INSERTS.get(key)
    if statement is None:
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = (pg_insert if key[0] == "postgresql" else sqlite_insert)(table).on_conflict_do_nothing()
        if returning == "key":
            statement = statement.returning(*table.primary_key.columns)
        _INSERTS[key] = statement
    return statement


def insert_ignore(conn: Connection, table: Any, rows: list[dict[str, Any]], *, hold: bool = False) -> None:
    """Insert the rows whose keys are not there yet (ON CONFLICT DO NOTHING), in the caller's transaction (on
    the driver's cursor: write_plain, which may hold one row back: `hold`)."""
    if rows:
        write_plain(conn, _insert(conn, table), rows[0] if hold and len(rows) == 1 else rows, hold=hold)


def insert_if_new(conn: Connection, table: Any, row: dict[str, Any]) -> bool:
    """Insert one row unless its key exists; True when it was new (RETURNING: psycopg's rowcount says -1)."""
    return conn.execute(_insert(conn, table, "key"), row).first() is not None


def insert_new_keys(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert the rows whose keys are not there yet, in one statement; returns the keys that were new."""
    return list(conn.execute(_insert(conn, table, "key"), rows)) if rows else []


def insert_new_key(conn: Connection, table: Any, row: dict[str, Any]) -> Any:
    """insert_if_new on the driver's cursor (write_plain): the new row's key (its first key column), None when
    its key existed."""
    return write_plain(conn, _insert(conn, table, "key"), row)


# Keyed by the statement itself, not its id(): the entry keeps it alive, so no later statement can reuse its id.
_PLAIN_READS: dict[tuple[Any, str], tuple[Any, str, tuple[str, ...] | None, dict[str, Any]]] = {}


def read_plain(conn: Connection, statement: Any, params: dict[str, Any], *, sees_held: bool = True) -> list[Any]:
    """The rows of a hot read (a module-level `select` whose parameters and columns are text or integers,
    so neither side needs SQLAlchemy's type conversion), run on the driver's cursor. SQLAlchemy's execution
    costs several times what SQLite takes to run such a read, and the join path runs a dozen of them per
    join (bench/probe_join_cost.py). Compiled once per dialect; rows are named tuples (row.column works).
    In the caller's connection and transaction, like conn.execute. The writes the update holds back on a table
    the statement names run first, unless the caller knows the read cannot see them (`sees_held=False`)."""
    key = (statement, conn.dialect.name)
    plan = _PLAIN_READS.get(key)
    if plan is None:
        plan = _PLAIN_READS[key] = _plain_plan(conn, statement)
    row_type, sql, positions, literals = plan
    if sees_held:
        write_held(conn, sql)
    cursor = _cursor(conn)
    try:
        if positions is None:
            cursor.execute(sql, {**literals, **params})
        else:
            merged = {**literals, **params}
            cursor.execute(sql, [merged[name] for name in positions])
        return [row_type._make(row) for row in cursor.fetchall()]
    finally:
        _done(conn, cursor)


def _cursor(conn: Connection) -> Any:
    """A cursor on the driver for one statement: PostgreSQL's shared one (store.postgres.shared_cursor), else a
    new one (SQLite's cursor would keep a statement it did not step to its end open until reused)."""
    driver: Any = conn.connection.driver_connection
    return shared_cursor(driver) if conn.dialect.name == "postgresql" else driver.cursor()


def _done(conn: Connection, cursor: Any) -> None:
    if conn.dialect.name != "postgresql":
        cursor.close()


def _plain_plan(conn: Connection, statement: Any) -> tuple[Any, str, tuple[str, ...] | None, dict[str, Any]]:
    from collections import namedtuple

    from sqlalchemy import Integer, String

    columns = list(statement.selected_columns)
    compiled = statement.compile(dialect=conn.dialect)
    plain = (String, Integer)
    if not all(isinstance(c.type, plain) for c in columns) or not all(
            isinstance(b.type, plain) and not b.expanding for b in compiled.binds.values()):
        raise TypeError("read_plain takes text and integer columns and parameters only (and no IN lists): "
                        f"{compiled.string}")
    literals = {name: value for name, value in compiled.construct_params(_check=False).items() if value is not None}
    positions = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup is not None else None
    row_type = namedtuple("PlainRow", [c.key for c in columns], rename=True)  # type: ignore[misc]
    return row_type, compiled.string, positions, literals


def flag(condition: Any) -> Any:
    """1 or 0 as `condition` holds: a column read_plain reads (text and integers only)."""
    from sqlalchemy import Integer, case, literal_column

    return case((condition, literal_column("1", Integer)), else_=literal_column("0", Integer))


def read_first(conn: Connection, statement: Any, params: dict[str, Any]) -> Any:
    """read_plain's first row, or None."""
    rows = read_plain(conn, statement, params)
    return rows[0] if rows else None


def read_scalar(conn: Connection, statement: Any, params: dict[str, Any], *, sees_held: bool = True) -> Any:
    """read_plain's first column of its first row, or None."""
    rows = read_plain(conn, statement, params, sees_held=sees_held)
    return rows[0][0] if rows else None


# Keyed like _PLAIN_READS, and by the parameter names (an INSERT's columns are the ones given).
_PLAIN_WRITES: dict[tuple[Any, str, tuple[str, ...]], _WritePlan] = {}


class _WritePlan(NamedTuple):
    sql: str
    positions: tuple[str, ...] | None  # the parameters' order (SQLite's ?), None: by name (psycopg)
    literals: dict[str, Any]  # values the statement carries itself, and constant column defaults
    convert: dict[str, Callable[[Any], Any]]  # SQLAlchemy's type conversion, per parameter that needs one
    returning: bool


def write_plain(conn: Connection, statement: Any, params: dict[str, Any] | list[dict[str, Any]], *,
                hold: bool = False) -> Any:
    """A hot write (a module-level insert or update) run on the driver's cursor, like read_plain: the values
    go through the type conversions SQLAlchemy would apply (a datetime as SQLite stores it), without its
    execution machinery. A list of rows runs as one executemany. Returns the first column of the row
    RETURNING gives (None: no row), else the number of rows written. In the caller's connection and
    transaction, under the writer lock (before_driver_write). A column default that is not a constant is
    refused (TypeError).

    `hold`: one row whose outcome the caller does not read is held back, where the open inbound update holds
    writes (PostgreSQL: store.db.held_writes), until its next COMMIT, whose one query sends it: no execute and
    no round trip of its own. A later statement of the update that names its table runs it first. Returns None
    then."""
    rows = params if isinstance(params, list) else [params]
    key = (statement, conn.dialect.name, tuple(rows[0]))
    plan = _PLAIN_WRITES.get(key)
    if plan is None:
        plan = _PLAIN_WRITES[key] = _write_plan(conn, statement, key[2])
    values = []
    for row in rows:
        merged = {**plan.literals, **row}
        for name, process in plan.convert.items():
            merged[name] = process(merged[name])
        values.append(merged if plan.positions is None else [merged[name] for name in plan.positions])
    if hold and not plan.returning and len(values) == 1 and _held(conn, statement.table.name, plan.sql, values[0]):
        return None
    write_held(conn, plan.sql)
    before_driver_write(conn)
    driver_error = conn.dialect.loaded_dbapi.Error
    cursor = _cursor(conn)
    try:
        if len(values) == 1:
            cursor.execute(plan.sql, values[0])
        else:
            cursor.executemany(plan.sql, values)
        if plan.returning:
            found = cursor.fetchone()
            return None if found is None else found[0]
        return cursor.rowcount
    except driver_error as exc:  # as SQLAlchemy raises it: retry_busy knows "database is locked" by it
        raise DBAPIError.instance(plan.sql, values, exc, driver_error) from exc
    finally:
        _done(conn, cursor)


class _HeldPlain:
    """Plain writes to one table that an inbound update holds back until its COMMIT (write_plain's `hold`)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held: list[Statement] = []

    def statements(self) -> list[Statement]:
        return self.held


def _held(conn: Connection, table: str, sql: str, values: Any) -> bool:
    """Hold one write back for the update's next COMMIT; False where it cannot be (write it now): no update
    holds writes on `conn`, or the table's held writes are another kind (the event log's)."""
    held = held_writes(conn)
    if held is None:
        return False
    pending = held.get(table)
    if pending is None:
        pending = held[table] = _HeldPlain()
    elif not isinstance(pending, _HeldPlain):
        return False
    before_driver_write(conn)  # a write of the update's: its commit is owed
    pending.held.append((sql, values))
    return True


def _write_plan(conn: Connection, statement: Any, names: tuple[str, ...]) -> _WritePlan:
    # for_executemany: no RETURNING of the new key that PostgreSQL's INSERTs otherwise get unasked
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(names), for_executemany=True)
    literals = {name: value for name, value in compiled.construct_params(_check=False).items() if value is not None}
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        if column.default is None or not column.default.is_scalar:
            raise TypeError(f"write_plain: the default of {column} is not a constant: {compiled.string}")
        literals[column.key] = column.default.arg
    if any(bind.expanding for bind in compiled.binds.values()):
        raise TypeError(f"write_plain takes no IN lists: {compiled.string}")
    convert = {}
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if process is not None:
            convert[name] = process
    positions = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup is not None else None
    return _WritePlan(compiled.string, positions, literals, convert, bool(compiled.effective_returning))
