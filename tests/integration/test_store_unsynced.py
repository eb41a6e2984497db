"""store.db.unsynced: a commit that skips SQLite's fsync, and the connection's setting restored after it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from qunflow.store.db import make_engine, unsynced


def synchronous(conn) -> int:  # type: ignore[no-untyped-def]
    return int(conn.connection.driver_connection.execute("PRAGMA synchronous").fetchone()[0])


def test_unsynced_commits_with_normal_and_restores_full(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="full")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    with engine.connect() as conn:
        assert synchronous(conn) == 2  # FULL
        with unsynced(conn):
            assert synchronous(conn) == 1  # NORMAL, for the commit below only
            with conn.begin():
                conn.execute(text("INSERT INTO t VALUES ('a')"))
        assert synchronous(conn) == 2
    with engine.connect() as conn:  # the pooled connection comes back as it was, the row is there
        assert synchronous(conn) == 2
        assert conn.execute(text("SELECT k FROM t")).scalars().all() == ["a"]
    engine.dispose()


def test_unsynced_restores_the_setting_when_the_work_fails(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="full")
    with engine.connect() as conn:
        try:
            with unsynced(conn), conn.begin():
                conn.execute(text("SELECT * FROM no_such_table"))
        except Exception:  # noqa: BLE001 - the failure itself is not what is tested
            pass
        assert synchronous(conn) == 2
    engine.dispose()
