"""A SQLite state file that keeps no byte of deleted data (P8's erasure), without rebuilding it each time.

Every connection of the state DB zeroes what it deletes or rewrites (`PRAGMA secure_delete=ON`, store.db): an
old version of a row stays neither in its page's free space nor on the freelist. A file written so since it
was made is marked (`MARK` in automation_state, written when `store.db.migrate` creates the file); after an
erasure it only needs its WAL emptied, which keeps old page images until `wal_checkpoint(TRUNCATE)`. A file an
older qunflow wrote may hold old rows in free space: the first erasure rebuilds it (`VACUUM`, during which
every writer of the file waits), then marks it.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.sqlite import insert

from qunflow.store.tables import automation_state

MARK = "sqlite_secure_delete"  # automation_state: every write this file has had zeroed the bytes it freed
log = logging.getLogger("qunflow")


def mark(conn: Connection) -> None:
    """Record that every write of this SQLite file zeroed what it freed (a new file, or one just rebuilt)."""
    conn.execute(insert(automation_state).values(name=MARK, value="always").on_conflict_do_nothing())


def is_marked(conn: Connection) -> bool:
    return conn.execute(select(automation_state.c.value).where(automation_state.c.name == MARK)).first() is not None


def leave_no_deleted_bytes(engine: Engine) -> None:
    """After an erasure on SQLite: no free space of the file and no WAL frame keeps the erased bytes. An
    unmarked file (an older qunflow's) is rebuilt first, once."""
    with engine.connect() as conn:
        marked = is_marked(conn)
        conn.commit()  # VACUUM runs outside a transaction
        if not marked:
            conn.exec_driver_sql("VACUUM")
            mark(conn)
            conn.commit()
        busy, _frames, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        conn.commit()
    if busy:  # a reader kept its snapshot past busy_timeout: the WAL was not emptied
        log.warning("the state database's WAL could not be emptied after an erasure (a long read held it); "
                    "old page images stay in qunflow.db-wal until the next erasure or a "
                    "`PRAGMA wal_checkpoint(TRUNCATE)`")
