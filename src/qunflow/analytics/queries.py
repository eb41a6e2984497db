"""Metric SQL over the analytics store, written once per population (METRICS.md).

Each query returns sufficient statistics (counts and sums) per slice plus a total row, using
GROUPING SETS; `domain.metrics.metrics_from_counts` turns them into rates. Days are calendar
days in the reporting time zone; `ts` is stored in UTC.

With an experiment, every population keeps only the people exposed to it (their first
`experiment_exposure`, by member or by the visitor id that became a member) and every behaviour
(activity, tasks, conversions, invites, referred joins, landing views) counts only at or after the
exposure; joins, windows and maturity stay anchored where METRICS.md puts them.
"""

from __future__ import annotations

# Events known as of the as-of day, with their local calendar day.
BASE = """
WITH ev AS @NOT_MATERIALIZED() (  -- DuckDB would otherwise hold every event in memory
    SELECT seq, type, ts, member_id, visitor_id, channel, campaign, entry_point, group_key, referrer_id,
           amount, margin, experiment, variant, properties,
           @EVENT_DAY(ts) AS day
    FROM events WHERE ts < $cutoff
),
first_join AS (  -- a member's first joined event carries their acquisition attributes
    SELECT member_id, ts AS join_ts, day AS join_day, channel, campaign, entry_point, group_key,
           @JSON_TEXT(properties, 'tier') AS tier, referrer_id
    FROM ev WHERE type = 'joined' AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts, seq) = 1
),
links AS (  -- a visitor is the member named on the earliest event that carries both ids
    SELECT visitor_id, member_id FROM ev WHERE visitor_id IS NOT NULL AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY visitor_id ORDER BY ts, seq) = 1
){exposure_cte},
cohort AS (
    SELECT f.*{exposure_columns}, {member_dim} AS dim FROM first_join f{exposure_join}
    WHERE join_day BETWEEN $start AND $end {member_filter}
)
"""

EXPOSURE_FIRST = """
exposure AS (  -- a person's first exposure to the experiment, with its variant
    SELECT coalesce(e.member_id, l.member_id, 'visitor:' || e.visitor_id) AS person,
           e.ts AS exposed_ts, e.variant AS variant
    FROM ev e LEFT JOIN links l ON l.visitor_id = e.visitor_id
    WHERE e.type = 'experiment_exposure' AND e.experiment = $experiment
    QUALIFY row_number() OVER (
        PARTITION BY coalesce(e.member_id, l.member_id, 'visitor:' || e.visitor_id) ORDER BY e.ts, e.seq) = 1
)"""
EXPOSURE = "," + EXPOSURE_FIRST + """,
behaviour AS (  -- exposed members' events at or after their exposure
    SELECT e.* FROM ev e JOIN exposure xp ON xp.person = e.member_id WHERE e.ts >= xp.exposed_ts
)"""

MEMBER_DIMS = {
    "none": "@NULL_TEXT()", "channel": "channel", "campaign": "campaign", "entry_point": "entry_point",
    "group": "group_key", "tier": "tier", "cohort_day": "@TEXT(join_day)",
    "cohort_week": "@ISO_WEEK(join_day)", "variant": "variant",
}
LANDING_DIMS = {
    **MEMBER_DIMS, "tier": "@JSON_TEXT(properties, 'tier')",
    "cohort_day": "@TEXT(day)", "cohort_week": "@ISO_WEEK(day)", "variant": "xp.variant",
}
LANDING_FACTS_DIMS = {**LANDING_DIMS, "tier": "tier"}  # landing_facts holds the view's tier as a column

# The cohort's sufficient statistics from one row per member (`facts`); shared by COHORT and COHORT_FACTS.
# Its flags are never NULL, so @COUNT_IF counts what count(*) FILTER would (DuckDB's count_if is a third quicker).
COHORT_COUNTS = """SELECT grouping(dim) = 1 AS is_total, dim,
       count(*) AS cohort_size, @COUNT_IF(unattributed) AS unattributed,
       @COUNT_IF(e1) AS eligible_1, @COUNT_IF(e1 AND r1) AS retained_1,
       @COUNT_IF(e7) AS eligible_7, @COUNT_IF(e7 AND r7) AS retained_7,
       @COUNT_IF(e14) AS eligible_14, @COUNT_IF(e14 AND r14) AS retained_14,
       @COUNT_IF(e30) AS eligible_30, @COUNT_IF(e30 AND r30) AS retained_30,
       @COUNT_IF(e1 AND task1) AS task_d1,
       @COUNT_IF(conv) AS converted,
       @COUNT_IF(NOT conv AND NOT m30) AS in_progress,
       @COUNT_IF(m30) AS mature_30,
       @COUNT_IF(m30 AND conv) AS converted_mature,
       @MEDIAN(seconds) FILTER (WHERE conv) AS median_seconds,
       sum(revenue_30) FILTER (WHERE m30) AS revenue_30, sum(margin_30) FILTER (WHERE m30) AS margin_30,
       sum(invites) FILTER (WHERE m30) AS invites_30, sum(referred) FILTER (WHERE m30) AS referred_30,
       @COUNT_IF(m90) AS mature_90,
       sum(revenue_90) FILTER (WHERE m90) AS revenue_90, sum(margin_90) FILTER (WHERE m90) AS margin_90
FROM facts GROUP BY GROUPING SETS ((dim), ())
"""

