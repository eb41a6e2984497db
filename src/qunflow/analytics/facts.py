"""Per-member facts in the analytics store (issue 15): one row per joined member with what the cohort metrics
(M2, M4-M7, M9 and the cohort's size) and the current members' activity (M3) need, kept up to date as events
ship.

A row holds the member's first join (time, local day, acquisition attributes) and what follows from their
events alone: D1/7/14/30 activity, the Day-1 task, the first conversion within 30 days and the 30/90-day
money, invites and referred joins within 30 days, the group of the last join, whether a `left` follows it,
and the last day with engagement. None of it depends on the as-of day, so `queries.COHORT_FACTS` and
`CURRENT_FACTS` answer an as-of day with a GROUP BY over members, comparing stored days and times with it
(maturity, activity windows). That is exact only when every event in the store is known as of that day:
`usable` says when; otherwise the metrics read the events (queries.COHORT, CURRENT).

Maintenance: after a ship, the rows of the members named on the new events are computed again from all
their events (late joins, re-sent ids), then the referred count of every member whose referred joins may
have changed. A change of time zone or event-type settings rebuilds the table. chdb and a ClickHouse server
keep the same facts by the same rules in analytics/facts_clickhouse.py (a ReplacingMergeTree, see there).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from qunflow.analytics.dialects import for_duckdb

# Bumped when the table's columns or their meaning change: a store with older facts rebuilds them.
FACTS_VERSION = 1
# Above this share of members touched by one ship, one pass over every event beats the per-member update.
FULL_REBUILD_SHARE = 0.2

STATE = """CREATE TABLE IF NOT EXISTS facts_state (
    id INTEGER PRIMARY KEY, watermark BIGINT NOT NULL, max_ts TIMESTAMP, settings VARCHAR NOT NULL
)"""

# The facts of the members in `{scope}` (every member, or a temporary table `touched`). The windows are those
# of queries.COHORT; referred is filled in by REFERRED.
MEMBER_FACTS = """
WITH ev AS (
    SELECT e.seq, e.type, e.ts, e.member_id, e.channel, e.campaign, e.entry_point, e.group_key, e.referrer_id,
           e.amount, e.margin, e.properties, @LOCAL_DAY(e.ts) AS day
    FROM events e{scope} WHERE e.member_id IS NOT NULL
),
first_join AS (
    SELECT member_id, ts AS join_ts, day AS join_day, channel, campaign, entry_point, group_key,
           @JSON_TEXT(properties, 'tier') AS tier, referrer_id
    FROM ev WHERE type = 'joined'
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts, seq) = 1
),
behaviour AS (
    SELECT f.member_id AS member_id,
           coalesce(bool_or(@IN_LIST(e.type, engagement) AND e.day = f.join_day + 1), false) AS r1,
           coalesce(bool_or(@IN_LIST(e.type, engagement) AND e.day = f.join_day + 7), false) AS r7,
           coalesce(bool_or(@IN_LIST(e.type, engagement) AND e.day = f.join_day + 14), false) AS r14,
           coalesce(bool_or(@IN_LIST(e.type, engagement) AND e.day = f.join_day + 30), false) AS r30,
           coalesce(bool_or(e.type = 'task_completed' AND e.day BETWEEN f.join_day AND f.join_day + 1), false)
               AS task1,
           min(e.ts) FILTER (WHERE @IN_LIST(e.type, conversion) AND e.ts >= f.join_ts
                             AND e.ts < f.join_ts + INTERVAL 30 DAY) AS first_conversion_ts,
           coalesce(sum(e.amount) FILTER (WHERE @IN_LIST(e.type, conversion) AND e.ts >= f.join_ts
                                          AND e.ts < f.join_ts + INTERVAL 30 DAY), 0) AS revenue_30,
           coalesce(sum(e.margin) FILTER (WHERE @IN_LIST(e.type, conversion) AND e.ts >= f.join_ts
                                          AND e.ts < f.join_ts + INTERVAL 30 DAY), 0) AS margin_30,
           coalesce(sum(e.amount) FILTER (WHERE @IN_LIST(e.type, conversion) AND e.ts >= f.join_ts
                                          AND e.ts < f.join_ts + INTERVAL 90 DAY), 0) AS revenue_90,
           coalesce(sum(e.margin) FILTER (WHERE @IN_LIST(e.type, conversion) AND e.ts >= f.join_ts
                                          AND e.ts < f.join_ts + INTERVAL 90 DAY), 0) AS margin_90,
           count(*) FILTER (WHERE e.type = 'invite_sent' AND e.ts >= f.join_ts
                            AND e.ts < f.join_ts + INTERVAL 30 DAY) AS invites,
           max(e.day) FILTER (WHERE @IN_LIST(e.type, engagement)) AS last_active_day
    FROM first_join f JOIN ev e ON e.member_id = f.member_id
    GROUP BY f.member_id
),
last_join AS (  -- as queries.CURRENT: the group of the last join, and whether a `left` follows it
    SELECT member_id, ts AS last_ts, group_key AS current_group FROM ev WHERE type = 'joined'
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts DESC, seq DESC) = 1
),
left_after AS (
    SELECT l.member_id AS member_id FROM last_join l JOIN ev e ON e.member_id = l.member_id
    WHERE e.type = 'left' AND e.ts > l.last_ts GROUP BY l.member_id
)
SELECT f.member_id, f.join_ts, f.join_day, f.channel, f.campaign, f.entry_point, f.group_key, f.tier,
       f.referrer_id, b.r1, b.r7, b.r14, b.r30, b.task1, b.first_conversion_ts, b.revenue_30, b.margin_30,
       b.revenue_90, b.margin_90, b.invites, CAST(0 AS BIGINT) AS referred,
       l.current_group, x.member_id IS NULL AS present, b.last_active_day
