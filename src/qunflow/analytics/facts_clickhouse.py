"""Per-member facts (analytics/facts.py) on ClickHouse: embedded (chdb) and a server, the same SQL for both.

The table is a ReplacingMergeTree ordered by member_id with a `version` column: maintenance only ever inserts
new versions of whole rows, and a read keeps each member's newest row (`member_facts`, a view). Replacing
rather than AggregatingMergeTree because a member's facts are not a merge of partial states: a late join
moves the join day, and with it every window (D1-D30 activity, 30/90-day money, referred joins) over events
that were already counted, so the row has to be computed again from all the member's events anyway; keeping
aggregate states instead would cost more to store and to read, for no saving when writing. No DELETE either:
a member whose events no longer hold a join (a merge, an erasure) gets a tombstone row (`deleted`).

`version` is a counter kept in `facts_state`, not the ship watermark: a merge or an erasure rewrites facts
without moving the watermark, and every write must outrank the rows it replaces.

Reads are exact whatever the merges have done: the view reads with FINAL (the newest version per member,
tombstones dropped after it). At 1M members, with the last update not merged yet, COHORT + CURRENT of two
slices took 0.8 s through FINAL and 14.9 s through argMax(tuple of the row, version) GROUP BY member_id
(VIEW_ARGMAX, kept for bench/bench_facts.py to measure again).

Maintenance follows the DuckDB rules: after a ship, the rows of members named on events after the facts'
watermark are computed again from all their events, then the referred counts of those members and of the
referrers named by their old and new first joins; over FULL_REBUILD_SHARE of the members, or on a change of
settings (or of FACTS_VERSION), the table is rebuilt beside the old one and swapped in (EXCHANGE). The state
is marked stale before any write and made current after the last one: a crash in between, or a reader in
the middle, sees facts that are not usable (the event-level SQL answers), and the next refresh rebuilds.

The landing facts (M1, facts.LANDING_ROWS) are kept the same way: `landing_links_log` (visitor -> member) and
`landing_facts_log` (person, local day), ReplacingMergeTrees read through FINAL views under the names the DuckDB
tables have, so queries.LANDING_FACTS runs unchanged. After a ship, the persons named on new landing views and
joins, and both sides of every link the new events changed, get their rows computed again: new rows of this
version, and tombstones for the (person, day) keys they no longer have. An erasure or a merge rebuilds both
tables (ids move between persons); the key in `facts_state` names the landing facts, so a store from before
them rebuilds once.

`landing_days_log` counts the landing facts per day and what M1 slices them by (facts.LANDING_DAY_COUNTS), for
queries.LANDING_DAYS as on DuckDB: a SummingMergeTree of signed counts keyed by all of it. A catch-up inserts,
in one row per key, the count of the touched persons' new rows less that of their old ones, read before the new
landing rows land; merges add the rows of a key up and drop those that reach 0, and the view `landing_days`
adds up what is not merged yet. Signed counts rather than recounting the touched days: a touched person's old
rows lie on any day of their history, so the days touched would be many, each a scan of its landing facts,
where the change of the touched rows costs what the landing update already reads. The state's version guards
it as it does the other tables: a crash between its insert and the landing rows' leaves the state stale, and
the next refresh rebuilds all three.

`member_days_log` holds the member days (facts.MEMBER_DAYS: per joined member, the presence spans and the
engagement days, as arrays), for the daily trend's M3 (queries.CURRENT_DAILY_FACTS_CLICKHOUSE) and the previous
period's: a ReplacingMergeTree by member read through the FINAL view `member_days`, kept with the member facts
by the same rules and in the same steps (the touched members' rows computed again, a tombstone for a member
left with no span; a rebuild swaps in a fresh table), so the state guards it as it does them.

Every catch-up adds a part to each of these tables, and FINAL reads two parts or more by merging them as it goes.
At 1M members on chdb (bench/bench_facts_parts.py, three runs) the dashboard page took 0.60-0.67 s of CPU with
one part per table, 0.92-1.45 s with 2 to 5 and up to 1.26 s with 6 to 8; both slices 0.19-0.22 s, 0.33-0.43 s
and up to 0.52 s: the cost is in the step from one part to two.
Merging (OPTIMIZE ... FINAL, ClickHouse's own atomic swap of the parts for one, which changes what is stored but
never what the views read) rewrites the whole table, whatever the catch-up added: 0.82-0.90 s of CPU for the
four tables after 50,000 events, 0.41-0.42 s for the two member tables after 20. So after a catch-up merge_parts
merges only a table holding more than MAX_PARTS active parts: a catch-up every 2 s (`qunflow serve` with a live
stream) pays a full merge once in MAX_PARTS, the reads little more than with two parts. A rebuild, a merge of
members or its undo and an erasure (rare, heavy anyway) merge every table left with more than one part. Plain
OPTIMIZE (no FINAL) lets the merge selector choose: at 1M it merged the small parts alone (0.08 s, two parts
left, reads no faster), nothing, or the big part with a small one (0.76-0.82 s), so it is not used.
ClickHouse's background merges stay free to act: a server's always, chdb's while a process holds the store open,
which `qunflow serve` does (engines._chdb keeps one session per process) and a CLI command only while it runs;
under a stream of 20-event catch-ups every 2 s they kept the member tables of a held store at two parts.

A catch-up reads the events of the members (and persons) it touches, and `events` is ordered by seq: a member's
events lie anywhere in it (at 1M the 20 members of 20 events had 739 events, in 402 of its 1,243 granules).
Read by a filter on member_id alone, every catch-up scanned the whole table three times (member facts, member
days, landing rows: 2.4-3.8 s of CPU for 20 events at 1M, 95% of it those three statements). On chdb `events`
holds a projection ordered by member (engines.EVENTS_BY_MEMBER), which ClickHouse reads for a filter on
member_id; a bloom-filter skip index on member_id and on visitor_id (engines.EVENT_INDEXES) finds the seqs of a
few persons' events for the landing rows, whose filter names both (`_seqs_of`). A server's `events` reads
events_log through FINAL, which uses no projection: there the touched members' seqs come from events_log through
the skip index, and `events` is read by seq. A store made before them is given them when a process opens it
(engines.add_event_indexes: a background mutation, the parts it has not reached read as before). The member
facts and days are computed from one copy of the touched members' events (EVENT_READ_COLUMNS): each statement
reads its events twice. At 1M a 20-event catch-up took 2.4-3.8 s of CPU before and 0.46-1.08 s after on chdb,
5.2-6.8 s and 1.4-1.7 s on the tests' server; 2,000 events 4.3-5.9 s and 1.6-2.0 s (merges aside) on chdb,
7.6-8.8 s and 4.2-5.3 s on the server (docs/metrics.md, "A catch-up reads its members' events").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from qunflow.analytics import facts
from qunflow.analytics.dialects import for_clickhouse
from qunflow.analytics.facts import _settings_key

COLUMNS = (
    ("member_id", "String"), ("join_ts", "DateTime64(6, 'UTC')"), ("join_day", "Date"),
    ("channel", "Nullable(String)"), ("campaign", "Nullable(String)"), ("entry_point", "Nullable(String)"),
    ("group_key", "Nullable(String)"), ("tier", "Nullable(String)"), ("referrer_id", "Nullable(String)"),
    ("r1", "Bool"), ("r7", "Bool"), ("r14", "Bool"), ("r30", "Bool"), ("task1", "Bool"),
    ("first_conversion_ts", "Nullable(DateTime64(6, 'UTC'))"),
    ("revenue_30", "Decimal(38, 4)"), ("margin_30", "Decimal(38, 4)"),
    ("revenue_90", "Decimal(38, 4)"), ("margin_90", "Decimal(38, 4)"),
    ("invites", "Int64"), ("referred", "Int64"), ("current_group", "Nullable(String)"), ("present", "Bool"),
    ("last_active_day", "Nullable(Date)"), ("version", "UInt64"), ("deleted", "Bool"),
)
NAMES = [name for name, _type in COLUMNS]
FACT_NAMES = NAMES[:-2]  # without version and deleted
TABLE_COLUMNS = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)

# The newest version of each member's row, tombstones dropped after FINAL has picked it.
VIEW_FINAL = f"SELECT {', '.join(FACT_NAMES)} FROM member_facts_log FINAL WHERE NOT deleted"
VIEW_ARGMAX = (f"SELECT member_id, {', '.join(f'row.{i + 1} AS {n}' for i, n in enumerate(NAMES[1:-1]))} FROM ("
               f"SELECT member_id, argMax(tuple({', '.join(NAMES[1:])}), version) AS row FROM member_facts_log "
               f"GROUP BY member_id) WHERE NOT row.{len(NAMES) - 1}")
VIEW = VIEW_FINAL

# The landing facts (facts.LANDING_ROWS): one row per person and local day of a view, keyed by both, and the
# visitor -> member links they were computed with. A person's rows are replaced as a whole: new rows of the
# same version, and tombstones for the days the person no longer has (a link moved the views to another person).
LANDING_COLUMNS = (
    ("person", "String"), ("ts", "DateTime64(6, 'UTC')"), ("day", "Date"), ("prev_day", "Nullable(Date)"),
    ("channel", "Nullable(String)"), ("campaign", "Nullable(String)"), ("entry_point", "Nullable(String)"),
    ("group_key", "Nullable(String)"), ("tier", "Nullable(String)"), ("joined", "Bool"),
    ("version", "UInt64"), ("deleted", "Bool"),
)
LANDING_NAMES = [name for name, _type in LANDING_COLUMNS][:-2]
LANDING_TABLE = (f"({', '.join(f'{name} {kind}' for name, kind in LANDING_COLUMNS)}) "
                 "ENGINE = ReplacingMergeTree(version) ORDER BY (person, day)")
# The key holds NULLs (a view with no channel, a person's first view): allow_nullable_key, which merges and
# GROUP BY treat alike (NULL equals NULL). `n` is signed: a catch-up's count change per key.
LANDING_DAYS_KEY = ("day", "prev_day", "channel", "campaign", "entry_point", "group_key", "tier", "joined")
LANDING_DAYS_TABLE = (f"({', '.join(f'{n} {kind}' for n, kind in LANDING_COLUMNS if n in LANDING_DAYS_KEY)}"
                      f", n Int64) ENGINE = SummingMergeTree(n) ORDER BY ({', '.join(LANDING_DAYS_KEY)}) "
                      "SETTINGS allow_nullable_key = 1")
LINKS_TABLE = "(visitor_id String, member_id String, version UInt64) ENGINE = ReplacingMergeTree(version) " \
              "ORDER BY visitor_id"

# The member days (facts.MEMBER_DAYS): a member's rows replaced as a whole, a tombstone when no span is left.
DAYS_COLUMNS = ("member_id String, spans Array(Tuple(present_from Date, present_until Nullable(Date), "
                "current_group Nullable(String))), active_days Array(Date), version UInt64, deleted Bool")
DAYS_TABLE = f"({DAYS_COLUMNS}) ENGINE = ReplacingMergeTree(version) ORDER BY member_id"
DAYS_NAMES = "member_id, spans, active_days"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS facts_state (id UInt8, watermark Int64, max_ts Nullable(DateTime64(6, 'UTC')), "
    "settings String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id",
    f"CREATE TABLE IF NOT EXISTS member_facts_log ({TABLE_COLUMNS}) "
    "ENGINE = ReplacingMergeTree(version) ORDER BY member_id",
    f"CREATE VIEW IF NOT EXISTS member_facts AS {VIEW}",
    f"CREATE TABLE IF NOT EXISTS landing_links_log {LINKS_TABLE}",
    "CREATE VIEW IF NOT EXISTS landing_links AS SELECT visitor_id, member_id FROM landing_links_log FINAL",
    f"CREATE TABLE IF NOT EXISTS landing_facts_log {LANDING_TABLE}",
    f"CREATE VIEW IF NOT EXISTS landing_facts AS SELECT {', '.join(LANDING_NAMES)} FROM landing_facts_log FINAL "
    "WHERE NOT deleted",
    f"CREATE TABLE IF NOT EXISTS landing_days_log {LANDING_DAYS_TABLE}",
    f"CREATE VIEW IF NOT EXISTS landing_days AS SELECT {', '.join(LANDING_DAYS_KEY)}, sum(n) AS views "
    f"FROM landing_days_log GROUP BY {', '.join(LANDING_DAYS_KEY)} HAVING sum(n) <> 0",
    f"CREATE TABLE IF NOT EXISTS member_days_log {DAYS_TABLE}",
    f"CREATE VIEW IF NOT EXISTS member_days AS SELECT {DAYS_NAMES} FROM member_days_log FINAL WHERE NOT deleted",
)
# The tables a catch-up adds parts to, merged by merge_parts.
LOG_TABLES = ("member_facts_log", "member_days_log", "landing_links_log", "landing_facts_log", "landing_days_log")
# After a catch-up, a facts table is merged only when it holds more than this many active parts: the reads cost
# about the same with 2 to 5 (module docstring); after a rebuild, a merge of members or its undo and an erasure,
# each table is merged into one.
MAX_PARTS = 4
# Facts from before the landing facts, their days or the member days (empty tables) must not count as current:
# part of the key.
TABLES_KEY = " landings 2, member days 1"

# The columns of `events` the facts read (a catch-up copies its members' events with them; on chdb the projection
# by member holds them, engines.EVENTS_BY_MEMBER).
EVENT_READ_COLUMNS = ("seq, type, ts, member_id, visitor_id, channel, campaign, entry_point, group_key, referrer_id, "
                      "amount, margin, properties")

# The facts of the members of {events} (all events, or a catch-up's copy of its members'), referred = 0: one
# GROUP BY member over their events joined to their first and last join. The windows and tie-breaks are those of
# facts.MEMBER_FACTS.
MEMBER_FACTS = """
WITH ev AS (
    SELECT seq, type, ts, assumeNotNull(member_id) AS mid, channel AS ch, campaign AS cp, entry_point AS ep,
           group_key AS gk, referrer_id AS ref, amount, margin, @JSON_TEXT(properties, 'tier') AS tr,
           @LOCAL_DAY(ts) AS day
    FROM {events} WHERE member_id IS NOT NULL
),
joins AS (
    SELECT mid AS jid, argMin(tuple(ts, day, ch, cp, ep, gk, tr, ref), tuple(ts, seq)) AS fj,
           argMax(tuple(ts, gk), tuple(ts, seq)) AS lj
    FROM ev WHERE type = 'joined' GROUP BY mid
)
SELECT j.jid AS member_id, any(j.fj.1) AS join_ts, any(j.fj.2) AS join_day, any(j.fj.3) AS channel,
       any(j.fj.4) AS campaign, any(j.fj.5) AS entry_point, any(j.fj.6) AS group_key, any(j.fj.7) AS tier,
       any(j.fj.8) AS referrer_id,
       countIf(has($engagement, e.type) AND e.day = j.fj.2 + 1) > 0 AS r1,
       countIf(has($engagement, e.type) AND e.day = j.fj.2 + 7) > 0 AS r7,
       countIf(has($engagement, e.type) AND e.day = j.fj.2 + 14) > 0 AS r14,
       countIf(has($engagement, e.type) AND e.day = j.fj.2 + 30) > 0 AS r30,
       countIf(e.type = 'task_completed' AND e.day >= j.fj.2 AND e.day <= j.fj.2 + 1) > 0 AS task1,
       minIf(toNullable(e.ts), has($conversion, e.type) AND e.ts >= j.fj.1 AND e.ts < j.fj.1 + INTERVAL 30 DAY)
           AS first_conversion_ts,
       coalesce(sumIf(e.amount, has($conversion, e.type) AND e.ts >= j.fj.1
                                AND e.ts < j.fj.1 + INTERVAL 30 DAY), 0) AS revenue_30,
       coalesce(sumIf(e.margin, has($conversion, e.type) AND e.ts >= j.fj.1
                                AND e.ts < j.fj.1 + INTERVAL 30 DAY), 0) AS margin_30,
       coalesce(sumIf(e.amount, has($conversion, e.type) AND e.ts >= j.fj.1
                                AND e.ts < j.fj.1 + INTERVAL 90 DAY), 0) AS revenue_90,
       coalesce(sumIf(e.margin, has($conversion, e.type) AND e.ts >= j.fj.1
                                AND e.ts < j.fj.1 + INTERVAL 90 DAY), 0) AS margin_90,
       countIf(e.type = 'invite_sent' AND e.ts >= j.fj.1 AND e.ts < j.fj.1 + INTERVAL 30 DAY) AS invites,
       0 AS referred, any(j.lj.2) AS current_group,
       countIf(e.type = 'left' AND e.ts > j.lj.1) = 0 AS present,
       maxIf(toNullable(e.day), has($engagement, e.type)) AS last_active_day,
       $version AS version, false AS deleted
