"""The ClickHouse per-member facts' tables, views and the SQL that computes their rows: embedded (chdb) and a
server, the same SQL for both. analytics/facts_clickhouse.py keeps them up to date; facts_clickhouse_parts.py merges
their parts.

`member_facts_log` is a ReplacingMergeTree ordered by member_id with a `version` column: maintenance only ever
inserts new versions of whole rows, and a read keeps each member's newest row (`member_facts`, a view). Replacing
rather than AggregatingMergeTree because a member's facts are not a merge of partial states: a late join
moves the join day, and with it every window (D1-D30 activity, 30/90-day money, referred joins) over events
that were already counted, so the row has to be computed again from all the member's events anyway; keeping
aggregate states instead would cost more to store and to read, for no saving when writing. No DELETE either:
a member whose events no longer hold a join (a merge, an erasure) gets a tombstone row (`deleted`).

Reads are exact whatever the merges have done: the view reads with FINAL (the newest version per member,
tombstones dropped after it). At 1M members, with the last update not merged yet, COHORT + CURRENT of two
slices took 0.8 s through FINAL and 14.9 s through argMax(tuple of the row, version) GROUP BY member_id
(VIEW_ARGMAX, kept for bench/bench_facts.py to measure again).

The landing facts (M1, facts_duckdb.LANDING_ROWS) are stored the same way: `landing_links_log` (visitor -> member) and
`landing_facts_log` (person, local day), ReplacingMergeTrees read through FINAL views under the names the DuckDB
tables have, so queries.LANDING_FACTS runs unchanged.

`landing_days_log` counts the landing facts per day and what M1 slices them by (facts_duckdb.LANDING_DAY_COUNTS), for
queries.LANDING_DAYS as on DuckDB: a SummingMergeTree of signed counts keyed by all of it (why signed counts:
facts_clickhouse.py). Merges add the rows of a key up and drop those that reach 0, and the view `landing_days`
adds up what is not merged yet.

`member_days_log` holds the member days (facts_duckdb.MEMBER_DAYS: per joined member, the presence spans and the
engagement days, as arrays), for the daily trend's M3 (queries.CURRENT_DAILY_FACTS_CLICKHOUSE) and the previous
period's: a ReplacingMergeTree by member read through the FINAL view `member_days`.
"""

from __future__ import annotations

