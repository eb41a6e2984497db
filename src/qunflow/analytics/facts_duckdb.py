"""The per-member facts (analytics/facts.py) on DuckDB: their tables, the SQL that computes their rows, and their
maintenance by the rules facts.py describes: brought up to the shipped events (refresh), computed again after
events rewritten in place (restate, refresh_members); usable says whether they may answer. facts.py picks this
module for a DuckDB store; chdb and a ClickHouse server keep the same facts in facts_clickhouse.py, by the rules
both read from facts_rules.py.

A catch-up reads one copy of the touched members' events (not one read per query: _update_touched), taken from
the store's copy ordered by member when it keeps one (by_member.py, _keep_by_member), else in one scan of the store;
and the store again only for the other persons' landing views. Over FULL_REBUILD_SHARE of the members (or of the
landing rows) one pass over every event rebuilds the tables instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from qunflow.analytics import by_member, facts_rules  # facts_rules' knobs read when used: a test may change them
from qunflow.analytics.dialects import for_duckdb
from qunflow.analytics.facts_rules import LANDING_TYPES, params, settings_key

STATE = """CREATE TABLE IF NOT EXISTS facts_state (
    id INTEGER PRIMARY KEY, watermark BIGINT NOT NULL, max_ts TIMESTAMP, settings VARCHAR NOT NULL
)"""

# The facts of the members whose events are in `{events}` (every event, or a catch-up's copy of the touched members'
# events: one scan of the store, not one per reference to `ev`). The windows are those of queries.COHORT;
# referred is filled in by REFERRED.
MEMBER_FACTS = """
WITH ev AS @NOT_MATERIALIZED() (  -- materialized, every event would be held in memory (docs/metrics.md)
    SELECT e.seq, e.type, e.ts, e.member_id, e.channel, e.campaign, e.entry_point, e.group_key, e.referrer_id,
           e.amount, e.margin, e.properties, @EVENT_DAY(e.ts) AS day
    FROM {events} e WHERE e.member_id IS NOT NULL
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
last_join AS (  -- as queries.CURRENT: the last join, and whether a `left` follows it
    SELECT member_id, max(ts) AS last_ts FROM ev WHERE type = 'joined' GROUP BY member_id
),
left_after AS (
    SELECT l.member_id AS member_id FROM last_join l JOIN ev e ON e.member_id = l.member_id
    WHERE e.type = 'left' AND e.ts > l.last_ts GROUP BY l.member_id
)
SELECT f.member_id, f.join_ts, f.join_day, f.channel, f.campaign, f.entry_point, f.group_key, f.tier,
       f.referrer_id, b.r1, b.r7, b.r14, b.r30, b.task1, b.first_conversion_ts, b.revenue_30, b.margin_30,
       b.revenue_90, b.margin_90, b.invites, CAST(0 AS BIGINT) AS referred,
       x.member_id IS NULL AS present, b.last_active_day
FROM first_join f JOIN behaviour b ON b.member_id = f.member_id
JOIN last_join l ON l.member_id = f.member_id LEFT JOIN left_after x ON x.member_id = f.member_id
"""

# The member days of the members whose events are in `{events}` (as MEMBER_FACTS): presence spans as
# queries.CURRENT_DAILY's `presence` (a join until the member's next move, a leave at the join's very instant
# first; spans that end on their own day dropped) and the distinct engagement days, both in a fixed order.
MEMBER_DAYS = """
WITH ev AS @NOT_MATERIALIZED() (
    SELECT e.seq, e.type, e.ts, e.member_id, @EVENT_DAY(e.ts) AS day
    FROM {events} e WHERE e.member_id IS NOT NULL
),
moves AS (
    SELECT member_id, day AS moved_day, type = 'joined' AS is_join,
           @NEXT(day, member_id, ts, type = 'joined', seq) AS next_move_day
    FROM ev WHERE type IN ('joined', 'left')
),
spans AS (
    SELECT member_id, list({'present_from': moved_day, 'present_until': next_move_day}
                           ORDER BY moved_day, next_move_day) AS spans
    FROM moves WHERE is_join AND (next_move_day IS NULL OR next_move_day > moved_day)
    GROUP BY member_id
),
active AS (
    SELECT member_id, list(DISTINCT day ORDER BY day) AS active_days FROM ev
    WHERE @IN_LIST(type, engagement) GROUP BY member_id
)
SELECT s.member_id, s.spans, coalesce(a.active_days, []) AS active_days
FROM spans s LEFT JOIN active a ON a.member_id = s.member_id
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

# A visitor is the member named on the earliest event that carries both ids (as queries.BASE's `links`).
LANDING_LINKS = """
SELECT visitor_id, member_id FROM events WHERE visitor_id IS NOT NULL AND member_id IS NOT NULL{scope}
QUALIFY row_number() OVER (PARTITION BY visitor_id ORDER BY ts, seq) = 1
"""

# The landing facts of the persons in `{person_scope}` (every person, or those in a temporary table
# `touched_people`), from the landing views and joins in `{events}` (every event, or a catch-up's copy of those
# persons' events). Persons as queries.LANDING's `people`.
LANDING_ROWS = """
WITH people AS @NOT_MATERIALIZED() (
    SELECT e.seq, e.type, e.ts, @EVENT_DAY(e.ts) AS day, e.channel, e.campaign, e.entry_point, e.group_key,
           e.properties, coalesce(e.member_id, l.member_id, 'visitor:' || e.visitor_id) AS person
    FROM {events} e LEFT JOIN {links} l ON l.visitor_id = e.visitor_id
    WHERE e.type IN ('landing_view', 'joined')
),
views AS (  -- each person's first landing view of each local day
    SELECT person, seq, ts, day, channel, campaign, entry_point, group_key, @JSON_TEXT(properties, 'tier') AS tier
    FROM people WHERE type = 'landing_view'{person_scope}
    QUALIFY row_number() OVER (PARTITION BY person, day ORDER BY ts, seq) = 1
),
joined_soon AS (  -- as queries.LANDING: any join at or after the view and less than 7 x 24 h after it
    SELECT v.person AS person, v.day AS day FROM views v JOIN people j ON j.person = v.person
    WHERE j.type = 'joined' AND j.ts >= v.ts AND j.ts < v.ts + INTERVAL 7 DAY GROUP BY v.person, v.day
)
SELECT v.person, v.ts, v.day, lag(v.day) OVER (PARTITION BY v.person ORDER BY v.ts, v.seq) AS prev_day,
       v.channel, v.campaign, v.entry_point, v.group_key, v.tier, s.person IS NOT NULL AS joined
FROM views v LEFT JOIN joined_soon s ON s.person = v.person AND s.day = v.day
"""


# The landing facts counted per day and everything M1 slices, filters or matures them by but the view's time
# (queries.LANDING_DAYS): ~17,000 rows for 1.1M landing facts at 1M members.
LANDING_DAY_COUNTS = """
SELECT day, prev_day, channel, campaign, entry_point, group_key, tier, joined, count(*) AS views
FROM {table}{where} GROUP BY ALL
"""


def _run(conn: Any, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    from qunflow.analytics.store import day_zone  # imports duckdb: loaded already (conn is a DuckDB connection)

    text, used = for_duckdb(sql, params or {}, day_zone(conn))
    return conn.execute(text, used).fetchall()  # type: ignore[no-any-return]


def _state(conn: Any) -> tuple[int, datetime | None, str] | None:
    import duckdb  # loaded already (conn is a DuckDB connection); not at import time, which the CLI pays

    try:
        rows = conn.execute("SELECT watermark, max_ts, settings FROM facts_state WHERE id = 1").fetchall()
    except duckdb.CatalogException:  # a store from before the facts (opened read-only: no table yet)
        return None
    return (int(rows[0][0]), rows[0][1], str(rows[0][2])) if rows else None


def usable(engine: Any, settings: Any, cutoff: datetime | None) -> bool:
    """As facts.usable (which checks that they are enabled): computed with these settings over every shipped event,
    and none at or after cutoff (None: any cutoff)."""
    state = _state(engine.conn)
    if state is None:
        return False
    watermark, max_ts, key = state
    return key == settings_key(settings) and watermark == engine.watermark() and (
        cutoff is None or max_ts is None or max_ts < cutoff)


def refresh(engine: Any, settings: Any) -> None:
    """Bring the facts up to the shipped events (facts.refresh_facts on DuckDB)."""
    conn = engine.conn
    conn.execute(STATE)
    state = _state(conn)
    watermark = engine.watermark()
    key = settings_key(settings)
    if state is not None and state[0] == watermark and state[2] == key:
        return
    conn.execute("BEGIN")
    try:
        if state is None or state[2] != key or not _has_facts(conn):
            _rebuild(conn, settings)
            _rebuild_landings(conn, settings)
            _keep_by_member(conn, again=True)
            newest, args = "(SELECT max(ts) FROM events)", []
        else:
            copied = _catch_up(conn, settings, state[0], _keep_by_member(conn))
            _catch_up_landings(conn, settings, state[0], copied)
            _drop(conn, "touched", "touched_events")
            # No stored event's time changes in place: the newest is the old one's or a new event's (a scan of
            # the new events alone, not of the store: 0.03 s of a 20-event catch-up's 0.34 s at 1M).
            newest, args = "greatest(?::TIMESTAMP, (SELECT max(ts) FROM events WHERE seq > ?))", [state[1], state[0]]
        conn.execute(f"INSERT OR REPLACE INTO facts_state SELECT 1, ?, {newest}, ?", [watermark, *args, key])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def refresh_members(conn: Any, settings: Any, member_ids: list[str]) -> None:
    """Compute these members' facts again after their events were rewritten in place (erasure, a merge),
    inside the caller's transaction. Members whose first join names one of them as referrer count as touched
    too. The landing facts are rebuilt."""
    if not _has_facts(conn) or _state(conn) is None:
        return
    conn.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT unnest(?::VARCHAR[]) AS member_id",
                 [member_ids])
    conn.execute("INSERT INTO touched SELECT member_id FROM member_facts WHERE referrer_id IN "
                 "(SELECT member_id FROM touched) AND member_id NOT IN (SELECT member_id FROM touched)")
    _update_touched(conn, settings, by_member.upto(conn))
    _drop(conn, "touched", "touched_events")
    _rebuild_landings(conn, settings)  # ids rewritten in place move links and persons: rare, so one pass


def _keep_by_member(conn: Any, again: bool = False) -> int | None:
    """The copy of the events ordered by member (by_member.py) made when the store has grown to
    facts_rules.BY_MEMBER_MIN_EVENTS, and made again with a rebuild of the facts (`again`); none below that
    size. Once the events shipped since it exceed BY_MEMBER_TAIL_SHARE of it, they join it as a sorted run.
    Returns the copy's highest seq (by_member.upto), None without a copy."""
    events = conn.execute("SELECT count(*) FROM events").fetchall()[0][0]
    top = by_member.upto(conn)
    if events < facts_rules.BY_MEMBER_MIN_EVENTS:
        if top is not None:
            by_member.drop(conn)
        return None
    if top is not None and not again:
        tail = conn.execute("SELECT count(*) FROM events WHERE seq > ?", [top]).fetchall()[0][0]
        if tail <= facts_rules.BY_MEMBER_TAIL_SHARE * (events - tail):
            return top
        by_member.extend(conn, top)
        return by_member.upto(conn)
    by_member.build(conn)
    return by_member.upto(conn)


def _drop(conn: Any, *tables: str) -> None:
    for table in tables:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _has_facts(conn: Any) -> bool:
    found = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name IN "
                         "('member_facts', 'landing_facts', 'landing_links', 'landing_days', 'member_days') "
                         "AND schema_name = current_schema()").fetchall()
    return found[0][0] == 5