FROM first_join f JOIN behaviour b ON b.member_id = f.member_id
JOIN last_join l ON l.member_id = f.member_id LEFT JOIN left_after x ON x.member_id = f.member_id
"""

# Members whose first join names the member as referrer, less than 30 days after the member's own join.
REFERRED = """
UPDATE {table} SET referred = k.n FROM (
    SELECT c.member_id AS member_id, count(f.member_id) AS n
    FROM {table} c{scope}
    LEFT JOIN {table} f ON f.referrer_id = c.member_id AND f.member_id <> c.member_id
         AND f.join_ts >= c.join_ts AND f.join_ts < c.join_ts + INTERVAL 30 DAY
    GROUP BY c.member_id
) k WHERE {table}.member_id = k.member_id
"""


def _settings_key(settings: Any) -> str:
    """What the facts were computed with (and their version): a change of any of it rebuilds them."""
    return json.dumps({"version": FACTS_VERSION, "tz": settings.timezone,
                       "engagement": sorted(settings.engagement_types),
                       "conversion": sorted(settings.conversion_types)}, sort_keys=True)


def _params(settings: Any) -> dict[str, Any]:
    return {"tz": settings.timezone, "engagement": list(settings.engagement_types),
            "conversion": list(settings.conversion_types)}


def _run(conn: Any, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    text, used = for_duckdb(sql, params or {})
    return conn.execute(text, used).fetchall()  # type: ignore[no-any-return]


def _state(conn: Any) -> tuple[int, datetime | None, str] | None:
    import duckdb  # loaded already (conn is a DuckDB connection); not at import time, which the CLI pays

    try:
        rows = conn.execute("SELECT watermark, max_ts, settings FROM facts_state WHERE id = 1").fetchall()
    except duckdb.CatalogException:  # a store from before the facts (opened read-only: no table yet)
        return None
    return (int(rows[0][0]), rows[0][1], str(rows[0][2])) if rows else None


def usable(engine: Any, settings: Any, cutoff: datetime) -> bool:
    """The facts answer a cohort query of this cutoff exactly: DuckDB, enabled, computed with these settings
    over every shipped event, and no event at or after the cutoff (an as-of day in the past reads events)."""
    if not settings.metrics_facts:
        return False
    if engine.name != "duckdb":
        from qunflow.analytics import facts_clickhouse

        return facts_clickhouse.usable(engine, settings, cutoff)
    state = _state(engine.conn)
    if state is None:
        return False
    watermark, max_ts, key = state
    return key == _settings_key(settings) and watermark == engine.watermark() and (max_ts is None or max_ts < cutoff)


def refresh_facts(engine: Any, settings: Any) -> None:
    """Bring the facts up to the shipped events (a no-op when they are off)."""
    if not settings.metrics_facts:
        return
    if engine.name != "duckdb":
        from qunflow.analytics import facts_clickhouse

        facts_clickhouse.refresh(engine, settings)
        return
    conn = engine.conn
    conn.execute(STATE)
    state = _state(conn)
    watermark = engine.watermark()
    key = _settings_key(settings)
    if state is not None and state[0] == watermark and state[2] == key:
        return
    conn.execute("BEGIN")
    try:
        if state is None or state[2] != key or not _has_facts(conn):
            _rebuild(conn, settings)
        else:
            _catch_up(conn, settings, state[0])
        conn.execute("INSERT OR REPLACE INTO facts_state SELECT 1, ?, (SELECT max(ts) FROM events), ?",
                     [watermark, key])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def refresh_members(conn: Any, settings: Any, member_ids: list[str]) -> None:
    """Compute these members' facts again after their events were rewritten in place (erasure), inside the
    caller's transaction. Members whose first join names one of them as referrer count as touched too."""
    if not _has_facts(conn) or _state(conn) is None:
        return
    conn.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT unnest(?::VARCHAR[]) AS member_id",
                 [member_ids])
    conn.execute("INSERT INTO touched SELECT member_id FROM member_facts WHERE referrer_id IN "
                 "(SELECT member_id FROM touched) AND member_id NOT IN (SELECT member_id FROM touched)")
    _update_touched(conn, settings)


