"""On chdb an append is one block, so one part, which lands whole or not at all whatever the session's block
settings: the watermark, max(seq), never hides a gap left by an append cut short (engines.ONE_BLOCK)."""

from __future__ import annotations

import pytest

from qunflow.analytics.engines import open_engine
from qunflow.analytics.shipper import ship_into
from qunflow.services.ingest import ingest_batch
from qunflow.workspace import Workspace

pytest.importorskip("chdb", reason="the chdb tests need chdb: pip install -e '.[test]'")
SMALL_BLOCKS = {"max_block_size": 500, "min_insert_block_size_rows": 500, "max_insert_threads": 2}


def test_an_append_to_chdb_is_one_part_whatever_the_block_settings(workspace: Workspace) -> None:
    workspace.settings.analytics_engine = "chdb"
    assert not ingest_batch(workspace.engine, [
        {"event_id": f"e{i}", "type": "message", "ts": "2026-03-01T08:00:00+08:00", "member_id": f"m{i % 7}"}
        for i in range(5000)]).errors
    with open_engine(workspace) as engine:
        names = ", ".join(f"getSetting('{name}')" for name in SMALL_BLOCKS)
        before = dict(zip(SMALL_BLOCKS, engine.query(f"SELECT {names}", {})[1][0], strict=True))
        # Blocks of 500 rows, squashed to 500 in two streams: an INSERT ... SELECT would make ten or more parts.
        engine.command("SET " + ", ".join(f"{name} = {value}" for name, value in SMALL_BLOCKS.items()))  # type: ignore[attr-defined]
        engine.command("SYSTEM STOP MERGES events")  # type: ignore[attr-defined]
        try:
            assert ship_into(workspace, engine, chunk=10_000) == 5000
            assert engine.query("SELECT count(DISTINCT _part), count(), max(seq) FROM events", {})[1] == [
                (1, 5000, 5000)]
        finally:
            engine.command("SET " + ", ".join(f"{name} = {value}" for name, value in before.items()))  # type: ignore[attr-defined]
            engine.command("SYSTEM START MERGES events")  # type: ignore[attr-defined]
