-- The metric suite's spend-free keys in ONE hand-written DuckDB query, straight over the event Parquet file.
-- Written from METRICS.md / docs/metrics.md, independently of src/qunflow/analytics/queries.py: one pass
-- per member over their events (no per-metric sub-queries), then one aggregation of members and landing
-- visitors together. The practical floor for the suite; bench/bench_metrics.py cross-checks its numbers.
-- Placeholders: {parquet} (quoted path), {member_dim} / {landing_dim} (slice expressions, see floor.py).
-- Parameters: $tz, $cutoff (end of the as-of day, TIMESTAMPTZ), $start, $end, $as_of (DATE).
-- The file holds each event_id once (what the event log stores); seq = row order = arrival order.
WITH ev AS (  -- events known as of the as-of day, with their local calendar day
    SELECT file_row_number AS seq, type, ts, member_id, visitor_id, channel, referrer_id, amount, margin,
           properties, CAST(timezone($tz, ts) AS DATE) AS day
    FROM read_parquet({parquet}, file_row_number = true)
    WHERE ts < $cutoff
),
joins AS (  -- per member: the first joined event (acquisition attributes, ties by seq) and the last join
    SELECT member_id,
           arg_min({'ts': ts, 'day': day, 'channel': channel, 'referrer_id': referrer_id,
                    'tier': json_extract_string(properties, '$.tier')}, (ts, seq)) AS first,
           max(ts) AS last_join_ts
    FROM ev WHERE type = 'joined' AND member_id IS NOT NULL GROUP BY member_id
),
members AS (
    SELECT member_id, first.ts AS join_ts, first.day AS join_day, first.channel AS channel,
           first.referrer_id AS referrer_id, last_join_ts
    FROM joins
),
referrals AS (  -- members whose first join names this member, less than 30 days after this member's join
    SELECT r.member_id, count(*) AS referred
    FROM members r JOIN members f ON f.referrer_id = r.member_id
    WHERE f.member_id <> r.member_id AND f.join_ts >= r.join_ts AND f.join_ts < r.join_ts + INTERVAL 30 DAY
    GROUP BY r.member_id
),
member_facts AS (  -- one pass over each member's events
    SELECT m.member_id,
           bool_or(e.day = m.join_day + 1 AND e.type IN ('message', 'task_completed', 'checkin', 'reaction',
                   'poll_vote', 'order', 'booking', 'signup', 'download', 'coupon_redeemed')) AS r1,
           bool_or(e.day = m.join_day + 7 AND e.type IN ('message', 'task_completed', 'checkin', 'reaction',
                   'poll_vote', 'order', 'booking', 'signup', 'download', 'coupon_redeemed')) AS r7,
           bool_or(e.day = m.join_day + 14 AND e.type IN ('message', 'task_completed', 'checkin', 'reaction',
                   'poll_vote', 'order', 'booking', 'signup', 'download', 'coupon_redeemed')) AS r14,
           bool_or(e.day = m.join_day + 30 AND e.type IN ('message', 'task_completed', 'checkin', 'reaction',
                   'poll_vote', 'order', 'booking', 'signup', 'download', 'coupon_redeemed')) AS r30,
           max(e.day) FILTER (WHERE e.type IN ('message', 'task_completed', 'checkin', 'reaction', 'poll_vote',
                              'order', 'booking', 'signup', 'download', 'coupon_redeemed')) AS last_active_day,
           bool_or(e.type = 'task_completed' AND e.day BETWEEN m.join_day AND m.join_day + 1) AS task1,
           min(e.ts) FILTER (WHERE e.type IN ('order', 'booking') AND e.ts >= m.join_ts
                             AND e.ts < m.join_ts + INTERVAL 30 DAY) AS first_conversion,
           sum(e.amount) FILTER (WHERE e.type IN ('order', 'booking') AND e.ts >= m.join_ts
                                 AND e.ts < m.join_ts + INTERVAL 30 DAY) AS revenue_30,
           sum(e.margin) FILTER (WHERE e.type IN ('order', 'booking') AND e.ts >= m.join_ts
                                 AND e.ts < m.join_ts + INTERVAL 30 DAY) AS margin_30,
           sum(e.amount) FILTER (WHERE e.type IN ('order', 'booking') AND e.ts >= m.join_ts
                                 AND e.ts < m.join_ts + INTERVAL 90 DAY) AS revenue_90,
           sum(e.margin) FILTER (WHERE e.type IN ('order', 'booking') AND e.ts >= m.join_ts
                                 AND e.ts < m.join_ts + INTERVAL 90 DAY) AS margin_90,
           count(*) FILTER (WHERE e.type = 'invite_sent' AND e.ts >= m.join_ts
                            AND e.ts < m.join_ts + INTERVAL 30 DAY) AS invites,
           max(e.ts) FILTER (WHERE e.type = 'left') AS last_left_ts
    FROM members m JOIN ev e ON e.member_id = m.member_id
    GROUP BY m.member_id
),
member_units AS (
    SELECT {member_dim} AS dim, TRUE AS is_member,
           m.join_day BETWEEN $start AND $end AS in_cohort,
           coalesce(f.last_left_ts <= m.last_join_ts, TRUE) AS is_current,  -- a `left` must be strictly after
           m.join_day + 1 <= $as_of AS e1, m.join_day + 7 <= $as_of AS e7,
           m.join_day + 14 <= $as_of AS e14, m.join_day + 30 <= $as_of AS e30,
           f.r1, f.r7, f.r14, f.r30, f.task1, f.last_active_day,
           m.join_ts + INTERVAL 30 DAY <= $cutoff AS m30, m.join_ts + INTERVAL 90 DAY <= $cutoff AS m90,
           f.first_conversion IS NOT NULL AS converted,
           (epoch_us(f.first_conversion) - epoch_us(m.join_ts)) / 1000000.0 AS seconds,
           f.revenue_30, f.margin_30, f.revenue_90, f.margin_90, f.invites, coalesce(r.referred, 0) AS referred
    FROM members m JOIN member_facts f ON f.member_id = m.member_id
    LEFT JOIN referrals r ON r.member_id = m.member_id
),
links AS (  -- a visitor is the member named on the earliest event carrying both ids
    SELECT visitor_id, arg_min(member_id, (ts, seq)) AS member_id
    FROM ev WHERE visitor_id IS NOT NULL AND member_id IS NOT NULL GROUP BY visitor_id
),
touches AS (  -- landing views and joins, by person (the member, else the bare visitor)
    SELECT coalesce(e.member_id, l.member_id, 'visitor:' || e.visitor_id) AS person, e.type, e.ts, e.seq, e.day,
           e.channel
    FROM ev e LEFT JOIN links l ON l.visitor_id = e.visitor_id
    WHERE e.type IN ('landing_view', 'joined')
),
first_views AS (  -- each person's first landing view in the period
    SELECT person, arg_min({'ts': ts, 'day': day, 'channel': channel}, (ts, seq)) AS v
    FROM touches WHERE type = 'landing_view' AND day BETWEEN $start AND $end GROUP BY person
),
landing_units AS (
    SELECT {landing_dim} AS dim, TRUE AS is_landing,
           any_value(v.v.ts) + INTERVAL 7 DAY <= $cutoff AS mature_7,
           coalesce(bool_or(t.ts >= v.v.ts AND t.ts < v.v.ts + INTERVAL 7 DAY), FALSE) AS joined_7
    FROM first_views v LEFT JOIN touches t ON t.person = v.person AND t.type = 'joined'
    GROUP BY v.person, dim
),
units AS (SELECT * FROM member_units UNION ALL BY NAME SELECT * FROM landing_units)
SELECT grouping(dim) = 1 AS is_total, dim,
       count(*) FILTER (WHERE is_landing) AS landing_visitors,
       count(*) FILTER (WHERE is_landing AND mature_7 AND joined_7)
           / nullif(count(*) FILTER (WHERE is_landing AND mature_7), 0) AS join_conversion,
       count(*) FILTER (WHERE in_cohort) AS cohort_size,
       count(*) FILTER (WHERE in_cohort AND e1 AND r1) / nullif(count(*) FILTER (WHERE in_cohort AND e1), 0)
           AS retention_d1,
       count(*) FILTER (WHERE in_cohort AND e7 AND r7) / nullif(count(*) FILTER (WHERE in_cohort AND e7), 0)
           AS retention_d7,
       count(*) FILTER (WHERE in_cohort AND e14 AND r14) / nullif(count(*) FILTER (WHERE in_cohort AND e14), 0)
           AS retention_d14,
       count(*) FILTER (WHERE in_cohort AND e30 AND r30) / nullif(count(*) FILTER (WHERE in_cohort AND e30), 0)
           AS retention_d30,
       count(*) FILTER (WHERE in_cohort AND e1 AND task1) / nullif(count(*) FILTER (WHERE in_cohort AND e1), 0)
           AS task_completion_d1,
       count(*) FILTER (WHERE is_current) AS current_members,
       count(*) FILTER (WHERE is_current AND last_active_day > $as_of - 7)
           / nullif(count(*) FILTER (WHERE is_current), 0) AS active_ratio_7d,
       count(*) FILTER (WHERE is_current AND last_active_day > $as_of - 14)
           / nullif(count(*) FILTER (WHERE is_current), 0) AS active_ratio_14d,
       count(*) FILTER (WHERE is_current AND last_active_day > $as_of - 30)
           / nullif(count(*) FILTER (WHERE is_current), 0) AS active_ratio_30d,
       sum(invites) FILTER (WHERE in_cohort AND m30) / nullif(count(*) FILTER (WHERE in_cohort AND m30), 0)
           AS invites_per_member,
       sum(referred) FILTER (WHERE in_cohort AND m30) / nullif(count(*) FILTER (WHERE in_cohort AND m30), 0)
           AS k_factor,
       count(*) FILTER (WHERE in_cohort AND converted) AS converted,
       count(*) FILTER (WHERE in_cohort AND NOT converted AND NOT m30) AS in_progress,
       count(*) FILTER (WHERE in_cohort AND m30 AND converted)
           / nullif(count(*) FILTER (WHERE in_cohort AND m30), 0) AS conversion_rate,
       median(seconds) FILTER (WHERE in_cohort AND converted) AS median_seconds_to_conversion,
       coalesce(sum(revenue_30) FILTER (WHERE in_cohort AND m30), 0)
           / nullif(count(*) FILTER (WHERE in_cohort AND m30), 0) AS revenue_per_member,
       coalesce(sum(margin_30) FILTER (WHERE in_cohort AND m30), 0)
           / nullif(count(*) FILTER (WHERE in_cohort AND m30), 0) AS margin_per_member,
       coalesce(sum(revenue_90) FILTER (WHERE in_cohort AND m90), 0)
           / nullif(count(*) FILTER (WHERE in_cohort AND m90), 0) AS ltv_90_revenue,
       coalesce(sum(margin_90) FILTER (WHERE in_cohort AND m90), 0)
           / nullif(count(*) FILTER (WHERE in_cohort AND m90), 0) AS ltv_90_margin
FROM units
GROUP BY GROUPING SETS ((dim), ())
HAVING count(*) FILTER (WHERE in_cohort OR is_current OR is_landing) > 0 OR grouping(dim) = 1