COHORT = BASE + """,
retained AS (  -- straight from the events: a DISTINCT (member, day) pass first costs more than it saves
    SELECT c.member_id AS member_id,
           @ANY_TRUE(a.day = c.join_day + 1) AS r1, @ANY_TRUE(a.day = c.join_day + 7) AS r7,
           @ANY_TRUE(a.day = c.join_day + 14) AS r14, @ANY_TRUE(a.day = c.join_day + 30) AS r30
    FROM cohort c JOIN {behaviour} a ON a.member_id = c.member_id
    WHERE @IN_LIST(a.type, engagement) AND a.day IN (c.join_day + 1, c.join_day + 7, c.join_day + 14, c.join_day + 30)
    GROUP BY c.member_id
),
day1_task AS (
    SELECT DISTINCT c.member_id AS member_id FROM cohort c JOIN {behaviour} e ON e.member_id = c.member_id
    WHERE e.type = 'task_completed' AND e.day BETWEEN c.join_day AND c.join_day + 1
),
conversions AS (  -- only conversion events at or after the join count
    SELECT c.member_id AS member_id,
           min(@NULLABLE(e.ts)) FILTER (WHERE e.ts < c.join_ts + INTERVAL 30 DAY) AS first_ts,
           sum(e.amount) FILTER (WHERE e.ts < c.join_ts + INTERVAL 30 DAY) AS revenue_30,
           sum(e.margin) FILTER (WHERE e.ts < c.join_ts + INTERVAL 30 DAY) AS margin_30,
           sum(e.amount) FILTER (WHERE e.ts < c.join_ts + INTERVAL 90 DAY) AS revenue_90,
           sum(e.margin) FILTER (WHERE e.ts < c.join_ts + INTERVAL 90 DAY) AS margin_90
    FROM cohort c JOIN {behaviour} e ON e.member_id = c.member_id
    WHERE @IN_LIST(e.type, conversion) AND e.ts >= c.join_ts
    GROUP BY c.member_id
),
invites AS (
    SELECT c.member_id AS member_id, count(*) AS n FROM cohort c JOIN {behaviour} e ON e.member_id = c.member_id
    WHERE e.type = 'invite_sent' AND e.ts >= c.join_ts AND e.ts < c.join_ts + INTERVAL 30 DAY
    GROUP BY c.member_id
),
referred AS (  -- members whose first join names this member as referrer, within 30 days of the referrer's join
    SELECT c.member_id AS member_id, count(*) AS n FROM cohort c JOIN first_join f ON f.referrer_id = c.member_id
    WHERE f.member_id <> c.member_id AND f.join_ts >= c.join_ts
      AND f.join_ts < c.join_ts + INTERVAL 30 DAY{referred_since}
    GROUP BY c.member_id
),
facts AS (
    SELECT c.dim AS dim,
           c.join_day + 1 <= $as_of AS e1, c.join_day + 7 <= $as_of AS e7,
           c.join_day + 14 <= $as_of AS e14, c.join_day + 30 <= $as_of AS e30,
           coalesce(r.r1, false) AS r1, coalesce(r.r7, false) AS r7,
           coalesce(r.r14, false) AS r14, coalesce(r.r30, false) AS r30,
           t.member_id IS NOT NULL AS task1,
           c.join_ts + INTERVAL 30 DAY <= $cutoff AS m30, c.join_ts + INTERVAL 90 DAY <= $cutoff AS m90,
           v.first_ts IS NOT NULL AS conv,
           @SECONDS_BETWEEN(v.first_ts, c.join_ts) AS seconds,
           coalesce(v.revenue_30, 0) AS revenue_30, coalesce(v.margin_30, 0) AS margin_30,
           coalesce(v.revenue_90, 0) AS revenue_90, coalesce(v.margin_90, 0) AS margin_90,
           coalesce(i.n, 0) AS invites, coalesce(k.n, 0) AS referred,
           c.channel IS NULL AS unattributed
    FROM cohort c
    LEFT JOIN retained r ON r.member_id = c.member_id
    LEFT JOIN day1_task t ON t.member_id = c.member_id
    LEFT JOIN conversions v ON v.member_id = c.member_id
    LEFT JOIN invites i ON i.member_id = c.member_id
    LEFT JOIN referred k ON k.member_id = c.member_id
)
""" + COHORT_COUNTS

# COHORT over the per-member facts (analytics/facts.py) instead of the events: the same output, with no experiment
# (`facts.usable` with no cutoff), for any as-of day, also one in the past with events after it: a first join before
# the cutoff is the first join as of then too, and every flag that later events could change is counted only where
# the cutoff has passed its window (e1..e30 for the activity days and the Day-1 task, m30 and m90 for money,
# invites and referred joins), except the first conversion, which is compared with the cutoff itself.
COHORT_FACTS = """
WITH cohort AS (
    SELECT f.*, {member_dim} AS dim FROM member_facts f
    WHERE join_day BETWEEN $start AND $end AND join_ts < $cutoff {member_filter}
),
facts AS (
    SELECT c.dim AS dim,
           c.join_day + 1 <= $as_of AS e1, c.join_day + 7 <= $as_of AS e7,
           c.join_day + 14 <= $as_of AS e14, c.join_day + 30 <= $as_of AS e30,
           c.r1 AS r1, c.r7 AS r7, c.r14 AS r14, c.r30 AS r30, c.task1 AS task1,
           c.join_ts + INTERVAL 30 DAY <= $cutoff AS m30, c.join_ts + INTERVAL 90 DAY <= $cutoff AS m90,
           coalesce(c.first_conversion_ts < $cutoff, false) AS conv,
           @SECONDS_BETWEEN(c.first_conversion_ts, c.join_ts) AS seconds,
           c.revenue_30 AS revenue_30, c.margin_30 AS margin_30, c.revenue_90 AS revenue_90,
           c.margin_90 AS margin_90, c.invites AS invites, c.referred AS referred,
           c.channel IS NULL AS unattributed
    FROM cohort c
)
""" + COHORT_COUNTS