def _referred(conn: Any, scope: str, table: str = "member_facts") -> None:
    conn.execute(REFERRED.replace("{scope}", scope).replace("{table}", table))


def _rebuild(conn: Any, settings: Any, table: str = "member_facts", temporary: bool = False,
             days: str | None = None) -> None:
    """Every member's facts and days from every event (`temporary`: into temporary tables, e.g. to check the
    kept ones; the days go to `days`, by default member_days, or <table>_days when temporary)."""
    kind = "TEMP TABLE" if temporary else "TABLE"
    days = days or (f"{table}_days" if temporary else "member_days")
    _run(conn, f"CREATE OR REPLACE {kind} {table} AS " + MEMBER_FACTS.replace("{events}", "events"),
         params(settings))
    _referred(conn, "", table)
    _run(conn, f"CREATE OR REPLACE {kind} {days} AS " + MEMBER_DAYS.replace("{events}", "events"), params(settings))


def _landings(settings: Any, links: str, events: str = "events", person_scope: str = "") -> tuple[str, dict[str, Any]]:
    sql = LANDING_ROWS.replace("{links}", links).replace("{events}", events).replace("{person_scope}", person_scope)
    return sql, {"tz": settings.timezone}


def _rebuild_landings(conn: Any, settings: Any, table: str = "landing_facts", links: str = "landing_links",
                      temporary: bool = False) -> None:
    """Every person's links, landing facts and their days from every event (`temporary`: into temporary tables;
    the days into <table>_days then, else landing_days)."""
    kind = "TEMP TABLE" if temporary else "TABLE"
    conn.execute(f"CREATE OR REPLACE {kind} {links} AS " + LANDING_LINKS.replace("{scope}", ""))
    sql, params = _landings(settings, links)
    _run(conn, f"CREATE OR REPLACE {kind} {table} AS " + sql, params)
    days = f"{table}_days" if temporary else "landing_days"
    conn.execute(f"CREATE OR REPLACE {kind} {days} AS " + _landing_days(table))


