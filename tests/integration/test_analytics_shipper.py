"""The shipper moves each event to DuckDB exactly once, resuming from its watermark."""

from __future__ import annotations

import duckdb

from qunflow.analytics.shipper import ship
from qunflow.services.ingest import ingest_batch
from qunflow.workspace import Workspace


def batch(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"event_id": f"{prefix}{i}", "type": "message", "ts": "2026-03-01T08:00:00+08:00", "member_id": "m"}
            for i in range(n)]


def shipped(ws: Workspace) -> tuple[int, int, int]:
    with duckdb.connect(ws.settings.analytics_file, read_only=True) as duck:
        count, distinct = duck.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()[0]
        watermark = duck.execute("SELECT watermark FROM ship_state").fetchall()[0][0]
    return count, distinct, watermark


def test_ship_in_chunks_resumes_and_never_duplicates(any_workspace: Workspace) -> None:
    ingest_batch(any_workspace.engine, batch("a", 250))
    assert ship(any_workspace, chunk=100) == 250
    assert ship(any_workspace, chunk=100) == 0  # nothing new: idempotent
    ingest_batch(any_workspace.engine, batch("b", 30) + batch("a", 10))  # re-sent ids are not new events
    assert ship(any_workspace) == 30
    count, distinct, watermark = shipped(any_workspace)
    assert count == distinct == 280 and watermark == 280


def test_a_shipper_that_died_between_chunks_continues_where_it_stopped(workspace: Workspace) -> None:
    ingest_batch(workspace.engine, batch("a", 120))
    ship(workspace, chunk=50)
    # Simulate a crash after the first committed chunk: roll the store back to that state.
    with duckdb.connect(workspace.settings.analytics_file) as duck:
        duck.execute("DELETE FROM events WHERE seq > 50")
        duck.execute("UPDATE ship_state SET watermark = 50")
    assert ship(workspace, chunk=50) == 70
    assert shipped(workspace) == (120, 120, 120)


def test_spend_is_refreshed_on_every_ship(workspace: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qunflow.services.spend import import_spend

    path = tmp_path / "spend.csv"
    path.write_text("channel,day,amount\nads,2026-03-01,100\nads,2026-03-02,50.5\n")
    import_spend(workspace, path)
    ship(workspace)
    path.write_text("channel,day,amount,currency\nads,2026-03-02,70,cny\n")
    import_spend(workspace, path)  # the same channel and day is replaced
    ship(workspace)
    with duckdb.connect(workspace.settings.analytics_file, read_only=True) as duck:
        assert duck.execute("SELECT sum(amount), count(*) FROM spend").fetchall()[0] == (170, 2)
