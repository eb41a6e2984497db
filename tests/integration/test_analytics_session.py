"""analytics(ws): one connection per read, read-only while nothing is left to ship, spend written only when it
changed, and readers and the shipper of one process taking turns on the DuckDB file without an error."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from qunflow.analytics.shipper import analytics, ship
from qunflow.services.ingest import ingest_batch
from qunflow.services.spend import import_spend
from qunflow.workspace import Workspace


def events(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"event_id": f"{prefix}{i}", "type": "message", "ts": "2026-03-01T08:00:00+08:00", "member_id": "m"}
            for i in range(n)]


def spend_file(tmp_path: Path, amount: str) -> Path:
    path = tmp_path / f"spend-{amount}.csv"
    path.write_text(f"channel,day,amount\nads,2026-03-01,{amount}\n", encoding="utf-8")
    return path


def writable(engine: object) -> bool:
    try:
        engine.conn.execute("CREATE TEMP TABLE probe (x INT)")  # type: ignore[attr-defined]
        engine.conn.execute("DROP TABLE probe")  # type: ignore[attr-defined]
        engine.conn.execute("CREATE TABLE IF NOT EXISTS probe_main (x INT)")  # type: ignore[attr-defined]
        return True
    except duckdb.Error:
        return False


def test_a_current_store_is_read_only_and_new_events_or_spend_reopen_it_for_writing(
        workspace: Workspace, tmp_path: Path) -> None:
    ingest_batch(workspace.engine, events("a", 5))
    import_spend(workspace, spend_file(tmp_path, "100"))
    with analytics(workspace) as engine:  # first read: ships 5 events and the spend
        assert writable(engine)
        assert engine.query("SELECT count(*) FROM events", {})[1] == [(5,)]
    with analytics(workspace) as engine:  # nothing new: read-only, nothing written (spend is the same)
        assert not writable(engine)
    ingest_batch(workspace.engine, events("b", 2))
    with analytics(workspace) as engine:
        assert writable(engine) and engine.query("SELECT count(*) FROM events", {})[1] == [(7,)]
    import_spend(workspace, spend_file(tmp_path, "250.5"))  # the same day's spend, corrected
    with analytics(workspace) as engine:
        assert writable(engine)
        [(amount,)] = engine.query("SELECT amount FROM spend", {})[1]
        assert str(amount) == "250.5000"
    with analytics(workspace) as engine:
        assert not writable(engine)


def test_readers_and_the_shipper_of_one_process_take_turns(workspace: Workspace) -> None:
    ingest_batch(workspace.engine, events("a", 3))
    ship(workspace)
    failures: list[BaseException] = []
    reading = threading.Event()
    done = threading.Event()

    def reader() -> None:
        try:
            with analytics(workspace, ship_first=False) as engine:
                reading.set()
                done.wait(5)
                engine.query("SELECT count(*) FROM events", {})
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert reading.wait(5)
    ingest_batch(workspace.engine, events("b", 4))
    shipper = threading.Thread(target=lambda: failures.append(RuntimeError("shipped")) if ship(workspace) != 4
                               else None)
    shipper.start()  # waits for the read-only reader, then writes
    done.set()
    thread.join(10)
    shipper.join(10)
    assert failures == []
    with analytics(workspace, ship_first=False) as engine:
        assert engine.query("SELECT count(*) FROM events", {})[1] == [(7,)]


@pytest.mark.parametrize("engine_name", ["chdb"])
def test_other_engines_ship_spend_once_too(workspace: Workspace, tmp_path: Path, engine_name: str) -> None:
    pytest.importorskip("chdb")
    workspace.settings.analytics_engine = engine_name
    import_spend(workspace, spend_file(tmp_path, "12"))
    with analytics(workspace) as engine:
        [(amount,)] = engine.query("SELECT amount FROM spend", {})[1]
        assert str(amount).startswith("12")
    import_spend(workspace, spend_file(tmp_path, "13"))
    with analytics(workspace) as engine:
        [(amount,)] = engine.query("SELECT amount FROM spend", {})[1]
        assert str(amount).startswith("13")