def _landing_days(table: str, where: str = "") -> str:
    return LANDING_DAY_COUNTS.replace("{table}", table).replace("{where}", where)


def _catch_up_landings(conn: Any, settings: Any, since: int, copied: bool) -> None:
    """The landing rows of the persons named on landing views and joins shipped after `since`, and of both sides
    of every visitor whose link the new events changed; every row when that is most of them. `copied`: the
    member catch-up left `touched` and the copy of their events (`touched_events`)."""
    conn.execute("CREATE OR REPLACE TEMP TABLE new_links AS " + LANDING_LINKS.replace(
        "{scope}", " AND visitor_id IN (SELECT visitor_id FROM events WHERE seq > ? "
                   "AND visitor_id IS NOT NULL AND member_id IS NOT NULL)"), [since])
    conn.execute("CREATE OR REPLACE TEMP TABLE named AS "
                 "SELECT coalesce(o.member_id, 'visitor:' || n.visitor_id) AS person, n.member_id AS linked "
                 "FROM new_links n LEFT JOIN landing_links o ON o.visitor_id = n.visitor_id "
                 "WHERE o.member_id IS DISTINCT FROM n.member_id")
    conn.execute("INSERT INTO named SELECT linked, NULL FROM named")
    conn.execute("DELETE FROM landing_links WHERE visitor_id IN (SELECT visitor_id FROM new_links)")
    conn.execute("INSERT INTO landing_links SELECT visitor_id, member_id FROM new_links")
    conn.execute("INSERT INTO named SELECT coalesce(e.member_id, l.member_id, 'visitor:' || e.visitor_id), "
                 "NULL FROM events e LEFT JOIN landing_links l ON l.visitor_id = e.visitor_id "
                 "WHERE e.seq > ? AND e.type IN ('landing_view', 'joined')", [since])
    conn.execute("CREATE OR REPLACE TEMP TABLE touched_people AS SELECT DISTINCT person FROM named")
    touched = conn.execute("SELECT count(*) FROM touched_people").fetchall()[0][0]
    rows = conn.execute("SELECT count(*) FROM landing_facts").fetchall()[0][0]
    if touched > facts_rules.FULL_REBUILD_SHARE * rows:
        _rebuild_landings(conn, settings)
    elif touched:
        # The days lose the touched persons' old rows and gain their new ones: counted apart, then summed in.
        theirs = " WHERE person IN (SELECT person FROM touched_people)"
        conn.execute("CREATE OR REPLACE TEMP TABLE days_change AS " + _landing_days("landing_facts", theirs))
        conn.execute("UPDATE days_change SET views = -views")
        conn.execute("DELETE FROM landing_facts" + theirs)
        _copy_landing_events(conn, copied)
        sql, params = _landings(settings, "landing_links", "landing_events",
                                " AND person IN (SELECT person FROM touched_people)")
        _run(conn, "INSERT INTO landing_facts " + sql, params)
        conn.execute("DROP TABLE landing_events")
        conn.execute("INSERT INTO days_change " + _landing_days("landing_facts", theirs))
        conn.execute("CREATE OR REPLACE TEMP TABLE days_summed AS SELECT * EXCLUDE (views), sum(views) AS views "
                     "FROM (SELECT * FROM landing_days UNION ALL SELECT * FROM days_change) "
                     "GROUP BY ALL HAVING sum(views) <> 0")
        conn.execute("DELETE FROM landing_days")
        conn.execute("INSERT INTO landing_days SELECT * FROM days_summed")
        for table in ("days_change", "days_summed"):
            conn.execute(f"DROP TABLE {table}")
    for table in ("new_links", "named", "touched_people"):
        conn.execute(f"DROP TABLE {table}")


