"""Merging the parts of the ClickHouse facts tables (facts_clickhouse_sql.py), which maintenance
(facts_clickhouse.py) calls after each write.

Every catch-up adds a part to each of these tables, and FINAL reads two parts or more by merging them as it goes.
At 1M members on chdb (bench/bench_facts_parts.py, three runs) the dashboard page took 0.60-0.67 s of CPU with
one part per table, 0.92-1.45 s with 2 to 5 and up to 1.26 s with 6 to 8; both slices 0.19-0.22 s, 0.33-0.43 s
and up to 0.52 s: the cost is in the step from one part to two.
Merging (OPTIMIZE ... FINAL, ClickHouse's own atomic swap of the parts for one, which changes what is stored but
never what the views read) rewrites the whole table, whatever the catch-up added: 0.82-0.90 s of CPU for the
four tables after 50,000 events, 0.41-0.42 s for the two member tables after 20. So after a catch-up merge_parts
merges only a table holding more than MAX_PARTS active parts: under a live stream every metrics read catches up
first, and reads every 2 s pay a full merge once in MAX_PARTS, the reads little more than with two parts. A
rebuild, a merge of members or its undo and an erasure (rare, heavy anyway) merge every table left with more than
one part. Plain
OPTIMIZE (no FINAL) lets the merge selector choose: at 1M it merged the small parts alone (0.08 s, two parts
left, reads no faster), nothing, or the big part with a small one (0.76-0.82 s), so it is not used.
ClickHouse's background merges stay free to act: a server's always, chdb's while a process holds the store open,
which `qunflow serve` does (engines._chdb keeps one session per process) and a CLI command only while it runs;
under a stream of 20-event catch-ups every 2 s they kept the member tables of a held store at two parts.
"""

from __future__ import annotations

from typing import Any

# The tables a catch-up adds parts to, merged by merge_parts.
LOG_TABLES = ("member_facts_log", "member_days_log", "landing_links_log", "landing_facts_log", "landing_days_log")
# After a catch-up, a facts table is merged only when it holds more than this many active parts: the reads cost
# about the same with 2 to 5 (module docstring); after a rebuild, a merge of members or its undo and an erasure,
# each table is merged into one.
MAX_PARTS = 4
ABORTED = 236  # ClickHouse's error code for a merge cancelled, as by SYSTEM STOP MERGES


def merge_parts(engine: Any, max_parts: int = 1) -> None:
    """Merge each facts table holding more than `max_parts` active parts into one (OPTIMIZE ... FINAL): FINAL
    then reads it without merging. A table whose merges are stopped (SYSTEM STOP MERGES) is left as it is."""
    tables = engine.query("SELECT table FROM system.parts WHERE database = currentDatabase() AND active "
                          f"AND table IN {LOG_TABLES!r} GROUP BY table HAVING count() > {int(max_parts)}", {})[1]
    for (table,) in tables:
        try:
            engine.command(f"OPTIMIZE TABLE {table} FINAL")
        except Exception as exc:
            if not _aborted(exc):
                raise


def _aborted(exc: Exception) -> bool:
    """Whether ClickHouse refused the merge as ABORTED (merges stopped). clickhouse-connect's errors carry the
    server's code; chdb's ChdbError carries only the message ("Code: 236. DB::Exception: ... (ABORTED)")."""
    code = getattr(exc, "code", None)
    return code == ABORTED if code is not None else "(ABORTED)" in str(exc)
