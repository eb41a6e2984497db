"""Analytics engines behind one small interface: DuckDB (embedded default) and ClickHouse via chdb.

The shipper appends Arrow tables, the metrics service runs rendered SQL; neither knows which
engine it talks to. A ClickHouse server (clickhouse-connect) would be a third class here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from qunflow.analytics.dialects import for_clickhouse, for_duckdb
from qunflow.errors import InvalidInput
from qunflow.workspace import Workspace

ENGINES = ("duckdb", "chdb")

CLICKHOUSE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        seq Int64, event_id String, type String, ts DateTime64(6, 'UTC'),
        member_id Nullable(String), visitor_id Nullable(String), channel Nullable(String),
        campaign Nullable(String), entry_point Nullable(String), group_key Nullable(String),
        referrer_id Nullable(String), amount Nullable(Decimal(18, 4)), margin Nullable(Decimal(18, 4)),
        currency Nullable(String), experiment Nullable(String), variant Nullable(String),
        properties Nullable(String)
    ) ENGINE = MergeTree ORDER BY seq""",
    """CREATE TABLE IF NOT EXISTS spend (
        channel String, day Date, amount Decimal(18, 4), currency String
    ) ENGINE = MergeTree ORDER BY (channel, day)""",
)


class Engine(Protocol):
    name: str

    def watermark(self) -> int: ...

    def append(self, table: pa.Table) -> None:
        """Add events (ascending seq); the watermark moves with them, atomically."""
        ...

    def replace_spend(self, table: pa.Table) -> None: ...

    def query(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]: ...


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def watermark(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(watermark), 0) FROM ship_state").fetchall()[0][0])

    def append(self, table: pa.Table) -> None:
        self._in_transaction("incoming", table, (
            "INSERT INTO events SELECT * FROM incoming",
            "INSERT OR REPLACE INTO ship_state SELECT 1, max(seq) FROM incoming",
        ))

    def replace_spend(self, table: pa.Table) -> None:
        self._in_transaction("incoming_spend", table, (
            "DELETE FROM spend",
            "INSERT INTO spend SELECT * FROM incoming_spend",
        ))

    def _in_transaction(self, name: str, table: pa.Table, statements: tuple[str, ...]) -> None:
        """All statements or none: a failure rolls back, so rows and watermark never part."""
        self.conn.register(name, table)
        try:
            self.conn.execute("BEGIN")
            try:
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        finally:
            self.conn.unregister(name)

    def query(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        text, used = for_duckdb(sql, params)
        cursor = self.conn.execute(text, used)
        return [d[0] for d in cursor.description], cursor.fetchall()


class ChdbEngine:
    """Embedded ClickHouse. The watermark is max(seq) of the events table itself: an INSERT of an
    ordered chunk lands whole or as a prefix, so resuming from max(seq) neither skips nor repeats."""

    name = "chdb"

    def __init__(self, session: Any) -> None:
        self.session = session

    def watermark(self) -> int:
        result = self.session.query("SELECT max(seq) FROM events", "ArrowTable")
        value = result.column(0)[0].as_py() if result.num_rows else None
        return int(value or 0)

    def append(self, table: pa.Table) -> None:
        incoming = table  # noqa: F841 - chdb's Python() table function reads this local by name
        self.session.query("INSERT INTO events SELECT * FROM Python(incoming)")

    def replace_spend(self, table: pa.Table) -> None:
        incoming_spend = table  # noqa: F841 - read by name, as above
        self.session.query("TRUNCATE TABLE spend")
        if table.num_rows:
            self.session.query("INSERT INTO spend SELECT * FROM Python(incoming_spend)")

    def query(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        result = self.session.query(for_clickhouse(sql, params), "ArrowTable")
        names = list(result.column_names)
        columns = [result.column(i).to_pylist() for i in range(len(names))]
        return names, list(zip(*columns, strict=True)) if columns else []


_chdb_lock = threading.RLock()
_chdb_session: dict[str, Any] = {}


def _chdb(path: str) -> Any:
    """chdb keeps one session per process: switching workspaces closes the previous one."""
    from chdb import session as chdb_session

    if _chdb_session.get("path") != path:
        if "session" in _chdb_session:
            _chdb_session["session"].close()
        Path(path).mkdir(parents=True, exist_ok=True)
        created = chdb_session.Session(path)
        for statement in CLICKHOUSE_SCHEMA:
            created.query(statement)
        _chdb_session.update(path=path, session=created)
    return _chdb_session["session"]


@contextmanager
def open_engine(ws: Workspace) -> Iterator[Engine]:
    name = ws.settings.analytics_engine
    if name == "duckdb":
        from qunflow.analytics.store import connect

        with connect(ws.settings.analytics_file) as conn:
            yield DuckDBEngine(conn)
    elif name == "chdb":
        try:
            import chdb  # noqa: F401
        except ImportError as exc:
            raise InvalidInput("analytics_engine = chdb needs the chdb package: pip install 'qunflow[clickhouse]'") \
                from exc
        with _chdb_lock:
            yield ChdbEngine(_chdb(ws.settings.analytics_file))
    else:
        raise InvalidInput(f"analytics_engine must be one of {', '.join(ENGINES)}, not {name!r}")