def _copy_landing_events(conn: Any, copied: bool) -> None:
    """The landing views and joins of the persons in `touched_people` into a temporary table `landing_events`.
    Those of members the member catch-up copied come from that copy; the others (other members, the visitors
    linked to a touched person, bare visitors) from one scan of the store, made only when there are any."""
    visitors = ("SELECT visitor_id FROM landing_links WHERE member_id IN (SELECT person FROM touched_people) "
                "UNION ALL SELECT substr(person, 9) FROM touched_people WHERE starts_with(person, 'visitor:')")
    members = "SELECT person FROM touched_people WHERE NOT starts_with(person, 'visitor:')"
    if copied:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE landing_events AS SELECT * FROM touched_events WHERE type IN "
                     f"{LANDING_TYPES} AND member_id IN (SELECT person FROM touched_people)")
        members += " AND person NOT IN (SELECT member_id FROM touched)"  # all their events are in the copy
    else:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE landing_events AS SELECT {by_member.COLUMNS} FROM events LIMIT 0")
    left = conn.execute(f"SELECT (SELECT count(*) FROM ({members})) + (SELECT count(*) FROM ({visitors}))").fetchall()
    if left[0][0]:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE landing_scanned AS SELECT {by_member.COLUMNS} FROM events e WHERE "
                     f"e.type IN {LANDING_TYPES} AND (e.member_id IN ({members}) OR e.visitor_id IN ({visitors}))")
        conn.execute("INSERT INTO landing_events SELECT * FROM landing_scanned "
                     "WHERE seq NOT IN (SELECT seq FROM landing_events)")  # a copied member's event, by a visitor
        conn.execute("DROP TABLE landing_scanned")