FROM joins j JOIN ev e ON e.mid = j.jid
GROUP BY j.jid
"""

# The rows of {targets} with their referred joins counted among {pool} (member_id, join_ts, referrer_id of
# every member that may name a target), into {table} as version $version.
REFERRED = """
INSERT INTO {table}
WITH counts AS (
    SELECT c.member_id AS cid, count() AS n FROM {targets} c JOIN {pool} f ON f.referrer_id = c.member_id
    WHERE f.member_id <> c.member_id AND f.join_ts >= c.join_ts AND f.join_ts < c.join_ts + INTERVAL 30 DAY
    GROUP BY c.member_id
)
SELECT {columns}, coalesce(k.n, 0), {rest}, $version, false
FROM {targets} t LEFT JOIN counts k ON k.cid = t.member_id
"""

# As facts.MEMBER_DAYS: the presence spans of the members of {events} (as in MEMBER_FACTS), each join until the
# member's next move (a leave at the join's very instant first; spans that end on their own day dropped), and
# their distinct engagement days, both sorted.
MEMBER_DAYS = """
WITH ev AS (
    SELECT seq, type, ts, assumeNotNull(member_id) AS mid, group_key AS gk, @LOCAL_DAY(ts) AS day
    FROM {events} WHERE member_id IS NOT NULL
),
moves AS (
    SELECT mid AS moved_id, day AS moved_day, type = 'joined' AS is_join, gk AS moved_group,
           @NEXT(day, mid, ts, type = 'joined', seq) AS next_move_day
    FROM ev WHERE type IN ('joined', 'left')
),
spanned AS (
    SELECT moved_id AS sid, arraySort(groupArray(tuple(moved_day, next_move_day, moved_group))) AS member_spans
    FROM moves WHERE is_join AND (next_move_day IS NULL OR next_move_day > moved_day) GROUP BY moved_id
),
active AS (
    SELECT mid AS aid, arraySort(groupUniqArray(day)) AS days FROM ev WHERE has($engagement, type) GROUP BY mid
)
SELECT s.sid AS member_id, s.member_spans AS spans, a.days AS active_days, $version AS version, false AS deleted
FROM spanned s LEFT JOIN active a ON a.aid = s.sid
"""

# As facts.LANDING_LINKS: a visitor is the member named on the earliest event that carries both ids.
LANDING_LINKS = """
SELECT vid AS visitor_id, argMin(mid, tuple(ts, seq)) AS member_id, $version AS version
FROM (SELECT assumeNotNull(visitor_id) AS vid, assumeNotNull(member_id) AS mid, ts, seq FROM events
      WHERE visitor_id IS NOT NULL AND member_id IS NOT NULL{scope})
