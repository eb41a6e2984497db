"""Engine creation (SQLite in WAL mode or PostgreSQL) and schema migrations."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from qunflow.errors import InvalidInput
from qunflow.store.memo import forget_all
from qunflow.store.postgres import (
    UNSYNCED,
    Statement,
    commit_at_level,
    commit_synced,
    one_query,
    ping_when_stale,
    shared_cursor,
)
from qunflow.store.secure_delete import mark

T = TypeVar("T")
log = logging.getLogger("qunflow")


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and route them to psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _sqlite_pragmas(synchronous: str) -> Any:
    if synchronous.upper() not in ("FULL", "NORMAL"):
        raise InvalidInput(f"sqlite_synchronous must be full or normal, not {synchronous!r}",
                           zh=f"sqlite_synchronous 须为 full 或 normal,收到的是 {synchronous!r}")

    def apply(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed (acknowledged) batch survives a killed process and a power cut.
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        # Deleted and rewritten bytes are zeroed, not left in free space: an erasure then needs no VACUUM
        # of the whole file (store.secure_delete).
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
        record.info["qf_sync"] = record.info["qf_sync_own"] = synchronous.upper()

    return apply


class DeferredSync:
    """The scope `sync_deferred` opened: `wrote` says whether a write ran in it (so whether a synced commit
    is owed at its end)."""

    __slots__ = ("wrote",)

    def __init__(self) -> None:
        self.wrote = False


# Set inside `sync_deferred()`: connections checked out then commit without waiting for the disk.
_SYNC_DEFERRED: ContextVar[DeferredSync | None] = ContextVar("qf_sync_deferred", default=None)


@contextmanager
def sync_deferred() -> Iterator[DeferredSync]:
    """Commits on connections checked out inside this block do not wait for the disk: SQLite commits with
    synchronous=NORMAL (WAL), PostgreSQL with synchronous_commit=off. Such a commit survives a killed
    process at once; a power cut or an OS crash may lose it until the next synced commit, which makes it
    durable too, because both databases write their log in order and sync it up to that commit. So a
    caller that acknowledges nothing inside the block and ends with one synced commit (inbound.dispatch:
    the update's handled mark, before the platform gets its answer) pays one sync instead of one per
    transaction, and loses nothing it acknowledged."""
    scope = DeferredSync()
    token = _SYNC_DEFERRED.set(scope)
    try:
        yield scope
    finally:
        _SYNC_DEFERRED.reset(token)


@contextmanager
def unsynced() -> Iterator[None]:
    """Commits on connections checked out inside this block do not wait for the disk, with no synced
    commit owed after them: only for writes that are safe to lose, such as a mark that saves repeating
    idempotent work."""
    with sync_deferred():
        yield


def _note_write(conn: Connection) -> None:
    """A write ran on `conn`: its transaction holds writes, and the open `sync_deferred` scope, if any, owes a
    synced commit."""
    conn.info["qf_wrote"] = True
    note_write()


def note_write() -> None:
    """A write committed around SQLAlchemy on a connection of its own (the send limiter's): the open
    `sync_deferred` scope, if any, owes a synced commit, as for any other write."""
    scope = _SYNC_DEFERRED.get()
    if scope is not None:
        scope.wrote = True


def _writes_settled(conn: Connection) -> None:
    conn.info.pop("qf_wrote", None)


def _apply_level(dbapi_connection: Any, info: dict[str, Any], postgres: bool, *, deferred: bool) -> None:
    """Set the sync level of the connection's next commits (no transaction may be open): deferred, or the
    configured one."""
    if postgres:  # nothing sent: each commit carries its level (store.postgres.commit_at_level)
        info["qf_sync"] = "off" if deferred else "on"
        return
    wanted = "NORMAL" if deferred else info["qf_sync_own"]
    if info.get("qf_sync") != wanted:
        dbapi_connection.execute(f"PRAGMA synchronous={wanted}")
        info["qf_sync"] = wanted


def _sqlite_sync_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    _apply_level(dbapi_connection, record.info, False, deferred=_SYNC_DEFERRED.get() is not None)


def _postgres_sync_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    _apply_level(dbapi_connection, record.info, True, deferred=_SYNC_DEFERRED.get() is not None)


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, Callable[[Connection], None]] = weakref.WeakKeyDictionary()


def _one_writer_at_a_time(engine: Engine) -> None:
    """SQLite lets one connection write at a time; the others retry in its busy handler, which sleeps in
    growing steps (1, 2, 5, 10 ms ... up to 100 ms). Within one process, a write transaction takes this lock
    at its first write and gives it back once its COMMIT or ROLLBACK has run, so writers queue here and go
    as soon as SQLite's own write lock is free. Readers (WAL) never wait.

    Given back after the driver's commit, not at SQLAlchemy's "commit" event, which comes before it: the next
    writer then met the commit still running (its disk sync), slept in the busy handler while holding this
    lock, and every writer behind it waited too (the first second of 100 joins/s in
    bench/bench_connectors.py: p99 0.5 s)."""
    lock = threading.RLock()

    def take(conn: Connection) -> None:
        if "qf_writer" not in conn.info and not conn.info.get("qf_scratch"):
            lock.acquire()
            conn.info["qf_writer"] = True

    @event.listens_for(engine, "before_cursor_execute")
    def _take(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip()[:7].upper().startswith(WRITES):
            _note_write(conn)
            take(conn)

    def give_back(connection: Any) -> None:
        # `connection`: the pool's proxy of the driver's connection; its info is the SQLAlchemy connection's
        try:
            info = connection.info
        except NotImplementedError:  # the engine's first-connect probe, which has no info: no writer of ours
            return
        if info.pop("qf_writer", None):
            lock.release()

    dialect = engine.dialect  # this engine's own: the wrappers below change no other engine
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(connection: Any) -> None:
        commit(connection)
        give_back(connection)  # a failed COMMIT leaves the transaction open: its rollback gives the lock back

    def do_rollback(connection: Any) -> None:
        try:
            rollback(connection)
        finally:
            give_back(connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign, assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign, assignment]
    _WRITER_LOCKS[engine] = take


def before_driver_write(conn: Connection) -> None:
    """Call before writing through the driver's own cursor (which SQLAlchemy's events do not see): takes
    this process's SQLite writer lock as any other write does. Without it, a transaction whose first write
    goes around the lock holds SQLite's write lock while its next write waits for ours, held by a writer
    that waits in SQLite's busy handler for it: both stall until busy_timeout ends one with "database is
    locked" (a gate pass's first write is its event). Begins SQLAlchemy's transaction when none is open, as
    its own statements do (autobegin): the connection's commit() or rollback() then ends the write, and gives
    the lock back."""
    if not conn.in_transaction():
        conn.begin()
    _note_write(conn)
    take = _WRITER_LOCKS.get(conn.engine)
    if take is not None:
        take(conn)


@contextmanager
def scratch_only(conn: Connection) -> Iterator[None]:
    """Writes on `conn` inside this block go to its TEMPORARY tables only: they do not take this process's
    SQLite writer lock, so a long computation into a scratch table (engagement levels at a million members)
    leaves the webhook path's writers alone. SQLite itself locks only the connection's temp database for
    them. Writing a real table inside the block is a bug (it would go around the lock)."""
    conn.info["qf_scratch"] = True
    try:
        yield
    finally:
        conn.info.pop("qf_scratch", None)


# --- one transaction per inbound update -----------------------------------------------------------------

class UpdateTransaction:
    """The connection the handlers of one inbound update share (services.inbound.dispatch), and so its writes'
    transaction: `transaction()` and `connection()` hand it out inside `update_transaction()`. Its writes are
    committed at the points the update needs them durable-on-kill, not at each handler's end:
    - `commit_update()` before each platform call (a send is recorded before it goes; the send's own result
      is then committed with the update's next commit, before any other call);
    - `end()`, with the update's handled mark, in a synced commit that makes the earlier ones durable too.
    Its first transaction waits for no disk (`sync_deferred`). SQLite sets the level per connection, before a
    transaction begins: after a commit, the update's next transaction may be its last, so it is synced.
    PostgreSQL's COMMIT carries its own level (store.postgres.commit_at_level): only `end()`'s is synced. On
    PostgreSQL, writes that take a lock shared by every process (the event log's) may be held back
    (`held_writes`) and run as the last statements before each COMMIT."""

    __slots__ = ("engine", "conn", "scope", "held", "wrote_held")

    def __init__(self, engine: Engine, scope: DeferredSync) -> None:
        self.engine = engine
        self.conn: Connection | None = None
        self.scope = scope  # scope.wrote: the update wrote something (committed or not)
        self.held: dict[str, HeldWrite] = {}  # table -> its writes held back until the commit
        self.wrote_held = False  # a held write ran before the commit (a read of its table): its lock is held

    def connection(self) -> Connection:
        if self.conn is None:
            self.conn = self.engine.connect()
        if not self.conn.in_transaction():  # begun explicitly: read_plain's reads begin none, and commit()
            self.conn.begin()               # must end what they began on the driver too
        return self.conn

    @contextmanager
    def before_begin(self) -> Iterator[Connection]:
        """The update's connection before its transaction begins, for its first read on the driver's cursor
        (store.plain.read_plain): on PostgreSQL in autocommit, so a read after which the update has nothing
        to do is one round trip, with no BEGIN before it (psycopg sends one of its own) and no ROLLBACK
        after. SQLite begins no transaction for a read anyway. Reads only: a write here would commit alone."""
        if self.conn is None:
            self.conn = self.engine.connect()
        conn = self.conn
        driver: Any = conn.connection.driver_connection
        if conn.in_transaction() or not is_postgres(conn) or driver.info.transaction_status != 0:  # 0: idle
            yield conn
            return
        driver.autocommit = True  # no round trip: psycopg only notes it while no transaction is open
        try:
            yield conn
        finally:
            driver.autocommit = False

    @property
    def pending(self) -> bool:
        """Writes not committed yet."""
        return self.conn is not None and bool(self.conn.info.get("qf_wrote"))

    def commit(self) -> None:
        """Commit what is pending (a transaction that only read is ended). SQLite: the update's next transaction
        may be its last, so it is synced."""
        if self.conn is None:
            return
        if self.pending:
            self._commit_with_held()
        elif self.conn.in_transaction():
            self.conn.rollback()
        if not is_postgres(self.conn):
            _apply_level(self.conn.connection.driver_connection, self.conn.info, False, deferred=False)

    def end(self, last: Callable[[Connection], object]) -> None:
        """Write `last` (the handled mark) and commit with a synced commit: with the open transaction when it
        began synced (PostgreSQL: always, the level goes with the COMMIT), else in one of its own after it."""
        conn = self.connection()
        if is_postgres(conn):
            _apply_level(None, conn.info, True, deferred=False)
        elif conn.info.get("qf_sync") != conn.info.get("qf_sync_own"):
            self.commit()
        last(conn)
        self._commit_with_held()

    def _commit_with_held(self) -> None:
        """COMMIT, the held writes its last statements, sent to PostgreSQL with it in one round trip, as one query
        (store.postgres.one_query: one statement's client time for them all): a lock they take (the event log's)
        is then held for the server's work only, not also while this process waits for a busy CPU between the
        statements, nor while the disk syncs (a synced commit is made as an unsynced one, then a synced commit of
        its own once the lock is given back). A transaction whose writes were all held (nothing of it sent yet) sends
        its BEGIN in that query too, where psycopg would send it alone first."""
        conn = self.conn
        assert conn is not None
        if self.held or self.wrote_held:
            driver: Any = conn.connection.driver_connection
            driver_error = conn.dialect.loaded_dbapi.Error
            alone = driver.info.transaction_status == 0  # idle: psycopg has not begun the transaction
            # not under the lock: a synced commit waits for the disk below, once the lock is given back
            statements: list[Statement] = [("BEGIN", None)] if alone else []
            statements.append((UNSYNCED, None))
            for table in list(self.held):
                statements.extend(self.held.pop(table).statements())
            try:
                query = one_query(driver, [*statements, ("COMMIT", None)])
                if alone:
                    _run_alone(driver, query)
                else:
                    shared_cursor(driver).execute(query, prepare=False)
                self.wrote_held = False  # the commit gave the held writes' locks back
                if conn.info.get("qf_sync", "on") == "on":
                    commit_synced(driver)
            except driver_error as exc:  # as SQLAlchemy raises it: retry_busy knows a deadlock by it
                raise DBAPIError.instance("COMMIT", None, exc, driver_error) from exc
        conn.commit()  # SQLAlchemy's side (the driver's COMMIT, if it ran above, has nothing left to end)


def _run_alone(driver: Any, query: str) -> None:
    """A query that begins and commits a transaction itself, run in autocommit (psycopg then sends no BEGIN of its
    own). A failure in it leaves that transaction open, in error: it is rolled back here, so the connection is
    back out of autocommit and idle whatever happened (the caller's rollback then has nothing left to end)."""
    driver.autocommit = True  # no round trip: psycopg only notes it while no transaction is open
    try:
        shared_cursor(driver).execute(query, prepare=False)
    finally:
        if driver.info.transaction_status != 0:
            driver.rollback()
        driver.autocommit = False


class HeldWrite(Protocol):
    """Writes to one table that an inbound update holds back until just before its COMMIT (held_writes): PostgreSQL
    statements with their parameters, run in order."""

    def statements(self) -> list[Statement]: ...


_UPDATE: ContextVar[UpdateTransaction | None] = ContextVar("qf_update_transaction", default=None)


@contextmanager
def update_transaction(engine: Engine) -> Iterator[UpdateTransaction]:
    """One inbound update's shared transaction (UpdateTransaction); rolled back when the block fails. Its
    commits wait for no disk (`sync_deferred`) until the update commits before a platform call."""
    with sync_deferred() as scope:
        tx = UpdateTransaction(engine, scope)
        token = _UPDATE.set(tx)
        try:
            yield tx
        finally:
            _UPDATE.reset(token)
            if tx.conn is not None:
                tx.conn.close()  # rolls back what was not committed


@contextmanager
def _update_or(engine: Engine, own: Callable[[], AbstractContextManager[Connection]]) -> Iterator[Connection]:
    """The open inbound update's connection (on this engine), else one of `own`."""
    tx = _UPDATE.get()
    if tx is not None and tx.engine is engine:
        yield tx.connection()
    else:
        with own() as conn:
            yield conn


def transaction(engine: Engine) -> AbstractContextManager[Connection]:
    """A transaction to write in: `engine.begin()`, or inside an inbound update the update's own, whose
    writes commit with the update's next commit (UpdateTransaction) and whose failure fails the update."""
    return _update_or(engine, engine.begin)


def connection(engine: Engine) -> AbstractContextManager[Connection]:
    """A connection to read on: `engine.connect()`, or inside an inbound update the update's own, which
    sees the update's writes not yet committed."""
    return _update_or(engine, engine.connect)


def held_writes(conn: Connection) -> dict[str, HeldWrite] | None:
    """Where to hold writes back until the transaction's COMMIT (keyed by table): the open inbound update's,
    when `conn` is its connection on PostgreSQL; else None (write now). A held write runs as the last
    statement before each commit of the update, and before any statement of the update that names its table
    (the update reads its own writes); a rollback drops it."""
    tx = _UPDATE.get()
    if tx is None or tx.conn is not conn or conn.dialect.name != "postgresql" or conn.in_nested_transaction():
        return None  # in a savepoint: written now, so that a rollback to it takes them back too
    return tx.held


def update_to_lock_in(engine: Engine) -> tuple[Connection, dict[str, HeldWrite]] | None:
    """The open inbound update's connection on PostgreSQL and its held writes, for row locks that other
    processes wait for (the shared send limit's): taken there, they are held until the update's next commit
    only, whose one query writes them last and which never waits for the disk (_commit_with_held). None when no
    update is open on `engine`, when its writes cannot be held (held_writes), or when it holds the event log's
    lock already (a held write ran before a read of its table): a row lock taken after that lock could make a
    cycle with a process that waits for it in its commit while holding such a row."""
    tx = _UPDATE.get()
    if tx is None or tx.engine is not engine or not is_postgres(engine) or tx.wrote_held:
        return None
    conn = tx.connection()
    held = held_writes(conn)
    return None if held is None else (conn, held)


def hold_first(held: dict[str, HeldWrite], table: str, write: HeldWrite) -> None:
    """Hold `write` back to run before the writes held already (the commit runs them in the order held): for
    row locks every process must take before the event log's, one lock order."""
    rest = dict(held)
    held.clear()
    held[table] = write
    held.update(rest)


_NAMES_TABLE: dict[str, re.Pattern[str]] = {}


def write_held(conn: Connection, statement: str | None = None) -> None:
    """Run the writes the open update holds back on `conn`: all of them, or those to a table `statement`
    names."""
    tx = _UPDATE.get()
    if tx is None or not tx.held or tx.conn is not conn:
        return
    for table in list(tx.held):
        if statement is not None:
            names = _NAMES_TABLE.get(table)
            if names is None:
                names = _NAMES_TABLE[table] = re.compile(rf"\b{re.escape(table)}\b", re.IGNORECASE)
            if not names.search(statement):
                continue
        held = tx.held.pop(table)  # popped first: its own statements do not run it again
        tx.wrote_held = True
        cursor = shared_cursor(conn.connection.driver_connection)
        driver_error = conn.dialect.loaded_dbapi.Error
        for sql, params in held.statements():
            try:
                cursor.execute(sql, params)
            except driver_error as exc:  # as SQLAlchemy raises it: retry_busy knows a deadlock by it
                raise DBAPIError.instance(sql, params, exc, driver_error) from exc


def _before_savepoint(conn: Connection, _name: str) -> None:
    write_held(conn)


def _drop_held(conn: Connection) -> None:
    tx = _UPDATE.get()
    if tx is not None and tx.conn is conn:
        tx.held.clear()
        tx.wrote_held = False


def commit_update() -> None:
    """Before a platform call or a wait: commit the open inbound update's writes (none open: nothing to do)."""
    tx = _UPDATE.get()
    if tx is not None:
        tx.commit()


def _update_transactions(engine: Engine) -> None:
    """Note which transactions hold writes, and commit an open update's writes before another connection
    is taken inside it: code that does not use the update's connection still sees them, and its writes do
    not wait for SQLite's write lock behind them."""
    event.listen(engine, "commit", write_held)  # first: its writes are settled by the commit too
    event.listen(engine, "commit", _writes_settled)
    event.listen(engine, "rollback", _drop_held)
    event.listen(engine, "savepoint", _before_savepoint)  # a rollback to it must not take them back
    event.listen(engine, "rollback", _writes_settled)

    @event.listens_for(engine, "checkout")
    def _commit_update_first(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        tx = _UPDATE.get()
        if tx is not None and tx.pending:
            tx.commit()


SQLITE_POOL = 20


def make_engine(url: str, *, sqlite_synchronous: str = "full") -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"database URL {url!r} is not valid", zh=f"数据库 URL {url!r} 无效") from exc
    if parsed.get_backend_name() == "sqlite":
        # A pool as large as the threads that write at once (8 hook threads, each with its update's connection and
        # sometimes a second, the page threads, the background loops): past pool_size, SQLAlchemy closes a
        # connection on its return and the next checkout opens a new one (file, WAL, pragmas) on the join path.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=SQLITE_POOL, max_overflow=SQLITE_POOL)
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous))
        event.listen(engine, "checkout", _sqlite_sync_on_checkout)
        _one_writer_at_a_time(engine)
        _update_transactions(engine)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql",
                           zh=f"不支持的数据库 {parsed.get_backend_name()!r}:请使用 sqlite 或 postgresql")
    engine = create_engine(url, pool_size=10, max_overflow=10)
    ping_when_stale(engine)  # first: the checkouts below act on a live connection
    event.listen(engine, "checkout", _postgres_sync_on_checkout)
    commit_at_level(engine)
    event.listen(engine, "before_cursor_execute", _noting_writes)
    _update_transactions(engine)
    return engine


def _noting_writes(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
    """PostgreSQL's writes noted for `sync_deferred` (SQLite's: by the writer lock's own listener); the writes
    an update holds back on a table the statement names run first."""
    write_held(conn, statement)
    if statement.lstrip()[:7].upper().startswith(WRITES):
        _note_write(conn)


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "qunflow.store:migrations")
    return config


# The newest migration in store/migrations/versions (a test checks it against Alembic's own head);
# a constant, so opening a workspace need not import Alembic.
SCHEMA_HEAD = "0021"


def head_revision() -> str | None:
    """The newest migration as Alembic sees it (slow: reads the migration scripts)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision. A SQLite file it creates is marked as written with
    secure_delete from the start (store.secure_delete)."""
    from alembic import command

    new_sqlite_file = engine.dialect.name == "sqlite" and schema_revision(engine) is None
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if new_sqlite_file:
            mark(conn)


def schema_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            return None


# Waits between tries when the database is busy, each after the driver's own wait (SQLite: busy_timeout):
# another process (a worker, the CLI) or a long transaction holds the write lock. Jittered, so writers
# that failed together do not come back together.
BUSY_WAITS = (0.05, 0.2, 0.8, 2.0, 5.0)
# PostgreSQL: serialization failure, deadlock detected (the transaction was rolled back: safe to run again).
_PG_RETRY = {"40001", "40P01"}


def is_busy(exc: BaseException) -> bool:
    """The database refused for now, not for good: SQLite's "database is locked"/"busy", or a PostgreSQL
    deadlock or serialization failure."""
    if not isinstance(exc, DBAPIError):
        return False
    message = str(exc.orig).lower()
    return ("database is locked" in message or "database is busy" in message
            or getattr(exc.orig, "sqlstate", None) in _PG_RETRY)


def retry_busy(work: Callable[[], T], *, waits: tuple[float, ...] = BUSY_WAITS) -> T:
    """Run `work` (whole transactions, safe to run again) and run it again while the database is busy.
    Inside an inbound update whose transaction holds writes from before `work`, the update is what runs
    again (inbound.dispatch)."""
    for wait in waits:
        tx = _UPDATE.get()
        held = tx is not None and tx.pending  # the update's writes before `work`: running it again would lose them
        try:
            return work()
        except DBAPIError as exc:
            if not is_busy(exc) or held:
                raise
            if tx is not None and tx.conn is not None:
                tx.conn.rollback()  # what `work` began in the update's transaction
            forget_all()  # rows `work` made and remembered (store/memo.py) were rolled back with it
            log.warning("the state database is busy (%s); trying again in %.2f s", type(exc.orig).__name__, wait)
            time.sleep(wait * random.uniform(1.0, 1.5))
    return work()


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """One transaction: everything inside commits together or not at all."""
    with engine.begin() as conn:
        yield conn