CURRENT = BASE + """,
last_join AS (  -- only its time is read: a `left` after it
    SELECT member_id, max(ts) AS last_ts
    FROM ev WHERE type = 'joined' AND member_id IS NOT NULL GROUP BY member_id
),
left_after AS (  -- members with a `left` after their last join
    SELECT l.member_id AS member_id FROM last_join l JOIN ev e ON e.member_id = l.member_id
    WHERE e.type = 'left' AND e.ts > l.last_ts GROUP BY l.member_id
),
present AS (  -- every member joined by the as-of day with no `left` after the last join (not only the cohort)
    SELECT f.member_id AS member_id, {member_dim} AS dim
    FROM first_join f JOIN last_join l ON l.member_id = f.member_id
    LEFT JOIN left_after x ON x.member_id = f.member_id{exposure_join}
    WHERE x.member_id IS NULL {member_filter}
),
active AS (
    SELECT member_id, max(day) AS last_day FROM {behaviour}
    WHERE member_id IS NOT NULL AND @IN_LIST(type, engagement) AND day <= $as_of GROUP BY member_id
)
SELECT grouping(p.dim) = 1 AS is_total, p.dim AS dim, count(*) AS current_members,
       count(*) FILTER (WHERE a.last_day > $as_of - 7) AS active_7,
       count(*) FILTER (WHERE a.last_day > $as_of - 14) AS active_14,
       count(*) FILTER (WHERE a.last_day > $as_of - 30) AS active_30
FROM present p LEFT JOIN active a ON a.member_id = p.member_id
GROUP BY GROUPING SETS ((p.dim), ())
"""

# CURRENT over the per-member facts, only when every stored event is known as of the as-of day (facts.usable with
# the cutoff), so the last join, a later `left` and the last engagement day are the facts' own.
CURRENT_FACTS = """
SELECT grouping(dim) = 1 AS is_total, dim, count(*) AS current_members,
       count(*) FILTER (WHERE last_active_day > $as_of - 7) AS active_7,
       count(*) FILTER (WHERE last_active_day > $as_of - 14) AS active_14,
       count(*) FILTER (WHERE last_active_day > $as_of - 30) AS active_30
FROM (SELECT {member_dim} AS dim, l.last_active_day AS last_active_day FROM member_facts l
      WHERE l.present {member_filter}) p
GROUP BY GROUPING SETS ((dim), ())
"""

# M3 as of every day from $start to $end in one pass (the dashboard's daily trend): for each day, the
# same population and windows as CURRENT run with that day as the as-of day. Rather than every member on every
# day: each member is present in spans, from a join until their next join or leave (a leave at the join's very
# instant comes first: it is not after the join); their engagement days from 29 days before $start on are bits of
# one integer (bit 0: $start - 29; so at most DAILY_MAX_DAYS days, well within 63 bits). Members are counted per
# distinct (span, bits), then per day: present on it, and with a bit among its last 7, 14 or 30 days.
DAILY_MAX_DAYS = 34
CURRENT_DAILY = BASE + """,
days AS (@DAY_SERIES(start, end)),
moves AS (  -- joins and leaves in order, each with the day of the member's next move
    SELECT member_id, day AS moved_day, type = 'joined' AS is_join,
           @NEXT(day, member_id, ts, type = 'joined', seq) AS next_move_day
    FROM ev WHERE type IN ('joined', 'left') AND member_id IS NOT NULL
),
presence AS (  -- [present_from, present_until) within the days: from a join until the next move
    SELECT l.member_id AS member_id, greatest(l.moved_day, $start) AS present_from,
           least(coalesce(l.next_move_day, $end + 1), $end + 1) AS present_until
    FROM moves l{acquisition_join}
    WHERE l.is_join AND l.moved_day <= $end AND coalesce(l.next_move_day, $end + 1) > $start
      AND coalesce(l.next_move_day, $end + 1) > l.moved_day {member_filter}
),
activity AS (  -- each member's engagement days that can be a last active day within 30 days of one of the days
    SELECT member_id, @BITS_OR(day - $start + 29) AS active_days FROM ev
    WHERE member_id IS NOT NULL AND @IN_LIST(type, engagement) AND day > $start - 30
      AND ts >= $start - INTERVAL 31 DAY  -- no later than that day's local midnight in any zone: skips old rows
    GROUP BY member_id
),
counted AS (
    SELECT p.present_from AS present_from, p.present_until AS present_until,
           coalesce(a.active_days, 0) AS active_bits, count(*) AS members
    FROM presence p LEFT JOIN activity a ON a.member_id = p.member_id
    GROUP BY p.present_from, p.present_until, coalesce(a.active_days, 0)
)
SELECT @TEXT(dd.on_day) AS dim, sum(c.members) AS current_members,  -- bit (on_day - $start + 29) is on_day's
       coalesce(sum(c.members) FILTER (WHERE @ANY_BITS(c.active_bits, dd.on_day - $start + 23, 7)), 0) AS active_7,
       coalesce(sum(c.members) FILTER (WHERE @ANY_BITS(c.active_bits, dd.on_day - $start + 16, 14)), 0) AS active_14,
       coalesce(sum(c.members) FILTER (WHERE @ANY_BITS(c.active_bits, dd.on_day - $start, 30)), 0) AS active_30
FROM days dd CROSS JOIN counted c WHERE c.present_from <= dd.on_day AND dd.on_day < c.present_until
GROUP BY dd.on_day
"""

