"""A bulk import into SQLite builds the event log's secondary indexes at its end (store/event_indexes.py): the
same rows as with the indexes kept, the indexes there again however the import ends, and an interrupted import's
indexes built by the next open of the workspace, but not while an import still holds them."""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, select

from qunflow.errors import InvalidInput
from qunflow.services.fileimport import IMPORT_CACHE_KIB, import_event_file
from qunflow.store import event_indexes
from qunflow.store.tables import events
from qunflow.workspace import init_workspace, open_workspace

ROWS = 3_000


def write_jsonl(path: Path, rows: int, start: int = 0) -> Path:
    lines = [f'{{"event_id": "e{i}", "type": "message", "ts": "2026-03-01T00:00:00Z", "member_id": "m{i % 97}"}}\n'
             for i in range(start, start + rows)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def indexes(home: Path) -> set[str]:
    with sqlite3.connect(home / "qunflow.db") as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return names & set(event_indexes.DEFERRED)


def stored(home: Path) -> list[tuple[object, ...]]:
    ws = open_workspace(home)
    with ws.engine.connect() as conn:
        rows = [tuple(row)[:-1] for row in conn.execute(select(events).order_by(events.c.seq))]  # not received_at
    ws.close()
    return rows


def test_a_bulk_import_builds_the_indexes_at_its_end_and_stores_the_same_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_indexes, "MIN_ROWS", ROWS // 2)
    path = write_jsonl(tmp_path / "events.jsonl", ROWS)
    seen: dict[str, list[set[str]]] = {}
    for label, minimum in (("deferred", ROWS // 2), ("kept", ROWS * 10)):
        monkeypatch.setattr(event_indexes, "MIN_ROWS", minimum)
        home = tmp_path / label
        ws = init_workspace(home)
        seen[label] = []
        result = import_event_file(ws.engine, path, chunk=1_000, on_progress=lambda _, h=home, s=seen[label]:
                                   s.append(indexes(h)))
        assert result.stored == ROWS and not result.errors
        ws.close()
        assert indexes(home) == set(event_indexes.DEFERRED)
    assert seen["deferred"] == [set()] * 3 and seen["kept"] == [set(event_indexes.DEFERRED)] * 3
    assert stored(tmp_path / "deferred") == stored(tmp_path / "kept")


def test_the_import_gives_its_cache_back_before_the_indexes_are_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's sorter takes as much memory as the cache allows: the import's large cache goes first."""
    monkeypatch.setattr(event_indexes, "MIN_ROWS", ROWS // 2)
    ws = init_workspace(tmp_path / "ws")
    statements: list[str] = []
    event.listen(ws.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    import_event_file(ws.engine, write_jsonl(tmp_path / "events.jsonl", ROWS), chunk=1_000)
    ws.close()
    sizes = [(at, text) for at, text in enumerate(statements) if text.startswith("PRAGMA cache_size=")]
    built = [at for at, text in enumerate(statements) if text.startswith("CREATE INDEX")]
    assert [text for _, text in sizes] == [f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}", "PRAGMA cache_size=-2000"]
    assert len(built) == len(event_indexes.DEFERRED) and sizes[1][0] < min(built)
    assert "PRAGMA shrink_memory" in statements[sizes[1][0]:min(built)]


def test_a_small_import_into_a_larger_log_keeps_the_indexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_indexes, "MIN_ROWS", 100)
    ws = init_workspace(tmp_path / "ws")
    import_event_file(ws.engine, write_jsonl(tmp_path / "first.jsonl", ROWS), chunk=1_000)
    seen: list[set[str]] = []
    result = import_event_file(ws.engine, write_jsonl(tmp_path / "more.jsonl", 500, start=ROWS), chunk=100,
                               on_progress=lambda _: seen.append(indexes(tmp_path / "ws")))
    ws.close()
    assert result.stored == 500 and seen == [set(event_indexes.DEFERRED)] * 5


def test_an_import_stopped_by_an_error_builds_the_indexes_again(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_indexes, "MIN_ROWS", 100)
    ws = init_workspace(tmp_path / "ws")
    path = write_jsonl(tmp_path / "events.jsonl", ROWS)
    with path.open("ab") as handle:  # an undecodable last line: the import stops after the chunks before it
        handle.write(b"\xff\n")
    seen: list[set[str]] = []
    with pytest.raises(InvalidInput):
        import_event_file(ws.engine, path, chunk=1_000, on_progress=lambda _: seen.append(indexes(tmp_path / "ws")))
    ws.close()
    assert seen and seen[0] == set()
    assert indexes(tmp_path / "ws") == set(event_indexes.DEFERRED)


def test_open_builds_the_indexes_an_interrupted_import_left_out_unless_an_import_still_runs(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    init_workspace(home).close()
    with sqlite3.connect(home / "qunflow.db") as db:  # what a killed import leaves
        for name in event_indexes.DEFERRED:
            db.execute(f"DROP INDEX {name}")
    with (home / "qunflow.db-import.lock").open("a") as held:  # an import of this database still runs
        fcntl.flock(held, fcntl.LOCK_EX)
        open_workspace(home).close()
        assert indexes(home) == set()
    open_workspace(home).close()
    assert indexes(home) == set(event_indexes.DEFERRED)


def test_a_running_serves_sweep_builds_the_indexes_an_import_killed_meanwhile_left_out(tmp_path: Path) -> None:
    from qunflow.services.recovery import Sweeper

    home = tmp_path / "ws"
    init_workspace(home).close()
    ws = open_workspace(home)  # serve opened the workspace before the import was killed
    sweep = Sweeper(ws)
    with sqlite3.connect(home / "qunflow.db") as db:
        for name in event_indexes.DEFERRED:
            db.execute(f"DROP INDEX {name}")
    with (home / "qunflow.db-import.lock").open("a") as held:  # while the import still runs: left alone
        fcntl.flock(held, fcntl.LOCK_EX)
        sweep()
        assert indexes(home) == set()
    sweep()
    ws.close()
    assert indexes(home) == set(event_indexes.DEFERRED)