GROUP BY vid
"""

# As facts.LANDING_ROWS: each person's first landing view of each local day (persons named through `{links}`),
# the day of their previous one, and whether a join of theirs follows it within 7 x 24 h; `{scope}` narrows the
# events read, `{person_scope}` the persons whose rows are made.
LANDING_ROWS = """
WITH people AS (
    SELECT e.seq AS seq, e.type AS type, e.ts AS ts, @LOCAL_DAY(e.ts) AS day, e.channel AS ch, e.campaign AS cp,
           e.entry_point AS ep, e.group_key AS gk, @JSON_TEXT(e.properties, 'tier') AS tr,
           assumeNotNull(coalesce(e.member_id, l.member_id, concat('visitor:', e.visitor_id))) AS pid
    FROM events e LEFT JOIN {links} l ON l.visitor_id = e.visitor_id
    WHERE e.type IN ('landing_view', 'joined'){scope}
),
views AS (
    SELECT pid AS vpid, day AS vday, argMin(tuple(ts, seq, ch, cp, ep, gk, tr), tuple(ts, seq)) AS v
    FROM people WHERE type = 'landing_view'{person_scope} GROUP BY pid, day
),
soon AS (
    SELECT w.vpid AS spid, w.vday AS sday FROM views w JOIN people j ON j.pid = w.vpid
    WHERE j.type = 'joined' AND j.ts >= w.v.1 AND j.ts < w.v.1 + INTERVAL 7 DAY GROUP BY w.vpid, w.vday
)
SELECT w.vpid AS person, w.v.1 AS ts, w.vday AS day,
       lagInFrame(toNullable(w.vday)) OVER (PARTITION BY w.vpid ORDER BY w.v.1, w.v.2
                                            ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev_day,
       w.v.3 AS channel, w.v.4 AS campaign, w.v.5 AS entry_point, w.v.6 AS group_key, w.v.7 AS tier,
       s.spid IS NOT NULL AS joined, $version AS version, false AS deleted
FROM views w LEFT JOIN soon s ON s.spid = w.vpid AND s.sday = w.vday
"""


def _seqs_of(engine: Any, ids: dict[str, str]) -> str:
    """A subquery: the seqs of the events whose column (a key of `ids`) is in the subquery it maps to, read
    from the stored rows (every version, on a server, where `events` reads events_log FINAL and a server before
    25.6 uses no skip index under FINAL) through the events' skip indexes (engines.EVENT_INDEXES); `seq IN` it
    then reads `events` by its primary key. A catch-up so reads the granules of its members' events, not the
    whole table; the callers keep their own condition on the ids, as a seq's newest row may not match."""
    table = "events_log" if engine.name == "clickhouse" else "events"
    return "(" + " UNION ALL ".join(f"SELECT seq FROM {table} WHERE {column} IN {subquery}"
                                    for column, subquery in ids.items()) + ")"


def _members_sql(template: str, events: str = "events") -> str:
    """MEMBER_FACTS or MEMBER_DAYS over the members of `events` (a table of events)."""
    return template.replace("{events}", events)


def _key(settings: Any) -> str:
    return _settings_key(settings) + TABLES_KEY


def _params(settings: Any, version: int) -> dict[str, Any]:
    return {"tz": settings.timezone, "engagement": list(settings.engagement_types),
            "conversion": list(settings.conversion_types), "version": version}


def _command(engine: Any, sql: str) -> None:
    engine.command(sql)


def _select(engine: Any, sql: str) -> list[tuple[Any, ...]]:
    return engine.query(sql, {})[1]  # type: ignore[no-any-return]


def _insert(engine: Any, sql: str, params: dict[str, Any]) -> None:
    engine.command(for_clickhouse(sql, params))


def _state(engine: Any) -> tuple[int, datetime | None, str, int] | None:
    rows = _select(engine, "SELECT watermark, max_ts, settings, version FROM facts_state FINAL WHERE id = 1")
    if not rows:
        return None
    watermark, max_ts, key, version = rows[0]
    if max_ts is not None and max_ts.tzinfo is not None:
        max_ts = max_ts.replace(tzinfo=None)  # naive UTC, as the cutoffs are
    return int(watermark), max_ts, str(key), int(version)


def _set_state(engine: Any, watermark: int, key: str, version: int) -> None:
    _insert(engine, "INSERT INTO facts_state SELECT 1, $watermark, (SELECT max(ts) FROM events), $key, $version",
            {"watermark": watermark, "key": key, "version": version})


def usable(engine: Any, settings: Any, cutoff: datetime | None) -> bool:
    """As facts.usable: computed with these settings over every shipped event, and none at or after cutoff
    (None: any cutoff)."""
    state = _state(engine)
    if state is None:
        return False
    watermark, max_ts, stored, _version = state
    return stored == _key(settings) and watermark == engine.watermark() and (
        cutoff is None or max_ts is None or max_ts < cutoff)


def _next_version(state: tuple[int, datetime | None, str, int] | None) -> int:
    """Every write is preceded by a stale state of the version it writes and followed by a current state one
    above: after a crash in between, the next refresh (seeing the stale state) rebuilds into a fresh table,
    so the state's version is always at least the table's newest."""
    return (state[3] if state else 0) + 1


def refresh(engine: Any, settings: Any) -> None:
    """Bring the facts up to the shipped events (facts.refresh_facts on ClickHouse)."""
    key = _key(settings)
    state = _state(engine)
    watermark = engine.watermark()
    if state is not None and state[0] == watermark and state[2] == key:
        return
    version = _next_version(state)
    _set_state(engine, state[0] if state else 0, "", version)  # stale until the last write below
    if state is None or state[2] != key:
        rebuild(engine, settings, version)
        rebuild_landings(engine, settings, version)
        rebuilt = True
    else:
        rebuilt = _catch_up(engine, settings, state[0], version)
        rebuilt = _catch_up_landings(engine, settings, state[0], version) or rebuilt
    _set_state(engine, watermark, key, version + 1)
    merge_parts(engine, 1 if rebuilt else MAX_PARTS)


def merge_parts(engine: Any, max_parts: int = 1) -> None:
    """Merge each facts table holding more than `max_parts` active parts into one (OPTIMIZE ... FINAL): FINAL
    then reads it without merging. A table whose merges are stopped (SYSTEM STOP MERGES) is left as it is."""
    tables = _select(engine, "SELECT table FROM system.parts WHERE database = currentDatabase() AND active "
                             f"AND table IN {LOG_TABLES!r} GROUP BY table HAVING count() > {int(max_parts)}")
    for (table,) in tables:
        try:
            _command(engine, f"OPTIMIZE TABLE {table} FINAL")
        except Exception as exc:  # "Code: 236 ... (ABORTED)": chdb's ChdbError carries no code attribute
            if "(ABORTED)" not in str(exc):
                raise


def rebuild(engine: Any, settings: Any, version: int, table: str = "member_facts_log") -> None:
    """Every member's facts and days from every event, into fresh tables swapped in for `table` and the days
    (member_days_log, or <table>_days for another table: a rebuild to check the kept ones); each made if missing."""
    days = "member_days_log" if table == "member_facts_log" else f"{table}_days"
    suffix = uuid.uuid4().hex
    build, fresh, fresh_days = f"facts_build_{suffix}", f"facts_fresh_{suffix}", f"days_fresh_{suffix}"
    _command(engine, f"CREATE TABLE {build} ({TABLE_COLUMNS}) ENGINE = MergeTree ORDER BY member_id")
    try:
        _insert(engine, f"INSERT INTO {build} " + _members_sql(MEMBER_FACTS), _params(settings, version))
        _command(engine, f"CREATE TABLE {fresh} ({TABLE_COLUMNS}) ENGINE = ReplacingMergeTree(version) "
                         "ORDER BY member_id")
        pool = f"(SELECT member_id, join_ts, referrer_id FROM {build} WHERE referrer_id IS NOT NULL)"
        _referred(engine, fresh, build, pool, version)
        _command(engine, f"CREATE TABLE {fresh_days} {DAYS_TABLE}")
        _insert(engine, f"INSERT INTO {fresh_days} " + _members_sql(MEMBER_DAYS), _params(settings, version))
        for kept, made in ((table, fresh), (days, fresh_days)):
            _command(engine, f"CREATE TABLE IF NOT EXISTS {kept} AS {made}")
            _command(engine, f"EXCHANGE TABLES {kept} AND {made}")
    finally:
        _drop(engine, build, fresh, fresh_days)


def _drop(engine: Any, *tables: str) -> None:
    for name in tables:
        _command(engine, f"DROP TABLE IF EXISTS {name} SYNC")


def _referred(engine: Any, table: str, targets: str, pool: str, version: int) -> None:
    columns = ", ".join(f"t.{n}" for n in FACT_NAMES[:FACT_NAMES.index("referred")])
    rest = ", ".join(f"t.{n}" for n in FACT_NAMES[FACT_NAMES.index("referred") + 1:])
    sql = REFERRED.replace("{columns}", columns).replace("{rest}", rest)
    _insert(engine, sql.replace("{table}", table).replace("{targets}", targets).replace("{pool}", pool),
            {"version": version})


def _catch_up(engine: Any, settings: Any, since: int, version: int) -> bool:
    """The rows of the members named on events after `since`, or every row when that is most of them (then
    True: rebuilt)."""
    touched = f"facts_touched_{uuid.uuid4().hex}"
    _command(engine, f"CREATE TABLE {touched} (member_id String) ENGINE = MergeTree ORDER BY member_id")
    try:
        _insert(engine, f"INSERT INTO {touched} SELECT DISTINCT assumeNotNull(member_id) FROM events "
                        "WHERE seq > $since AND member_id IS NOT NULL", {"since": since})
        # Stored rows (old versions too, until merged) stand in for members: only the choice of path depends on it.
        count, members = _select(engine, f"SELECT (SELECT count() FROM {touched}), "
                                          "(SELECT count() FROM member_facts_log)")[0]
        if count > facts.FULL_REBUILD_SHARE * members:
            rebuild(engine, settings, version)
            return True
        if count:
            update_touched(engine, settings, touched, version)
        return False
    finally:
        _drop(engine, touched)


def update_touched(engine: Any, settings: Any, touched: str, version: int) -> None:
    """New versions of the rows (facts and days) of the members in table `touched` (tombstones for those with no
    join, or no span, left), and of the referrers named by their old and new first joins (referred counted
    again)."""
    suffix = uuid.uuid4().hex
    build, targets, theirs = f"facts_build_{suffix}", f"facts_targets_{suffix}", f"facts_events_{suffix}"
    in_touched = f"member_id IN (SELECT member_id FROM {touched})"
    scope = f" AND {in_touched}"
    if engine.name == "clickhouse":  # chdb reads them through its projection by member (engines.EVENTS_BY_MEMBER)
        scope += f" AND seq IN {_seqs_of(engine, {'member_id': f'(SELECT member_id FROM {touched})'})}"
    for name in (build, targets):
        _command(engine, f"CREATE TABLE {name} ({TABLE_COLUMNS}) ENGINE = MergeTree ORDER BY member_id")
    try:
        # Their events read once: the facts and the days each read them twice (a CTE is computed where used).
        _command(engine, f"CREATE TABLE {theirs} ENGINE = MergeTree ORDER BY seq AS SELECT {EVENT_READ_COLUMNS} "
                         f"FROM events WHERE member_id IS NOT NULL{scope}")
        _update_days(engine, settings, touched, theirs, version)
        _insert(engine, f"INSERT INTO {build} " + _members_sql(MEMBER_FACTS, theirs), _params(settings, version))
        names = ", ".join(FACT_NAMES)
        _insert(engine, f"""INSERT INTO {targets} SELECT {names}, $version, false FROM {build}
            UNION ALL SELECT {names}, $version, false FROM member_facts
            WHERE NOT {in_touched} AND member_id IN (
                SELECT assumeNotNull(referrer_id) FROM member_facts WHERE {in_touched} AND referrer_id IS NOT NULL
                UNION DISTINCT
                SELECT assumeNotNull(referrer_id) FROM {build} WHERE referrer_id IS NOT NULL)""",
                {"version": version})
        pool = (f"(SELECT member_id, join_ts, referrer_id FROM member_facts WHERE NOT {in_touched} "
                f"AND referrer_id IN (SELECT member_id FROM {targets}) "
                f"UNION ALL SELECT member_id, join_ts, referrer_id FROM {build} WHERE referrer_id IS NOT NULL)")
        tombstones = (f"INSERT INTO member_facts_log (member_id, version, deleted) SELECT member_id, $version, true "
                      f"FROM {touched} WHERE member_id NOT IN (SELECT member_id FROM {build}) "
                      f"AND member_id IN (SELECT member_id FROM member_facts WHERE {in_touched})")
        _insert(engine, tombstones, {"version": version})  # read member_facts before the new rows land
        _referred(engine, "member_facts_log", targets, pool, version)
    finally:
        _drop(engine, build, targets, theirs)


def _update_days(engine: Any, settings: Any, touched: str, theirs: str, version: int) -> None:
    """New versions of the member days of the members in table `touched` (their events: table `theirs`), and
    tombstones for those of them who have a row but no span any more."""
    build = f"days_build_{uuid.uuid4().hex}"
    in_touched = f"member_id IN (SELECT member_id FROM {touched})"
    _command(engine, f"CREATE TABLE {build} ({DAYS_COLUMNS}) ENGINE = MergeTree ORDER BY member_id")
    try:
        _insert(engine, f"INSERT INTO {build} " + _members_sql(MEMBER_DAYS, theirs), _params(settings, version))
        _insert(engine, "INSERT INTO member_days_log (member_id, version, deleted) SELECT member_id, $version, true "
                        f"FROM member_days WHERE {in_touched} AND member_id NOT IN (SELECT member_id FROM {build})",
                {"version": version})
        _command(engine, f"INSERT INTO member_days_log SELECT * FROM {build}")
    finally:
        _drop(engine, build)


def rewrite(engine: Any, settings: Any, member_ids: set[str], change: Callable[[], None]) -> None:
    """Run `change` (events rewritten in place: a merge, its undo, an erasure), then compute again the facts of
    `member_ids` and of the members whose first join names one of them. The facts are marked stale first: a
    crash in between rebuilds them. Facts that are not current are left to the next refresh."""
    key = _key(settings)
    state = _state(engine)
    current = state is not None and state[2] == key
    version = _next_version(state) if current else 0
    if current:
        _set_state(engine, state[0], "", version)  # type: ignore[index]
    change()
    ids = sorted(member_ids)
    if not current or not ids:
        if current:
            _set_state(engine, state[0], key, version + 1)  # type: ignore[index]
        return
    touched = f"facts_touched_{uuid.uuid4().hex}"
    _command(engine, f"CREATE TABLE {touched} (member_id String) ENGINE = MergeTree ORDER BY member_id")
    try:
        _insert(engine, f"INSERT INTO {touched} SELECT DISTINCT arrayJoin($ids) UNION DISTINCT "
                        "SELECT member_id FROM member_facts WHERE has($ids, referrer_id)", {"ids": ids})
        update_touched(engine, settings, touched, version)
    finally:
        _drop(engine, touched)
    rebuild_landings(engine, settings, version)  # ids rewritten in place move links and persons: rare, one pass
    _set_state(engine, state[0], key, version + 1)  # type: ignore[index]
    merge_parts(engine)


def purge(engine: Any, member_id: str, visitor_id: str | None = None) -> None:
    """Every stored version of a row that names `member_id` (as member or referrer) or `visitor_id` (a link, a
    visitor's landing rows) off the disk now: after an erasure, whose new rows carry the pseudonyms. chdb copies
    the other rows into a fresh table and drops the old one (SYNC); a server deletes them by a synchronous
    mutation."""
    member = for_clickhouse("$id", {"id": member_id}).split("\n")[0]
    visitor = for_clickhouse("$id", {"id": visitor_id or ""}).split("\n")[0]
    person = for_clickhouse("$id", {"id": f"visitor:{visitor_id}"}).split("\n")[0]
    wheres = {"member_facts_log": f"member_id = {member} OR ifNull(referrer_id = {member}, false)",
              "member_days_log": f"member_id = {member}",
              "landing_links_log": f"member_id = {member}" + (f" OR visitor_id = {visitor}" if visitor_id else ""),
              "landing_facts_log": f"person = {member}" + (f" OR person = {person}" if visitor_id else "")}
    for table, where in wheres.items():
        if engine.name == "clickhouse":
            _command(engine, f"ALTER TABLE {table} DELETE WHERE {where} SETTINGS mutations_sync = 2")
            continue
        fresh = f"facts_fresh_{uuid.uuid4().hex}"
        _command(engine, f"CREATE TABLE {fresh} AS {table}")
        try:
            _command(engine, f"INSERT INTO {fresh} SELECT * FROM {table} WHERE NOT ({where})")
            _command(engine, f"EXCHANGE TABLES {table} AND {fresh}")
        finally:
            _drop(engine, fresh)
    merge_parts(engine)  # an erasure leaves one part per table, as a merge of members does


def _landing_sql(links: str, scope: str = "", person_scope: str = "") -> str:
    return LANDING_ROWS.replace("{links}", links).replace("{scope}", scope).replace("{person_scope}", person_scope)


def _day_counts(rows: str, sign: int) -> str:
    """The landing rows of `rows` (a table or subquery of landing facts) counted per landing day key, times sign."""
    key = ", ".join(LANDING_DAYS_KEY)
    return f"SELECT {key}, toInt64({sign}) * count() AS n FROM {rows} GROUP BY {key}"


def rebuild_landings(engine: Any, settings: Any, version: int, table: str = "landing_facts_log",
                     links: str = "landing_links_log") -> None:
    """Every link, landing row and landing day count from every event, into fresh tables swapped in for `links`,
    `table` and the days (landing_days_log, or <table>_days for another table: a rebuild to check the kept ones)."""
    days = "landing_days_log" if table == "landing_facts_log" else f"{table}_days"
    suffix = uuid.uuid4().hex
    fresh_links, fresh, fresh_days = f"links_fresh_{suffix}", f"landing_fresh_{suffix}", f"days_fresh_{suffix}"
    try:
        _command(engine, f"CREATE TABLE {fresh_links} {LINKS_TABLE}")
        _insert(engine, f"INSERT INTO {fresh_links} " + LANDING_LINKS.replace("{scope}", ""), {"version": version})
        _command(engine, f"CREATE TABLE {fresh} {LANDING_TABLE}")
        _insert(engine, f"INSERT INTO {fresh} " + _landing_sql(fresh_links),
                {"tz": settings.timezone, "version": version})
        _command(engine, f"CREATE TABLE {fresh_days} {LANDING_DAYS_TABLE}")
        _command(engine, f"INSERT INTO {fresh_days} " + _day_counts(fresh, 1))  # one row per (person, day) there
        for kept, made in ((links, fresh_links), (table, fresh), (days, fresh_days)):
            _command(engine, f"CREATE TABLE IF NOT EXISTS {kept} AS {made}")
            _command(engine, f"EXCHANGE TABLES {kept} AND {made}")
    finally:
        _drop(engine, fresh_links, fresh, fresh_days)


def _catch_up_landings(engine: Any, settings: Any, since: int, version: int) -> bool:
    """As facts._catch_up_landings: the landing rows of the persons named on landing views and joins after
    `since`, and of both sides of every visitor whose link the new events changed; every row when that is most
    of them (then True: rebuilt)."""
    suffix = uuid.uuid4().hex
    new_links, named, build = f"links_new_{suffix}", f"landing_named_{suffix}", f"landing_build_{suffix}"
    try:
        _command(engine, f"CREATE TABLE {new_links} {LINKS_TABLE}")
        _command(engine, f"CREATE TABLE {named} (person String) ENGINE = MergeTree ORDER BY person")
        linked = ("(SELECT visitor_id FROM events WHERE seq > $since AND visitor_id IS NOT NULL "
                  "AND member_id IS NOT NULL)")
        _insert(engine, f"INSERT INTO {new_links} " + LANDING_LINKS.replace(
            "{scope}", f" AND visitor_id IN {linked} AND seq IN {_seqs_of(engine, {'visitor_id': linked})}"),
            {"since": since, "version": version})
        moved = (f"FROM {new_links} n LEFT JOIN (SELECT * FROM landing_links WHERE visitor_id IN (SELECT visitor_id "
                 f"FROM {new_links})) o ON o.visitor_id = n.visitor_id "
                 "WHERE o.member_id IS NULL OR o.member_id != n.member_id")
        _insert(engine, f"INSERT INTO {named} SELECT coalesce(o.member_id, concat('visitor:', n.visitor_id)) "
                        f"{moved} UNION ALL SELECT n.member_id {moved}", {})
        _command(engine, f"INSERT INTO landing_links_log SELECT * FROM {new_links}")
        _insert(engine, f"INSERT INTO {named} SELECT assumeNotNull(coalesce(e.member_id, l.member_id, "
                        "concat('visitor:', e.visitor_id))) FROM events e LEFT JOIN (SELECT * FROM landing_links "
                        "WHERE visitor_id IN (SELECT visitor_id FROM events WHERE seq > $since)) l "
                        "ON l.visitor_id = e.visitor_id WHERE e.seq > $since AND e.type IN ('landing_view', 'joined')",
                {"since": since})
        # Stored rows (old versions too, until merged) stand in for the rows: only the choice of path depends on it.
        count, rows = _select(engine, f"SELECT (SELECT uniqExact(person) FROM {named}), "
                                       "(SELECT count() FROM landing_facts_log)")[0]
        if count > facts.FULL_REBUILD_SHARE * rows:
            rebuild_landings(engine, settings, version)
            return True
        if count:
            in_named = f"(SELECT person FROM {named})"
            visitors = (f"(SELECT visitor_id FROM landing_links WHERE member_id IN {in_named} "
                        f"UNION ALL SELECT substring(person, 9) FROM {named} WHERE startsWith(person, 'visitor:'))")
            scope = (f" AND (e.member_id IN {in_named} OR e.visitor_id IN {visitors}) "
                     f"AND e.seq IN {_seqs_of(engine, {'member_id': in_named, 'visitor_id': visitors})}")
            _command(engine, f"CREATE TABLE {build} {LANDING_TABLE}")
            _insert(engine, f"INSERT INTO {build} " + _landing_sql("landing_links", scope,
                                                                    f" AND pid IN {in_named}"),
                    {"tz": settings.timezone, "version": version})
            # The day counts change by the touched persons' new rows less their old ones (read before they go).
            _command(engine, f"INSERT INTO landing_days_log SELECT {', '.join(LANDING_DAYS_KEY)}, sum(n) FROM ("
                             f"{_day_counts(f'(SELECT * FROM landing_facts WHERE person IN {in_named})', -1)} "
                             f"UNION ALL {_day_counts(build, 1)}) GROUP BY {', '.join(LANDING_DAYS_KEY)} "
                             "HAVING sum(n) <> 0")
            _insert(engine, "INSERT INTO landing_facts_log (person, day, version, deleted) "
                            f"SELECT person, day, $version, true FROM landing_facts WHERE person IN {in_named} "
                            f"AND (person, day) NOT IN (SELECT person, day FROM {build})", {"version": version})
            _command(engine, f"INSERT INTO landing_facts_log SELECT * FROM {build}")
        return False
    finally:
        _drop(engine, new_links, named, build)


def members_of(engine: Any, seqs: list[int]) -> set[str]:
    """The member and referrer ids on these events as the store holds them (before a restate)."""
    if not seqs:
        return set()
    rows = _select(engine, "SELECT member_id, referrer_id FROM events WHERE seq IN ("
                   + ", ".join(str(int(s)) for s in seqs) + ")")
    return {v for row in rows for v in row if v}