COLUMNS = (
    ("member_id", "String"), ("join_ts", "DateTime64(6, 'UTC')"), ("join_day", "Date"),
    ("channel", "Nullable(String)"), ("campaign", "Nullable(String)"), ("entry_point", "Nullable(String)"),
    ("group_key", "Nullable(String)"), ("tier", "Nullable(String)"), ("referrer_id", "Nullable(String)"),
    ("r1", "Bool"), ("r7", "Bool"), ("r14", "Bool"), ("r30", "Bool"), ("task1", "Bool"),
    ("first_conversion_ts", "Nullable(DateTime64(6, 'UTC'))"),
    ("revenue_30", "Decimal(38, 4)"), ("margin_30", "Decimal(38, 4)"),
    ("revenue_90", "Decimal(38, 4)"), ("margin_90", "Decimal(38, 4)"),
    ("invites", "Int64"), ("referred", "Int64"), ("present", "Bool"),
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

# The landing facts (facts_duckdb.LANDING_ROWS): one row per person and local day of a view, keyed by both, and the
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

# The member days (facts_duckdb.MEMBER_DAYS): a member's rows replaced as a whole, a tombstone when no span is left.
DAYS_COLUMNS = ("member_id String, spans Array(Tuple(present_from Date, present_until Nullable(Date))), "
                "active_days Array(Date), version UInt64, deleted Bool")
DAYS_TABLE = f"({DAYS_COLUMNS}) ENGINE = ReplacingMergeTree(version) ORDER BY member_id"
DAYS_NAMES = "member_id, spans, active_days"

# The views the metrics read, by name. A view names its table's columns, so a rebuild that swaps in tables of other
# columns (a new FACTS_VERSION) replaces the views over them too (facts_clickhouse.replace_views).
VIEWS = {
    "member_facts": VIEW,
    "landing_links": "SELECT visitor_id, member_id FROM landing_links_log FINAL",
    "landing_facts": f"SELECT {', '.join(LANDING_NAMES)} FROM landing_facts_log FINAL WHERE NOT deleted",
    "landing_days": f"SELECT {', '.join(LANDING_DAYS_KEY)}, sum(n) AS views FROM landing_days_log "
                    f"GROUP BY {', '.join(LANDING_DAYS_KEY)} HAVING sum(n) <> 0",
    "member_days": f"SELECT {DAYS_NAMES} FROM member_days_log FINAL WHERE NOT deleted",
}

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS facts_state (id UInt8, watermark Int64, max_ts Nullable(DateTime64(6, 'UTC')), "
    "settings String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id",
    f"CREATE TABLE IF NOT EXISTS member_facts_log ({TABLE_COLUMNS}) "
    "ENGINE = ReplacingMergeTree(version) ORDER BY member_id",
    f"CREATE TABLE IF NOT EXISTS landing_links_log {LINKS_TABLE}",
    f"CREATE TABLE IF NOT EXISTS landing_facts_log {LANDING_TABLE}",
    f"CREATE TABLE IF NOT EXISTS landing_days_log {LANDING_DAYS_TABLE}",
    f"CREATE TABLE IF NOT EXISTS member_days_log {DAYS_TABLE}",
    *(f"CREATE VIEW IF NOT EXISTS {name} AS {sql}" for name, sql in VIEWS.items()),
)

# The columns of `events` the facts read (a catch-up copies its members' events with them; on chdb the projection
# by member holds them, engines.EVENTS_BY_MEMBER).
EVENT_READ_COLUMNS = ("seq, type, ts, member_id, visitor_id, channel, campaign, entry_point, group_key, referrer_id, "
                      "amount, margin, properties")

# The facts of the members of {events} (all events, or a catch-up's copy of its members'), referred = 0: one
# GROUP BY member over their events joined to their first and last join. The windows and tie-breaks are those of
# facts_duckdb.MEMBER_FACTS.
MEMBER_FACTS = """
WITH ev AS (
    SELECT seq, type, ts, assumeNotNull(member_id) AS mid, channel AS ch, campaign AS cp, entry_point AS ep,
           group_key AS gk, referrer_id AS ref, amount, margin, @JSON_TEXT(properties, 'tier') AS tr,
           @LOCAL_DAY(ts) AS day
    FROM {events} WHERE member_id IS NOT NULL
),
joins AS (
    SELECT mid AS jid, argMin(tuple(ts, day, ch, cp, ep, gk, tr, ref), tuple(ts, seq)) AS fj,
           max(ts) AS last_ts
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
       0 AS referred, countIf(e.type = 'left' AND e.ts > j.last_ts) = 0 AS present,
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

# As facts_duckdb.MEMBER_DAYS: the presence spans of the members of {events} (as in MEMBER_FACTS), each join until the
# member's next move (a leave at the join's very instant first; spans that end on their own day dropped), and
# their distinct engagement days, both sorted.
MEMBER_DAYS = """
WITH ev AS (
    SELECT seq, type, ts, assumeNotNull(member_id) AS mid, @LOCAL_DAY(ts) AS day
    FROM {events} WHERE member_id IS NOT NULL
),
moves AS (
    SELECT mid AS moved_id, day AS moved_day, type = 'joined' AS is_join,
           @NEXT(day, mid, ts, type = 'joined', seq) AS next_move_day
    FROM ev WHERE type IN ('joined', 'left')
),
spanned AS (
    SELECT moved_id AS sid, arraySort(groupArray(tuple(moved_day, next_move_day))) AS member_spans
    FROM moves WHERE is_join AND (next_move_day IS NULL OR next_move_day > moved_day) GROUP BY moved_id
),
active AS (
    SELECT mid AS aid, arraySort(groupUniqArray(day)) AS days FROM ev WHERE has($engagement, type) GROUP BY mid
)
SELECT s.sid AS member_id, s.member_spans AS spans, a.days AS active_days, $version AS version, false AS deleted
FROM spanned s LEFT JOIN active a ON a.aid = s.sid
"""

# As facts_duckdb.LANDING_LINKS: a visitor is the member named on the earliest event that carries both ids.
LANDING_LINKS = """
SELECT vid AS visitor_id, argMin(mid, tuple(ts, seq)) AS member_id, $version AS version
FROM (SELECT assumeNotNull(visitor_id) AS vid, assumeNotNull(member_id) AS mid, ts, seq FROM events
      WHERE visitor_id IS NOT NULL AND member_id IS NOT NULL{scope})
GROUP BY vid
"""

# As facts_duckdb.LANDING_ROWS: each person's first landing view of each local day (persons named through `{links}`),
# the day of their previous one, and whether a join of theirs follows it within 7 x 24 h; `{scope}` narrows the
# events read, `{person_scope}` the persons whose rows are made.
LANDING_ROWS = """
WITH people AS (
    SELECT e.seq AS seq, e.type AS type, e.ts AS ts, @LOCAL_DAY(e.ts) AS day, e.channel AS ch, e.campaign AS cp,
           e.entry_point AS ep, e.group_key AS gk, @JSON_TEXT(e.properties, 'tier') AS tr,
           assumeNotNull(coalesce(e.member_id, l.member_id, concat('visitor:', e.visitor_id))) AS pid
    FROM {events} e LEFT JOIN {links} l ON l.visitor_id = e.visitor_id
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


def members_sql(template: str, events: str = "events") -> str:
    """MEMBER_FACTS or MEMBER_DAYS over the members of `events` (a table of events)."""
    return template.replace("{events}", events)


def landing_sql(links: str, scope: str = "", person_scope: str = "", events: str = "events") -> str:
    """LANDING_ROWS over `events` (a table of events), with its persons named through `links`, its events
    narrowed by `scope`, its persons by `person_scope`."""
    return (LANDING_ROWS.replace("{links}", links).replace("{scope}", scope).replace("{person_scope}", person_scope)
            .replace("{events}", events))


def day_counts(rows: str, sign: int) -> str:
    """The landing rows of `rows` (a table or subquery of landing facts) counted per landing day key, times sign."""
    key = ", ".join(LANDING_DAYS_KEY)
    return f"SELECT {key}, toInt64({sign}) * count() AS n FROM {rows} GROUP BY {key}"