# CURRENT_DAILY over the member days (analytics/facts.py) instead of the events: the same rows. DuckDB's SQL;
# ClickHouse's is CURRENT_DAILY_FACTS_CLICKHOUSE (current_daily_facts picks).
# The spans are kept whole, so they are clipped to the days here; the engagement days become the same bits. Then
# each span is bit masks over the days (bit i: $start + i): present, and active within 7, 14, 30 days (the bits
# ORed with their next 6, 13, 29: doubling shifts), and every day's count is the sum of its bit over the spans
# (over the distinct masks first: ~16k of them for 440k spans at 1M members).
CURRENT_DAILY_FACTS = """
WITH members AS (  -- bit (day - $start + 29) for each engagement day from $start - 29 to $end
    SELECT member_id, spans, list_sum(list_transform(active_days, lambda x: CASE WHEN x > $start - 30 AND x <= $end
               THEN CAST(1 AS BIGINT) << CAST(least(greatest(x - $start + 29, 0), 62) AS INTEGER) ELSE 0 END))
               AS active_bits
    FROM member_days
),
spans AS (
    SELECT member_id, active_bits, unnest(spans) AS s FROM members
),
presence AS (  -- [present_from, present_until) within the days, as offsets from $start
    SELECT greatest(l.moved_day, $start) - $start AS present_from,
           least(coalesce(l.next_move_day, $end + 1), $end + 1) - $start AS present_until,
           coalesce(l.active_bits, 0) AS b
    FROM (SELECT member_id, active_bits, s.present_from AS moved_day, s.present_until AS next_move_day
          FROM spans) l{acquisition_facts_join}
    WHERE l.moved_day <= $end AND coalesce(l.next_move_day, $end + 1) > $start {member_filter}
),
runs AS (  -- s<n>: bit j set when any of bits j .. j + n - 1 is
    SELECT present_from, present_until, b | (b >> 1) AS s2 FROM presence
),
runs4 AS (SELECT present_from, present_until, s2 | (s2 >> 2) AS s4 FROM runs),
runs7 AS (SELECT present_from, present_until, s4 | (s4 >> 3) AS s7 FROM runs4),
runs14 AS (SELECT present_from, present_until, s7, s7 | (s7 >> 7) AS s14 FROM runs7),
masks AS (
    SELECT (CAST(1 AS BIGINT) << CAST(present_until AS INTEGER)) - (CAST(1 AS BIGINT) << CAST(present_from AS INTEGER))
               AS p, s7, s14, s14 | (s14 >> 14) | (s14 >> 16) AS s30
    FROM runs14
),
counted AS (  -- day i is active within 7 days when any of bits i + 23 .. i + 29 is (bit 29 + i is day i's own)
    SELECT p, (s7 >> 23) & p AS a7, (s14 >> 16) & p AS a14, s30 & p AS a30, count(*) AS n FROM masks
    GROUP BY p, (s7 >> 23) & p, (s14 >> 16) & p, s30 & p
),
totals AS (
    SELECT {day_sums_p} AS current_members, {day_sums_7} AS active_7, {day_sums_14} AS active_14,
           {day_sums_30} AS active_30
    FROM counted
)
SELECT @TEXT(dd.on_day) AS dim, current_members[i + 1] AS current_members, active_7[i + 1] AS active_7,
       active_14[i + 1] AS active_14, active_30[i + 1] AS active_30
FROM totals CROSS JOIN (SELECT on_day, on_day - CAST($start AS DATE) AS i FROM (@DAY_SERIES(start, end))) dd
WHERE current_members[i + 1] > 0
"""
DAY_SUMS = {name: "[" + ", ".join(f"coalesce(sum(n * (({col} >> {i}) & 1)), 0)" for i in range(DAILY_MAX_DAYS)) + "]"
            for name, col in (("{day_sums_p}", "p"), ("{day_sums_7}", "a7"), ("{day_sums_14}", "a14"),
                              ("{day_sums_30}", "a30"))}
for _placeholder, _text in DAY_SUMS.items():
    CURRENT_DAILY_FACTS = CURRENT_DAILY_FACTS.replace(_placeholder, _text)

