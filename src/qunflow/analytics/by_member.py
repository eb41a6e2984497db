"""A copy of the events' read columns ordered by member id, in a DuckDB store (issue 15): a catch-up of the
per-member facts (facts_duckdb.py) finds its members' events there without scanning the whole store. DuckDB has
no index a join uses, but it pushes a small set of ids into the scan of a table sorted by them, which then skips
the row groups outside it (20 members at 1M: 0.03 s of CPU against 0.33 s on the events in arrival order;
docs/metrics.md).

The copy holds every event with a member whose seq is at most the copy's highest (`upto`); the events shipped
since (the tail) are read from `events`, whose seqs grow with each append, until the tail is large enough to join
the copy as a run of its own sorted by member (`extend`, facts_duckdb). A copy of sorted runs prunes almost as
well as one sorted copy, and a run costs a sort of the tail alone: at 1M members (10.2M events) a lookup of 20
members took 18.5 ms of CPU in one sorted copy, 21.5 ms in a copy of 80% plus a sorted run of 20%, 72 ms with
that 20% as the tail; the run took 1.4 s to append, sorting the whole copy again 9.4 s (bench_by_member_runs.py,
docs/metrics.md). Runs grow with the copy (each a quarter of it), so they stay few: about ten from 1M to 10M
events. The rebuild of the facts sorts the copy whole again (`build`). A writer that rewrites stored events in
place keeps the copy so: `resync` (a restate, an erasure) or `drop` (a change of the stored days' zone). Built
only for stores large enough to gain from it (facts_rules.BY_MEMBER_MIN_EVENTS). No duckdb import here: the CLI
loads this module before it needs duckdb.
"""

from __future__ import annotations

from typing import Any

TABLE = "events_by_member"
# The columns of `events` that facts_duckdb's MEMBER_FACTS, MEMBER_DAYS and LANDING_ROWS read.
COLUMNS = ("seq, type, ts, member_id, visitor_id, channel, campaign, entry_point, group_key, referrer_id, "
           "amount, margin, properties, day")


def upto(conn: Any) -> int | None:
    """The copy's highest seq; None when there is no copy (or it is empty)."""
    found = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = "
                         "current_schema() AND NOT temporary", [TABLE]).fetchall()
    if not found[0][0]:
        return None
    top = conn.execute(f"SELECT max(seq) FROM {TABLE}").fetchall()[0][0]
    return None if top is None else int(top)


# The sort's memory while it builds the copy, beyond which DuckDB spills it to disk: 10.2M events (1M members)
# took 5.6 s and a peak of 1.1 GiB so, against 5.1 s and 1.8 GiB with DuckDB's default (80% of the machine).
SORT_MEMORY = "1GB"


def build(conn: Any) -> None:
    """The copy made again from every event with a member, sorted by member id."""
    _sorted(conn, f"CREATE OR REPLACE TABLE {TABLE} AS SELECT {COLUMNS} FROM events WHERE member_id IS NOT NULL "
                  "ORDER BY member_id, seq")


def extend(conn: Any, top: int) -> None:
    """The tail (the events after seq `top`, the copy's highest) appended to the copy as a run sorted by member."""
    _sorted(conn, f"INSERT INTO {TABLE} SELECT {COLUMNS} FROM events WHERE seq > {int(top)} "
                  "AND member_id IS NOT NULL ORDER BY member_id, seq")


def _sorted(conn: Any, sql: str) -> None:
    """Run a sort with DuckDB's memory capped (then its own limit again: qunflow sets none)."""
    conn.execute(f"SET memory_limit = '{SORT_MEMORY}'")
    try:
        conn.execute(sql)
    finally:
        conn.execute("RESET memory_limit")


def drop(conn: Any) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")


def resync(conn: Any, seqs: str, params: list[Any] | None = None) -> None:
    """After the events whose seqs `seqs` (a subquery, with `params`) selects were rewritten in place: their rows in
    the copy written again from them (at the copy's end: a few rows, whose row group no longer prunes well). Those
    after the copy's highest seq stay in the tail."""
    top = upto(conn)
    if top is None:
        return
    conn.execute(f"DELETE FROM {TABLE} WHERE seq IN ({seqs})", params or [])
    conn.execute(f"INSERT INTO {TABLE} SELECT {COLUMNS} FROM events WHERE seq IN ({seqs}) AND seq <= {top} "
                 "AND member_id IS NOT NULL", params or [])


def events_of(members: str, top: int | None) -> str:
    """The SELECT of the events of the members in table `members` (a column member_id): from the copy and its
    tail when there is a copy (`top`, its highest seq), else from the whole store."""
    if top is None:
        return f"SELECT {COLUMNS} FROM events WHERE member_id IN (SELECT member_id FROM {members})"
    return (f"SELECT {COLUMNS} FROM {TABLE} WHERE member_id IN (SELECT member_id FROM {members}) "
            f"UNION ALL SELECT {COLUMNS} FROM events WHERE seq > {int(top)} "
            f"AND member_id IN (SELECT member_id FROM {members})")