def _catch_up(conn: Any, settings: Any, since: int, top: int | None) -> bool:
    """The rows of the members named on events shipped after `since`, or every row when that is most of them.
    True when it leaves `touched` and the copy of their events (`touched_events`, see _update_touched). `top`: the
    highest seq of the store's copy ordered by member (by_member.upto; None: no copy)."""
    conn.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT member_id FROM events "
                 "WHERE seq > ? AND member_id IS NOT NULL", [since])
    touched = conn.execute("SELECT count(*) FROM touched").fetchall()[0][0]
    members = conn.execute("SELECT count(*) FROM member_facts").fetchall()[0][0]
    if touched > facts_rules.FULL_REBUILD_SHARE * members:
        _rebuild(conn, settings)
        return False
    if not touched:
        return False
    _update_touched(conn, settings, top)
    return True


def _update_touched(conn: Any, settings: Any, top: int | None) -> None:
    """Replace the rows (facts and days) of the members in `touched`; then recount referred joins for them and for the
    referrers named by their old and new first joins. Leaves `touched` and `touched_events`, the copy of their
    events (from the store's copy ordered by member up to `top` and the events after it; None: from the events),
    to the caller (the landing catch-up reads it)."""
    conn.execute("CREATE OR REPLACE TEMP TABLE affected AS SELECT member_id FROM touched UNION "
                 "SELECT referrer_id FROM member_facts WHERE member_id IN (SELECT member_id FROM touched) "
                 "AND referrer_id IS NOT NULL")
    conn.execute("DELETE FROM member_facts WHERE member_id IN (SELECT member_id FROM touched)")
    # Their events, copied once (the facts and days read them six times), the columns read only: from the copy
    # ordered by member and its tail when the store keeps one, else in one scan of the store.
    copy = by_member.events_of("touched", top)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE touched_events AS {copy}")
    _run(conn, "INSERT INTO member_facts " + MEMBER_FACTS.replace("{events}", "touched_events"), params(settings))
    conn.execute("DELETE FROM member_days WHERE member_id IN (SELECT member_id FROM touched)")
    _run(conn, "INSERT INTO member_days " + MEMBER_DAYS.replace("{events}", "touched_events"), params(settings))
    conn.execute("INSERT INTO affected SELECT referrer_id FROM member_facts WHERE member_id IN "
                 "(SELECT member_id FROM touched) AND referrer_id IS NOT NULL")
    _referred(conn, " JOIN (SELECT DISTINCT member_id FROM affected) a ON a.member_id = c.member_id")
    conn.execute("DROP TABLE affected")


def restate(engine: Any, settings: Any, table: Any) -> None:
    """`engine.restate(table)` with the facts following (facts.restate_with_facts on DuckDB): the facts of every
    member on either side of the rewrite computed again. The facts are marked stale first, so a crash between the
    two leaves them rebuilt on the next ship (and unused meanwhile), never wrong."""
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