# CURRENT_DAILY_FACTS in ClickHouse's words (bit functions for operators, arrays and lambdas for DuckDB's lists,
# ARRAY JOIN for unnest, sumForEach for the per-day sums): the same masks, counted the same way.
CURRENT_DAILY_FACTS_CLICKHOUSE = """
WITH members AS (  -- bit (day - $start + 29) for each engagement day from $start - 29 to $end
    SELECT member_id, spans, arraySum(arrayMap(x -> if(x > $start - 30 AND x <= $end,
               bitShiftLeft(toInt64(1), toUInt8(least(greatest(x - $start + 29, 0), 62))), toInt64(0)),
               active_days)) AS active_bits
    FROM member_days
),
spanned AS (
    SELECT member_id, active_bits, s.1 AS moved_day, s.2 AS next_move_day
    FROM members ARRAY JOIN spans AS s
),
presence AS (  -- [present_from, present_until) within the days, as offsets from $start
    SELECT toUInt8(greatest(l.moved_day, $start) - $start) AS present_from,
           toUInt8(least(coalesce(l.next_move_day, $end + 1), $end + 1) - $start) AS present_until,
           l.active_bits AS b
    FROM spanned l{acquisition_facts_join}
    WHERE l.moved_day <= $end AND coalesce(l.next_move_day, $end + 1) > $start {member_filter}
),
masks AS (  -- s<n>: bit j set when any of bits j .. j + n - 1 is
    SELECT bitShiftLeft(toInt64(1), present_until) - bitShiftLeft(toInt64(1), present_from) AS p,
           bitOr(b, bitShiftRight(b, 1)) AS s2, bitOr(s2, bitShiftRight(s2, 2)) AS s4,
           bitOr(s4, bitShiftRight(s4, 3)) AS s7, bitOr(s7, bitShiftRight(s7, 7)) AS s14,
           bitOr(bitOr(s14, bitShiftRight(s14, 14)), bitShiftRight(s14, 16)) AS s30
    FROM presence
),
counted AS (  -- day i is active within 7 days when any of bits i + 23 .. i + 29 is (bit 29 + i is day i's own)
    SELECT p, bitAnd(bitShiftRight(s7, 23), p) AS a7, bitAnd(bitShiftRight(s14, 16), p) AS a14,
           bitAnd(s30, p) AS a30, count() AS n
    FROM masks GROUP BY p, a7, a14, a30
),
totals AS (  -- element i + 1: the members of day i
    SELECT sumForEach(arrayMap(i -> n * bitAnd(bitShiftRight(p, i), 1), range(DAILY_MAX_DAYS))) AS present_n,
           sumForEach(arrayMap(i -> n * bitAnd(bitShiftRight(a7, i), 1), range(DAILY_MAX_DAYS))) AS active_7_n,
           sumForEach(arrayMap(i -> n * bitAnd(bitShiftRight(a14, i), 1), range(DAILY_MAX_DAYS))) AS active_14_n,
           sumForEach(arrayMap(i -> n * bitAnd(bitShiftRight(a30, i), 1), range(DAILY_MAX_DAYS))) AS active_30_n
    FROM counted
)
SELECT @TEXT(dd.on_day) AS dim, present_n[i + 1] AS current_members, active_7_n[i + 1] AS active_7,
       active_14_n[i + 1] AS active_14, active_30_n[i + 1] AS active_30
FROM totals CROSS JOIN (SELECT on_day, on_day - $start AS i FROM (@DAY_SERIES(start, end))) dd
WHERE present_n[i + 1] > 0
""".replace("DAILY_MAX_DAYS", str(DAILY_MAX_DAYS))


def current_daily_facts(engine: str) -> str:
    """CURRENT_DAILY_FACTS in the SQL of this engine (`Engine.name`)."""
    return CURRENT_DAILY_FACTS if engine == "duckdb" else CURRENT_DAILY_FACTS_CLICKHOUSE


LANDING = BASE + """,
people AS (
    SELECT e.*, coalesce(e.member_id, l.member_id, 'visitor:' || e.visitor_id) AS person
    FROM ev e LEFT JOIN links l ON l.visitor_id = e.visitor_id
    WHERE e.type IN ('landing_view', 'joined')
),
first_view AS (
    SELECT p.person AS person, p.ts AS ts, p.channel AS channel, p.campaign AS campaign,
           p.entry_point AS entry_point, p.group_key AS group_key, p.properties AS properties{landing_columns},
           {landing_dim} AS dim
    FROM people p{landing_exposure}
    WHERE p.type = 'landing_view' AND p.day BETWEEN $start AND $end{landing_since}
    QUALIFY row_number() OVER (PARTITION BY p.person ORDER BY p.ts, p.seq) = 1
),
viewers AS (SELECT * FROM first_view WHERE TRUE {landing_filter}),
joined_soon AS (  -- joined at or after the first view and less than 7 x 24 h after it
    SELECT v.person AS person FROM viewers v JOIN people j ON j.person = v.person
    WHERE j.type = 'joined' AND j.ts >= v.ts AND j.ts < v.ts + INTERVAL 7 DAY GROUP BY v.person
),
facts AS (
    SELECT v.dim AS dim, v.ts + INTERVAL 7 DAY <= $cutoff AS mature, s.person IS NOT NULL AS joined
    FROM viewers v LEFT JOIN joined_soon s ON s.person = v.person
)
SELECT grouping(dim) = 1 AS is_total, dim, count(*) AS landing_visitors,
       count(*) FILTER (WHERE mature) AS landing_mature,
       count(*) FILTER (WHERE mature AND joined) AS landing_joined
FROM facts GROUP BY GROUPING SETS ((dim), ())
"""

# LANDING over the landing facts (analytics/facts.py), under the same condition as CURRENT_FACTS. A person's
# first view in the period is their day-first view whose day is in the period and whose previous view's is not.
LANDING_FACTS = """
SELECT grouping(dim) = 1 AS is_total, dim, count(*) AS landing_visitors,
       count(*) FILTER (WHERE mature) AS landing_mature,
       count(*) FILTER (WHERE mature AND joined) AS landing_joined
FROM (SELECT {landing_facts_dim} AS dim, ts + INTERVAL 7 DAY <= $cutoff AS mature, joined FROM landing_facts
      WHERE day BETWEEN $start AND $end AND (prev_day IS NULL OR prev_day < $start) {landing_facts_filter}) v
GROUP BY GROUPING SETS ((dim), ())
"""