def _has_facts(conn: Any) -> bool:
    found = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'member_facts' "
                         "AND schema_name = current_schema()").fetchall()
    return bool(found[0][0])


def _referred(conn: Any, scope: str, table: str = "member_facts") -> None:
    conn.execute(REFERRED.replace("{scope}", scope).replace("{table}", table))


def _rebuild(conn: Any, settings: Any, table: str = "member_facts", temporary: bool = False) -> None:
    """Every member's facts from every event (`temporary`: into a temporary table, e.g. to check the kept one)."""
    kind = "TEMP TABLE" if temporary else "TABLE"
    _run(conn, f"CREATE OR REPLACE {kind} {table} AS " + MEMBER_FACTS.replace("{scope}", ""), _params(settings))
    _referred(conn, "", table)


def _catch_up(conn: Any, settings: Any, since: int) -> None:
    """The rows of the members named on events shipped after `since`, or every row when that is most of them."""
    conn.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT member_id FROM events "
                 "WHERE seq > ? AND member_id IS NOT NULL", [since])
    touched = conn.execute("SELECT count(*) FROM touched").fetchall()[0][0]
    members = conn.execute("SELECT count(*) FROM member_facts").fetchall()[0][0]
    if touched > FULL_REBUILD_SHARE * members:
        _rebuild(conn, settings)
        return
    if touched:
        _update_touched(conn, settings)


def _update_touched(conn: Any, settings: Any) -> None:
    """Replace the rows of the members in `touched`; then recount referred joins for them and for the
    referrers named by their old and new first joins."""
    conn.execute("CREATE OR REPLACE TEMP TABLE affected AS SELECT member_id FROM touched UNION "
                 "SELECT referrer_id FROM member_facts WHERE member_id IN (SELECT member_id FROM touched) "
                 "AND referrer_id IS NOT NULL")
    conn.execute("DELETE FROM member_facts WHERE member_id IN (SELECT member_id FROM touched)")
    scope = " JOIN touched t ON t.member_id = e.member_id"
    _run(conn, "INSERT INTO member_facts " + MEMBER_FACTS.replace("{scope}", scope), _params(settings))
    conn.execute("INSERT INTO affected SELECT referrer_id FROM member_facts WHERE member_id IN "
                 "(SELECT member_id FROM touched) AND referrer_id IS NOT NULL")
    _referred(conn, " JOIN (SELECT DISTINCT member_id FROM affected) a ON a.member_id = c.member_id")
    conn.execute("DROP TABLE touched")
    conn.execute("DROP TABLE affected")


def restate_with_facts(engine: Any, settings: Any, table: Any) -> None:
    """`engine.restate(table)` (events rewritten in place: a merge or its undo) with the facts of every member
    on either side of the rewrite computed again. The facts are marked stale first, so a crash between the
    two leaves them rebuilt on the next ship (and unused meanwhile), never wrong."""
    if engine.name != "duckdb":
        from qunflow.analytics import facts_clickhouse

        touched = facts_clickhouse.members_of(engine, table.column("seq").to_pylist())
        touched |= {v for name in ("member_id", "referrer_id") for v in table.column(name).to_pylist() if v}
        facts_clickhouse.rewrite(engine, settings, touched, lambda: engine.restate(table))
        return
    conn = engine.conn
    state = _state(conn) if _has_facts(conn) else None
    if state is None:
        engine.restate(table)
        return
    conn.register("restating_seqs", table.select(["seq"]))
    try:
        before = conn.execute(
            "SELECT member_id FROM events WHERE seq IN (SELECT seq FROM restating_seqs) AND member_id IS NOT NULL "
            "UNION SELECT referrer_id FROM events WHERE seq IN (SELECT seq FROM restating_seqs) "
            "AND referrer_id IS NOT NULL").fetchall()
    finally:
        conn.unregister("restating_seqs")
    conn.execute("DELETE FROM facts_state")
    engine.restate(table)
    touched = {row[0] for row in before}
    touched |= {v for v in table.column("member_id").to_pylist() if v}
    touched |= {v for v in table.column("referrer_id").to_pylist() if v}
    conn.execute("BEGIN")
    try:
        conn.execute("INSERT OR REPLACE INTO facts_state SELECT 1, ?, (SELECT max(ts) FROM events), ?",
                     [state[0], state[2]])
        refresh_members(conn, settings, sorted(touched))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
