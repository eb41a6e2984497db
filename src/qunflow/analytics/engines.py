"""Analytics engines behind one small interface: DuckDB (embedded default), ClickHouse embedded
(chdb) and a ClickHouse server (clickhouse-connect over HTTP).

The shipper appends Arrow tables, the metrics service runs rendered SQL; neither knows which
engine it talks to.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from qunflow.analytics import facts_clickhouse_sql
from qunflow.analytics.dialects import for_clickhouse, for_duckdb
from qunflow.errors import InvalidInput, Unavailable
from qunflow.settings import ClickHouseTarget
from qunflow.workspace import Workspace

ENGINES = ("duckdb", "chdb", "clickhouse")

EVENT_COLUMNS = """
    seq Int64, event_id String, type String, ts DateTime64(6, 'UTC'),
    member_id Nullable(String), visitor_id Nullable(String), channel Nullable(String),
    campaign Nullable(String), entry_point Nullable(String), group_key Nullable(String),
    referrer_id Nullable(String), amount Nullable(Decimal(18, 4)), margin Nullable(Decimal(18, 4)),
    currency Nullable(String), experiment Nullable(String), variant Nullable(String),
    properties Nullable(String)
"""
# A catch-up of the facts reads the events of a few members (or visitors) out of a table ordered by seq
# (facts_clickhouse.py). Data-skipping indexes: a granule (8,192 rows) whose bloom filter names none of them is
# skipped. On chdb also a projection, a copy of the columns the facts read ordered by member: a member's events
# are spread over the whole table (at 1M the 20 members of 20 events had 739 events in 402 of 1,243 granules),
# so the skip index alone spares little. A server's `events` reads events_log FINAL, which uses no projection.
EVENT_INDEXES = {"INDEX events_member_id": "member_id TYPE bloom_filter GRANULARITY 1",
                 "INDEX events_visitor_id": "visitor_id TYPE bloom_filter GRANULARITY 1"}
EVENTS_BY_MEMBER = {"PROJECTION events_by_member":
                    f"(SELECT {facts_clickhouse_sql.EVENT_READ_COLUMNS} ORDER BY member_id)"}
SPEND_TABLE = """CREATE TABLE IF NOT EXISTS spend (
        channel String, day Date, amount Decimal(18, 4), currency String
    ) ENGINE = MergeTree ORDER BY (channel, day)"""
CLICKHOUSE_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS events ({EVENT_COLUMNS}, "
    f"{', '.join(f'{n} {spec}' for n, spec in {**EVENT_INDEXES, **EVENTS_BY_MEMBER}.items())}) "
    "ENGINE = MergeTree ORDER BY seq",
    SPEND_TABLE,
    *facts_clickhouse_sql.SCHEMA,
)
# On a server, rows land in events_log, keyed by seq and collapsed when read (FINAL): a chunk sent twice,
# by two shippers in two processes (`qunflow serve` and a CLI command) or by a retried request, counts once.
SERVER_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS events_log ({EVENT_COLUMNS}, "
    f"{', '.join(f'{n} {spec}' for n, spec in EVENT_INDEXES.items())}) "
    "ENGINE = ReplacingMergeTree ORDER BY seq",
    "CREATE VIEW IF NOT EXISTS events AS SELECT * FROM events_log FINAL",
    SPEND_TABLE,
    *facts_clickhouse_sql.SCHEMA,
)
# An INSERT ... SELECT squashes what it reads into blocks of min_insert_block_size_rows (about 1M) or _bytes
# (256 MiB), one part each, in max_insert_threads streams (2 by default in chdb): a 2.5M-row append made three
# parts with interleaved seqs, so a crash between them could leave a gap under max(seq). One stream, no byte
# threshold and a row threshold no append reaches make every append one block, whole or nothing (one part at
# 2.5M rows; both thresholds at 0 would not squash at all: 65,409-row parts, out of order).
ONE_BLOCK = ("SETTINGS max_insert_threads = 1, min_insert_block_size_rows = 9223372036854775807, "
             "min_insert_block_size_bytes = 0")
AUTH_FAILED = {192, 193, 194, 516}  # UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
NOT_ALLOWED = {164, 497}  # READONLY, ACCESS_DENIED


class Engine(Protocol):
    name: str

    def watermark(self) -> int: ...

    def append(self, table: pa.Table) -> None:
        """Add events (ascending seq); the watermark moves with them, atomically."""
        ...

    def replace_spend(self, table: pa.Table) -> None: ...

    def sync_days(self) -> None:
        """Bring the events' stored local days in line with the workspace's zone before a ship (DuckDB stores
        them; ClickHouse computes the day per row, so there it does nothing)."""
        ...

    def restate(self, table: pa.Table) -> None:
        """Put these rows in place of the stored rows with the same seqs (already shipped ones), atomically:
        readers see the old rows or the new ones, never neither nor both."""
        ...

    def query(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]: ...


class DuckDBEngine:
    """`zone`: the workspace's time zone, in which rows written get their stored day (store.sync_days); reads
    use the stored days only in the zone they were computed in, so any zone is safe here."""

    name = "duckdb"

    def __init__(self, conn: Any, zone: str = "UTC") -> None:
        self.conn, self.zone = conn, zone

    def watermark(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(watermark), 0) FROM ship_state").fetchall()[0][0])

    def append(self, table: pa.Table) -> None:
        from qunflow.analytics.store import insert_events  # duckdb is imported when a store is opened, not before

        self._in_transaction("incoming", table, (
            self._sync_days,
            insert_events("incoming", self.zone),
            "INSERT OR REPLACE INTO ship_state SELECT 1, max(seq) FROM incoming",
        ))

    def restate(self, table: pa.Table) -> None:
        from qunflow.analytics import by_member
        from qunflow.analytics.store import insert_events

        self._in_transaction("restated", table, (
            self._sync_days,
            "DELETE FROM events WHERE seq IN (SELECT seq FROM restated)",
            insert_events("restated", self.zone),
            lambda: by_member.resync(self.conn, "SELECT seq FROM restated"),  # the copy ordered by member follows
        ))

    def sync_days(self) -> None:
        """Store every event's day in this engine's zone (once after a change of zone; else a lookup)."""
        self.conn.execute("BEGIN")
        try:
            self._sync_days()
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _sync_days(self) -> None:
        from qunflow.analytics.store import sync_days

        sync_days(self.conn, self.zone)

    def replace_spend(self, table: pa.Table) -> None:
        self._in_transaction("incoming_spend", table, (
            "DELETE FROM spend",
            "INSERT INTO spend SELECT * FROM incoming_spend",
        ))

    def _in_transaction(self, name: str, table: pa.Table, statements: tuple[str | Callable[[], None], ...]) -> None:
        """All statements (SQL, or steps that run their own) or none: a failure rolls back, so rows and watermark
        never part."""
        self.conn.register(name, table)
        try:
            self.conn.execute("BEGIN")
            try:
                for statement in statements:
                    if callable(statement):
                        statement()
                    else:
                        self.conn.execute(statement)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        finally:
            self.conn.unregister(name)

    def query(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        from qunflow.analytics.store import day_zone

        text, used = for_duckdb(sql, params, day_zone(self.conn))
        cursor = self.conn.execute(text, used)
        return [d[0] for d in cursor.description], cursor.fetchall()


class ChdbEngine:
    """Embedded ClickHouse. The watermark is max(seq) of the events table itself: each append is one INSERT
    that forms one block (ONE_BLOCK), hence one part, which lands whole or not at all (an insert of one block
    into one partition of a MergeTree is atomic), so resuming from max(seq) neither skips nor repeats."""

    name = "chdb"

    def __init__(self, session: Any) -> None:
        self.session = session

    def watermark(self) -> int:
        result = self.session.query("SELECT max(seq) FROM events", "ArrowTable")
        value = result.column(0)[0].as_py() if result.num_rows else None
        return int(value or 0)

    def append(self, table: pa.Table) -> None:
        incoming = table  # noqa: F841 - chdb's Python() table function reads this local by name
        self.session.query(f"INSERT INTO events SELECT * FROM Python(incoming) {ONE_BLOCK}")

    def restate(self, table: pa.Table) -> None:
        """chdb has no transactions: the table is rebuilt beside the old one and swapped in (EXCHANGE is
        atomic), so a failure half-way leaves the old rows, never a gap the watermark (max seq) would hide."""
        restated = table  # noqa: F841 - read by name, as above
        self.session.query("DROP TABLE IF EXISTS events_restating SYNC")
        self.session.query("CREATE TABLE events_restating AS events")
        self.session.query("INSERT INTO events_restating SELECT * FROM events "
                           "WHERE seq NOT IN (SELECT seq FROM Python(restated))")
        self.session.query("INSERT INTO events_restating SELECT * FROM Python(restated)")
        self.session.query("EXCHANGE TABLES events AND events_restating")
        self.session.query("DROP TABLE events_restating SYNC")

    def sync_days(self) -> None:
        """No stored day on ClickHouse (queries compute it)."""

    def replace_spend(self, table: pa.Table) -> None:
        incoming_spend = table  # noqa: F841 - read by name, as above
        self.session.query("TRUNCATE TABLE spend")
        if table.num_rows:
            self.session.query("INSERT INTO spend SELECT * FROM Python(incoming_spend)")

    def query(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        return _rows(self.session.query(for_clickhouse(sql, params), "ArrowTable"))

    def command(self, sql: str) -> None:
        """A statement with no result (DDL, INSERT ... SELECT), as written."""
        self.session.query(sql)


def _rows(result: pa.Table) -> tuple[list[str], list[tuple[Any, ...]]]:
    names = list(result.column_names)
    columns = [result.column(i).to_pylist() for i in range(len(names))]
    return names, list(zip(*columns, strict=True)) if columns else []


class ClickHouseServerEngine:
    """A ClickHouse server over HTTP. The watermark is max(seq), as on chdb; see SERVER_SCHEMA for why
    events go to events_log. Failures to reach or use the server are `Unavailable` (HTTP 503, CLI exit 2)."""

    name = "clickhouse"

    def __init__(self, client: Any, target: ClickHouseTarget) -> None:
        self.client, self.target = client, target

    @classmethod
    def connect(cls, target: ClickHouseTarget) -> ClickHouseServerEngine:
        """Log in, create the database if missing (only then: a user may lack the right) and the tables."""
        import clickhouse_connect

        with _server_errors(target):
            client = clickhouse_connect.get_client(
                host=target.host, port=target.port, username=target.user, password=target.password,
                secure=target.secure, autogenerate_session_id=False, connect_timeout=5)
            found = client.command("SELECT count() FROM system.databases WHERE name = {db:String}",
                                   parameters={"db": target.database})
            if not found:
                client.command(f"CREATE DATABASE IF NOT EXISTS {target.database}")
            client.database = target.database
            for statement in SERVER_SCHEMA:
                client.command(statement)
            add_event_indexes("events_log", lambda sql: {row[0] for row in client.query(sql).result_rows},
                              client.command, EVENT_INDEXES)
        return cls(client, target)

    def watermark(self) -> int:
        with _server_errors(self.target):
            return int(self.client.command("SELECT max(seq) FROM events_log") or 0)

    def append(self, table: pa.Table) -> None:
        with _server_errors(self.target):
            self.client.insert_arrow("events_log", table)

    def restate(self, table: pa.Table) -> None:
        """One insert: events_log is a ReplacingMergeTree keyed by seq, and of rows with one seq the last
        inserted is the one kept (FINAL, behind the events view, applies that rule when reading)."""
        with _server_errors(self.target):
            self.client.insert_arrow("events_log", table)

    def sync_days(self) -> None:
        """No stored day on ClickHouse (queries compute it)."""

    def replace_spend(self, table: pa.Table) -> None:
        """Fill a fresh table and swap it in: readers see the old spend or the new one, never none."""
        staging = f"spend_{uuid.uuid4().hex}"
        with _server_errors(self.target):
            self.client.command(f"CREATE TABLE {staging} AS spend")
            try:
                if table.num_rows:
                    self.client.insert_arrow(staging, table)
                self.client.command(f"EXCHANGE TABLES spend AND {staging}")
            finally:
                with suppress(Exception):
                    self.client.command(f"DROP TABLE IF EXISTS {staging}")

    def query(self, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        with _server_errors(self.target):
            return _rows(self.client.query_arrow(for_clickhouse(sql, params)))

    def command(self, sql: str) -> None:
        """A statement with no result (DDL, INSERT ... SELECT), as written."""
        with _server_errors(self.target):
            self.client.command(sql)


@contextmanager
def _server_errors(target: ClickHouseTarget) -> Iterator[None]:
    """The server's refusals and network failures as one line naming the server, never the password."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    try:
        yield
    except DatabaseError as exc:
        code = getattr(exc, "code", None)
        if code in AUTH_FAILED:
            raise Unavailable(f"the ClickHouse server at {target.where} refused user {target.user!r}: check the "
                              "user and password in clickhouse_url (QUNFLOW_CLICKHOUSE_URL)",
                              zh=f"ClickHouse 服务器 {target.where} 拒绝了用户 {target.user!r}:请检查 "
                                 "clickhouse_url(QUNFLOW_CLICKHOUSE_URL)中的用户名和密码") from exc
        if code in NOT_ALLOWED:
            raise Unavailable(f"user {target.user!r} may not write to {target.where}: grant it CREATE, INSERT, "
                              f"SELECT and DROP on database {target.database}",
                              zh=f"用户 {target.user!r} 无权写入 {target.where}:请在数据库 {target.database} 上"
                                 "授予它 CREATE、INSERT、SELECT 和 DROP 权限") from exc
        if isinstance(exc, OperationalError):
            raise Unavailable(f"the ClickHouse server at {target.where} is unreachable: {_root_cause(exc)}",
                              zh=f"无法连接 ClickHouse 服务器 {target.where}:{_root_cause(exc)}") \
                from exc
        raise