# LANDING_FACTS with the landing days (analytics/facts.py; on ClickHouse facts_clickhouse_sql.py's view) for the days
# whose views are all mature: a day 9 or more days before the as-of day ends 9 local days or more before the cutoff,
# over a week even with a skipped day and an hour of summer time in between; the later days' views are still read
# one by one, for their time.
LANDING_DAYS = """
SELECT grouping(dim) = 1 AS is_total, dim, coalesce(sum(n), 0) AS landing_visitors,
       coalesce(sum(n) FILTER (WHERE mature), 0) AS landing_mature,
       coalesce(sum(n) FILTER (WHERE mature AND joined), 0) AS landing_joined
FROM (SELECT {landing_facts_dim} AS dim, TRUE AS mature, joined, views AS n FROM landing_days
      WHERE day BETWEEN $start AND least($end, $as_of - 9) AND (prev_day IS NULL OR prev_day < $start)
            {landing_facts_filter}
      UNION ALL
      SELECT {landing_facts_dim} AS dim, ts + INTERVAL 7 DAY <= $cutoff AS mature, joined, 1 AS n FROM landing_facts
      WHERE day BETWEEN greatest($start, $as_of - 8) AND $end AND (prev_day IS NULL OR prev_day < $start)
            {landing_facts_filter}) v
GROUP BY GROUPING SETS ((dim), ())
"""

# Spend, like events, is known only up to the as-of day: days after it are not spent yet as of then.
SPEND = """
SELECT grouping(channel) = 1 AS is_total, channel AS dim, coalesce(sum(amount), 0) AS spend
FROM spend WHERE day BETWEEN $start AND $end AND day <= $as_of {spend_filter}
GROUP BY GROUPING SETS ((channel), ())
"""

# Spend per day (the dashboard's daily trend), under the same as-of rule.
SPEND_DAILY = """
SELECT @TEXT(day) AS dim, sum(amount) AS spend
FROM spend WHERE day BETWEEN $start AND $end AND day <= $as_of {spend_filter}
GROUP BY day
"""


# Filters narrow every population to one value of an acquisition attribute (bound as $f_<name>).
FILTER_COLUMNS = {"channel": "channel", "campaign": "campaign", "entry_point": "entry_point",
                  "group": "group_key", "tier": "tier", "variant": "variant"}


def _where(filters: dict[str, str], columns: dict[str, str]) -> str:
    return "".join(f" AND {columns[name]} = $f_{name}" for name in sorted(filters))


def render(template: str, by: str, filters: dict[str, str] | None = None, experiment: bool = False) -> str:
    """The query for one slice; `by` and the filter names are validated against fixed lists first.

    `experiment`: narrow to the people exposed to the experiment bound as $experiment (see above).
    """
    filters = filters or {}
    member_dim = MEMBER_DIMS[by]
    landing_columns = {**FILTER_COLUMNS, "tier": "@JSON_TEXT(properties, 'tier')"}
    spend_filter = _where({k: v for k, v in filters.items() if k == "channel"}, FILTER_COLUMNS)
    pieces = {
        "{exposure_cte}": EXPOSURE if experiment else "",
        "{exposure_columns}": ", xp.exposed_ts AS exposed_ts, xp.variant AS variant" if experiment else "",
        "{exposure_join}": " JOIN exposure xp ON xp.person = f.member_id" if experiment else "",
        "{behaviour}": "behaviour" if experiment else "ev",
        "{referred_since}": " AND f.join_ts >= c.exposed_ts" if experiment else "",
        "{landing_columns}": ", xp.variant AS variant" if experiment else "",
        "{landing_exposure}": " JOIN exposure xp ON xp.person = p.person" if experiment else "",
        "{landing_since}": " AND p.ts >= xp.exposed_ts" if experiment else "",
        "{member_dim}": member_dim, "{landing_dim}": LANDING_DIMS[by],
        "{member_filter}": _where(filters, FILTER_COLUMNS),
        # CURRENT_DAILY reads the first join only to filter on its acquisition attributes.
        "{acquisition_join}": " JOIN first_join f ON f.member_id = l.member_id" if filters else "",
        "{acquisition_facts_join}": " JOIN member_facts f ON f.member_id = l.member_id" if filters else "",
        "{landing_filter}": _where(filters, landing_columns),
        "{landing_facts_dim}": LANDING_FACTS_DIMS[by],
        "{landing_facts_filter}": _where(filters, FILTER_COLUMNS),
        "{spend_filter}": spend_filter,
    }
    for placeholder, text in pieces.items():  # in order: the exposure CTE goes in before the rest is filled
        template = template.replace(placeholder, text)
    return template


# Experiment results (docs/experiments.md): M5 and M6 per variant with the first exposure in place of the
# join. Every exposed person counts in `members`; maturity is exposure + 30 days by the end of the as-of
# day; a conversion counts at or after the exposure and less than 30 x 24 h after it. Sums of squares
# feed Welch's test on revenue per mature member. Output names differ from the column names they count:
# ClickHouse resolves an alias anywhere in the query, so `count(...) AS mature` would shadow `mature`.
EXPERIMENT_RESULTS = """
WITH ev AS @NOT_MATERIALIZED() (
    SELECT seq, type, ts, member_id, visitor_id, amount, experiment, variant FROM events WHERE ts < $cutoff
),
links AS (
    SELECT visitor_id, member_id FROM ev WHERE visitor_id IS NOT NULL AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY visitor_id ORDER BY ts, seq) = 1
),""" + EXPOSURE_FIRST + """,
conversions AS (
    SELECT x.person AS person, count(*) AS n, sum(CAST(coalesce(e.amount, 0) AS DOUBLE)) AS revenue
    FROM exposure x JOIN ev e ON e.member_id = x.person
    WHERE @IN_LIST(e.type, conversion) AND e.ts >= x.exposed_ts AND e.ts < x.exposed_ts + INTERVAL 30 DAY
    GROUP BY x.person
),
facts AS (
    SELECT x.variant AS arm, x.exposed_ts + INTERVAL 30 DAY <= $cutoff AS is_mature,
           coalesce(v.n, 0) > 0 AS is_converted, coalesce(v.revenue, 0) AS member_revenue
    FROM exposure x LEFT JOIN conversions v ON v.person = x.person
)
SELECT arm AS variant, count(*) AS members, count(*) FILTER (WHERE is_mature) AS mature,
       count(*) FILTER (WHERE is_converted) AS converted,
       count(*) FILTER (WHERE is_mature AND is_converted) AS converted_mature,
       coalesce(sum(member_revenue) FILTER (WHERE is_mature), 0) AS revenue,
       coalesce(sum(member_revenue * member_revenue) FILTER (WHERE is_mature), 0) AS revenue_sq
FROM facts GROUP BY arm ORDER BY arm
"""

# Guardrails of an experiment (docs/experiments.md "Guardrails"): every METRICS.md per-member metric over
# the exposed people, with the first exposure in place of the join (its local day for day-based windows),
# counting only behaviour at or after it; sufficient statistics per variant (domain.experiments
# guardrail_columns names them: _n/_x for a rate, _n/_sum/_sq for a per-member mean).
EXPERIMENT_GUARDRAILS = """
WITH ev AS @NOT_MATERIALIZED() (
    SELECT seq, type, ts, member_id, visitor_id, amount, margin, referrer_id, experiment, variant,
           @EVENT_DAY(ts) AS day
    FROM events WHERE ts < $cutoff
),
links AS (
    SELECT visitor_id, member_id FROM ev WHERE visitor_id IS NOT NULL AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY visitor_id ORDER BY ts, seq) = 1
),""" + EXPOSURE_FIRST + """,
xp AS (
    SELECT person, exposed_ts, variant, @LOCAL_DAY(exposed_ts) AS xday FROM exposure
),
after AS (  -- exposed people's events at or after their first exposure
    SELECT x.person AS person, e.type AS type, e.ts AS ts, e.day AS day, e.amount AS amount, e.margin AS margin
    FROM xp x JOIN ev e ON e.member_id = x.person WHERE e.ts >= x.exposed_ts
),
retained AS (
    SELECT x.person AS person,
           @ANY_TRUE(a.day = x.xday + 1) AS r1, @ANY_TRUE(a.day = x.xday + 7) AS r7,
           @ANY_TRUE(a.day = x.xday + 14) AS r14, @ANY_TRUE(a.day = x.xday + 30) AS r30
    FROM xp x JOIN after a ON a.person = x.person
    WHERE @IN_LIST(a.type, engagement) AND a.day IN (x.xday + 1, x.xday + 7, x.xday + 14, x.xday + 30)
    GROUP BY x.person
),
day1_task AS (
    SELECT DISTINCT x.person AS person FROM xp x JOIN after a ON a.person = x.person
    WHERE a.type = 'task_completed' AND a.day BETWEEN x.xday AND x.xday + 1
),
active AS (
    SELECT person, max(day) AS last_day FROM after
    WHERE @IN_LIST(type, engagement) AND day <= $as_of GROUP BY person
),
last_join AS (
    SELECT member_id, ts AS last_ts FROM ev WHERE type = 'joined' AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts DESC, seq DESC) = 1
),
left_after AS (
    SELECT l.member_id AS member_id FROM last_join l JOIN ev e ON e.member_id = l.member_id
    WHERE e.type = 'left' AND e.ts > l.last_ts GROUP BY l.member_id
),
present AS (  -- current members as of the as-of day (M3)
    SELECT l.member_id AS person FROM last_join l LEFT JOIN left_after x ON x.member_id = l.member_id
    WHERE x.member_id IS NULL
),
conversions AS (
    SELECT x.person AS person,
           count(*) FILTER (WHERE a.ts < x.exposed_ts + INTERVAL 30 DAY) AS n30,
           sum(CAST(coalesce(a.amount, 0) AS DOUBLE))
               FILTER (WHERE a.ts < x.exposed_ts + INTERVAL 30 DAY) AS revenue_30,
           sum(CAST(coalesce(a.margin, 0) AS DOUBLE)) FILTER (WHERE a.ts < x.exposed_ts + INTERVAL 30 DAY) AS margin_30,
           sum(CAST(coalesce(a.amount, 0) AS DOUBLE))
               FILTER (WHERE a.ts < x.exposed_ts + INTERVAL 90 DAY) AS revenue_90,
           sum(CAST(coalesce(a.margin, 0) AS DOUBLE)) FILTER (WHERE a.ts < x.exposed_ts + INTERVAL 90 DAY) AS margin_90
    FROM xp x JOIN after a ON a.person = x.person
    WHERE @IN_LIST(a.type, conversion)
    GROUP BY x.person
),
invites AS (
    SELECT x.person AS person, count(*) AS n FROM xp x JOIN after a ON a.person = x.person
    WHERE a.type = 'invite_sent' AND a.ts < x.exposed_ts + INTERVAL 30 DAY
    GROUP BY x.person
),
first_join AS (
    SELECT member_id, ts AS join_ts, referrer_id FROM ev WHERE type = 'joined' AND member_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY ts, seq) = 1
),
referred AS (  -- K-factor: joins naming the person as referrer, within 30 days after the exposure
    SELECT x.person AS person, count(*) AS n FROM xp x JOIN first_join f ON f.referrer_id = x.person
    WHERE f.member_id <> x.person AND f.join_ts >= x.exposed_ts AND f.join_ts < x.exposed_ts + INTERVAL 30 DAY
    GROUP BY x.person
),
facts AS (
    SELECT x.variant AS arm,
           x.xday + 1 <= $as_of AS e1, x.xday + 7 <= $as_of AS e7,
           x.xday + 14 <= $as_of AS e14, x.xday + 30 <= $as_of AS e30,
           coalesce(r.r1, false) AS r1, coalesce(r.r7, false) AS r7,
           coalesce(r.r14, false) AS r14, coalesce(r.r30, false) AS r30,
           t.person IS NOT NULL AS task1,
           p.person IS NOT NULL AS present, coalesce(ac.last_day > $as_of - 7, false) AS a7,
           coalesce(ac.last_day > $as_of - 14, false) AS a14, coalesce(ac.last_day > $as_of - 30, false) AS a30,
           x.exposed_ts + INTERVAL 30 DAY <= $cutoff AS m30, x.exposed_ts + INTERVAL 90 DAY <= $cutoff AS m90,
           coalesce(v.n30, 0) > 0 AS conv,
           coalesce(v.revenue_30, 0) AS revenue_30, coalesce(v.margin_30, 0) AS margin_30,
           coalesce(v.revenue_90, 0) AS revenue_90, coalesce(v.margin_90, 0) AS margin_90,
           CAST(coalesce(i.n, 0) AS DOUBLE) AS invites, CAST(coalesce(k.n, 0) AS DOUBLE) AS referred
    FROM xp x
    LEFT JOIN retained r ON r.person = x.person
    LEFT JOIN day1_task t ON t.person = x.person
    LEFT JOIN present p ON p.person = x.person
    LEFT JOIN active ac ON ac.person = x.person
    LEFT JOIN conversions v ON v.person = x.person
    LEFT JOIN invites i ON i.person = x.person
    LEFT JOIN referred k ON k.person = x.person
)
SELECT arm AS variant,
       count(*) FILTER (WHERE e1) AS retention_d1_n, count(*) FILTER (WHERE e1 AND r1) AS retention_d1_x,
       count(*) FILTER (WHERE e7) AS retention_d7_n, count(*) FILTER (WHERE e7 AND r7) AS retention_d7_x,
       count(*) FILTER (WHERE e14) AS retention_d14_n, count(*) FILTER (WHERE e14 AND r14) AS retention_d14_x,
       count(*) FILTER (WHERE e30) AS retention_d30_n, count(*) FILTER (WHERE e30 AND r30) AS retention_d30_x,
       count(*) FILTER (WHERE e1) AS task_completion_d1_n, count(*) FILTER (WHERE e1 AND task1) AS task_completion_d1_x,
       count(*) FILTER (WHERE present) AS active_ratio_7d_n,
       count(*) FILTER (WHERE present AND a7) AS active_ratio_7d_x,
       count(*) FILTER (WHERE present) AS active_ratio_14d_n,
       count(*) FILTER (WHERE present AND a14) AS active_ratio_14d_x,
       count(*) FILTER (WHERE present) AS active_ratio_30d_n,
       count(*) FILTER (WHERE present AND a30) AS active_ratio_30d_x,
       count(*) FILTER (WHERE m30) AS conversion_rate_n, count(*) FILTER (WHERE m30 AND conv) AS conversion_rate_x,
       count(*) FILTER (WHERE m30) AS invites_per_member_n,
       coalesce(sum(invites) FILTER (WHERE m30), 0) AS invites_per_member_sum,
       coalesce(sum(invites * invites) FILTER (WHERE m30), 0) AS invites_per_member_sq,
       count(*) FILTER (WHERE m30) AS k_factor_n,
       coalesce(sum(referred) FILTER (WHERE m30), 0) AS k_factor_sum,
       coalesce(sum(referred * referred) FILTER (WHERE m30), 0) AS k_factor_sq,
       count(*) FILTER (WHERE m30) AS revenue_per_member_n,
       coalesce(sum(revenue_30) FILTER (WHERE m30), 0) AS revenue_per_member_sum,
       coalesce(sum(revenue_30 * revenue_30) FILTER (WHERE m30), 0) AS revenue_per_member_sq,
       count(*) FILTER (WHERE m30) AS margin_per_member_n,
       coalesce(sum(margin_30) FILTER (WHERE m30), 0) AS margin_per_member_sum,
       coalesce(sum(margin_30 * margin_30) FILTER (WHERE m30), 0) AS margin_per_member_sq,
       count(*) FILTER (WHERE m90) AS ltv_90_revenue_n,
       coalesce(sum(revenue_90) FILTER (WHERE m90), 0) AS ltv_90_revenue_sum,
       coalesce(sum(revenue_90 * revenue_90) FILTER (WHERE m90), 0) AS ltv_90_revenue_sq,
       count(*) FILTER (WHERE m90) AS ltv_90_margin_n,
       coalesce(sum(margin_90) FILTER (WHERE m90), 0) AS ltv_90_margin_sum,
       coalesce(sum(margin_90 * margin_90) FILTER (WHERE m90), 0) AS ltv_90_margin_sq
FROM facts GROUP BY arm ORDER BY arm
"""

# Experiments known from the event log: exposures and first/last exposure time.
EXPERIMENT_LIST = """
SELECT experiment, count(*) AS exposures, count(DISTINCT variant) AS variants, min(ts) AS first_ts, max(ts) AS last_ts
FROM events WHERE type = 'experiment_exposure' AND experiment IS NOT NULL
GROUP BY experiment ORDER BY experiment
"""