def _root_cause(exc: BaseException) -> str:
    """`Connection refused` rather than three layers of HTTP client wrapping."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    text = str(exc).split("] ", 1)[-1] if str(exc).startswith("[Errno") else str(exc)
    return (text or type(exc).__name__).splitlines()[0][:200]


def add_event_indexes(table: str, names: Callable[[str], set[str]], run: Callable[[str], Any],
                      wanted: dict[str, str]) -> None:
    """Give a store made before EVENT_INDEXES (and EVENTS_BY_MEMBER: `wanted`) what its events `table` lacks,
    built for the rows it holds by a mutation (MATERIALIZE) that runs in the background: until it ends, the
    parts it has not reached are read as before (whole, or by seq). `names(sql)`: the names a query gives."""
    have = names(f"SELECT name FROM system.data_skipping_indices WHERE database = currentDatabase() AND "
                 f"table = '{table}' UNION ALL SELECT name FROM system.projections WHERE database = "
                 f"currentDatabase() AND table = '{table}'")
    for kind_name, spec in wanted.items():
        kind, name = kind_name.split()
        if name in have:
            continue
        run(f"ALTER TABLE {table} ADD {kind} IF NOT EXISTS {name} {spec}")
        run(f"ALTER TABLE {table} MATERIALIZE {kind} {name}")


_chdb_lock = threading.RLock()
_chdb_session: dict[str, Any] = {}


def _chdb(path: str) -> Any:
    """chdb keeps one session per process: switching workspaces closes the previous one. A store another process
    has open is store.AnalyticsBusy."""
    from chdb import session as chdb_session

    if _chdb_session.get("path") != path:
        if "session" in _chdb_session:
            _chdb_session.pop("path")
            _chdb_session.pop("session").close()
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            created = chdb_session.Session(path)
        except RuntimeError as exc:
            if _held_elsewhere(Path(path) / "status"):
                from qunflow.analytics.store import AnalyticsBusy

                raise AnalyticsBusy(f"the analytics store {path} is in use by another process",
                                    zh=f"分析库 {path} 正被另一个进程占用") from exc
            raise
        for statement in CLICKHOUSE_SCHEMA:
            created.query(statement)
        add_event_indexes("events", lambda sql: set(str(created.query(sql, "TabSeparated")).split()),
                          created.query, {**EVENT_INDEXES, **EVENTS_BY_MEMBER})
        _chdb_session.update(path=path, session=created)
    return _chdb_session["session"]


def _held_elsewhere(status: Path) -> bool:
    """Whether another process holds the lock ClickHouse takes on its data directory's status file (flock)."""
    import fcntl

    try:
        with status.open("rb") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(file, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return False


_server_lock = threading.Lock()
_servers: dict[ClickHouseTarget, ClickHouseServerEngine] = {}


def _server(target: ClickHouseTarget) -> ClickHouseServerEngine:
    """One logged-in client per server and database, kept for the process (it pools its connections)."""
    with _server_lock:
        if target not in _servers:
            _servers[target] = ClickHouseServerEngine.connect(target)
        return _servers[target]


@contextmanager
def open_engine(ws: Workspace, *, read_only: bool = False, wait: bool = True) -> Iterator[Engine]:
    """The workspace's analytics engine. `read_only` opens an embedded DuckDB file without taking its
    write lock (the file must exist); without `wait`, a DuckDB file another process holds is refused at once
    (store.AnalyticsBusy). The other engines ignore both (a chdb store another process holds is AnalyticsBusy at
    once, with no wait)."""
    name = ws.settings.analytics_engine
    if name == "duckdb":
        from qunflow.analytics.store import connect

        with connect(ws.settings.analytics_file, read_only=read_only, wait=wait) as conn:
            yield DuckDBEngine(conn, ws.settings.timezone)
    elif name == "chdb":
        try:
            import chdb  # noqa: F401
        except ImportError as exc:
            raise InvalidInput("analytics_engine = chdb needs the chdb package: pip install 'qunflow[clickhouse]'",
                               zh="analytics_engine = chdb 需要安装 chdb 包:pip install 'qunflow[clickhouse]'") \
                from exc
        with _chdb_lock:
            yield ChdbEngine(_chdb(ws.settings.analytics_file))
    elif name == "clickhouse":
        target = ws.settings.clickhouse
        try:
            import clickhouse_connect  # noqa: F401
        except ImportError as exc:
            raise InvalidInput("analytics_engine = clickhouse needs the clickhouse-connect package: "
                               "pip install 'qunflow[clickhouse]'",
                               zh="analytics_engine = clickhouse 需要安装 clickhouse-connect 包:"
                                  "pip install 'qunflow[clickhouse]'") from exc
        yield _server(target)
    else:
        raise InvalidInput(f"analytics_engine must be one of {', '.join(ENGINES)}, not {name!r}",
                           zh=f"analytics_engine 须为以下之一:{', '.join(ENGINES)};收到的是 {name!r}")
