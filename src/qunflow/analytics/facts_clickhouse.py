"""Per-member facts (analytics/facts.py) on ClickHouse, embedded (chdb) and a server: brought up to the shipped
events (refresh), computed again after events rewritten in place (rewrite; restate for a merge) and purged of an
erased member's old rows (purge); usable says whether they may answer. facts.py picks this module for chdb and a
server; the rules it shares with DuckDB's (facts_duckdb.py) are in facts_rules.py. The tables and the SQL that
computes their rows are in facts_clickhouse_sql.py, the merging of their parts in facts_clickhouse_parts.py.

`version` is a counter kept in `facts_state`, not the ship watermark: a merge or an erasure rewrites facts
without moving the watermark, and every write must outrank the rows it replaces.

Maintenance follows the DuckDB rules: after a ship, the rows of members named on events after the facts'
watermark are computed again from all their events, then the referred counts of those members and of the
referrers named by their old and new first joins; over FULL_REBUILD_SHARE of the members, or on a change of
settings (or of FACTS_VERSION), the table is rebuilt beside the old one and swapped in (EXCHANGE). The state
is marked stale before any write and made current after the last one: a crash in between, or a reader in
the middle, sees facts that are not usable (the event-level SQL answers), and the next refresh rebuilds.

The landing facts (M1) are kept the same way. After a ship, the persons named on new landing views and joins,
and both sides of every link the new events changed, get their rows computed again: new rows of this version,
and tombstones for the (person, day) keys they no longer have. An erasure or a merge rebuilds both tables (ids
move between persons); the key in `facts_state` names the landing facts, so a store from before them rebuilds
once.

For `landing_days_log` a catch-up inserts, in one row per key, the count of the touched persons' new rows less
that of their old ones, read before the new landing rows land. Signed counts rather than recounting the touched
days: a touched person's old rows lie on any day of their history, so the days touched would be many, each a
scan of its landing facts, where the change of the touched rows costs what the landing update already reads.
The state's version guards it as it does the other tables: a crash between its insert and the landing rows'
leaves the state stale, and the next refresh rebuilds all three.

`member_days_log` is kept with the member facts by the same rules and in the same steps (the touched members'
rows computed again, a tombstone for a member left with no span; a rebuild swaps in a fresh table), so the state
guards it as it does them.

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
reads its events twice. The landing rows of the touched persons who are those members read that copy too; the
store is read again only for the other persons (_copy_landing_events). At 1M a 20-event catch-up took 2.4-3.8 s
of CPU before and 0.46-1.08 s after on chdb, 5.2-6.8 s and 1.4-1.7 s on the tests' server; 2,000 events 4.3-5.9 s
and 1.6-2.0 s (merges aside) on chdb, 7.6-8.8 s and 4.2-5.3 s on the server (docs/metrics.md, "A catch-up reads
its members' events"); the landing rows from the copy took 2,000 events on chdb from 1.64-1.73 s to 1.33-1.35 s.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from qunflow.analytics import facts_rules  # FULL_REBUILD_SHARE read when used: a test may change it
from qunflow.analytics.dialects import for_clickhouse
from qunflow.analytics.facts_clickhouse_parts import MAX_PARTS, merge_parts
from qunflow.analytics.facts_clickhouse_sql import (
    DAYS_COLUMNS,
    DAYS_TABLE,
    EVENT_READ_COLUMNS,
    FACT_NAMES,
    LANDING_DAYS_KEY,
    LANDING_DAYS_TABLE,
    LANDING_LINKS,
    LANDING_TABLE,
    LINKS_TABLE,
    MEMBER_DAYS,
    MEMBER_FACTS,
    REFERRED,
    TABLE_COLUMNS,
    VIEWS,
    day_counts,
    landing_sql,
    members_sql,
)
from qunflow.analytics.facts_rules import LANDING_TYPES, params, settings_key

# Facts from before the landing facts, their days or the member days (empty tables) must not count as current:
# part of the key.
TABLES_KEY = " landings 2, member days 1"


def _seqs_of(engine: Any, ids: dict[str, str]) -> str:
    """A subquery: the seqs of the events whose column (a key of `ids`) is in the subquery it maps to, read
    from the stored rows (every version, on a server, where `events` reads events_log FINAL and a server before
    25.6 uses no skip index under FINAL) through the events' skip indexes (engines.EVENT_INDEXES); `seq IN` it
    then reads `events` by its primary key. A catch-up so reads the granules of its members' events, not the
    whole table; the callers keep their own condition on the ids, as a seq's newest row may not match."""
    table = "events_log" if engine.name == "clickhouse" else "events"
    return "(" + " UNION ALL ".join(f"SELECT seq FROM {table} WHERE {column} IN {subquery}"
                                    for column, subquery in ids.items()) + ")"


def _key(settings: Any) -> str:
    return settings_key(settings) + TABLES_KEY


def _params(settings: Any, version: int) -> dict[str, Any]:
    return {**params(settings), "version": version}


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
        suffix = uuid.uuid4().hex
        touched, theirs = f"facts_touched_{suffix}", f"facts_events_{suffix}"
        try:
            rebuilt, copied = _catch_up(engine, settings, state[0], version, touched, theirs)
            rebuilt = _catch_up_landings(engine, settings, state[0], version,
                                         (touched, theirs) if copied else None) or rebuilt
        finally:
            _drop(engine, touched, theirs)
    _set_state(engine, watermark, key, version + 1)
    merge_parts(engine, 1 if rebuilt else MAX_PARTS)


def rebuild(engine: Any, settings: Any, version: int, table: str = "member_facts_log") -> None:
    """Every member's facts and days from every event, into fresh tables swapped in for `table` and the days
    (member_days_log, or <table>_days for another table: a rebuild to check the kept ones); each made if missing."""
    days = "member_days_log" if table == "member_facts_log" else f"{table}_days"
    suffix = uuid.uuid4().hex
    build, fresh, fresh_days = f"facts_build_{suffix}", f"facts_fresh_{suffix}", f"days_fresh_{suffix}"
    _command(engine, f"CREATE TABLE {build} ({TABLE_COLUMNS}) ENGINE = MergeTree ORDER BY member_id")
    try:
        _insert(engine, f"INSERT INTO {build} " + members_sql(MEMBER_FACTS), _params(settings, version))
        _command(engine, f"CREATE TABLE {fresh} ({TABLE_COLUMNS}) ENGINE = ReplacingMergeTree(version) "
                         "ORDER BY member_id")
        pool = f"(SELECT member_id, join_ts, referrer_id FROM {build} WHERE referrer_id IS NOT NULL)"
        _referred(engine, fresh, build, pool, version)
        _command(engine, f"CREATE TABLE {fresh_days} {DAYS_TABLE}")
        _insert(engine, f"INSERT INTO {fresh_days} " + members_sql(MEMBER_DAYS), _params(settings, version))
        for kept, made in ((table, fresh), (days, fresh_days)):
            _command(engine, f"CREATE TABLE IF NOT EXISTS {kept} AS {made}")
            _command(engine, f"EXCHANGE TABLES {kept} AND {made}")
        if table == "member_facts_log":
            replace_views(engine, ("member_facts", "member_days"))
    finally:
        _drop(engine, build, fresh, fresh_days)


def replace_views(engine: Any, names: tuple[str, ...]) -> None:
    """The views over tables a rebuild swapped in made again from this version's definitions: a view made by an
    older qunflow names its tables' old columns."""
    for name in names:
        _command(engine, f"CREATE OR REPLACE VIEW {name} AS {VIEWS[name]}")


def _drop(engine: Any, *tables: str) -> None:
    for name in tables:
        _command(engine, f"DROP TABLE IF EXISTS {name} SYNC")


def _referred(engine: Any, table: str, targets: str, pool: str, version: int) -> None:
    columns = ", ".join(f"t.{n}" for n in FACT_NAMES[:FACT_NAMES.index("referred")])
    rest = ", ".join(f"t.{n}" for n in FACT_NAMES[FACT_NAMES.index("referred") + 1:])
    sql = REFERRED.replace("{columns}", columns).replace("{rest}", rest)
    _insert(engine, sql.replace("{table}", table).replace("{targets}", targets).replace("{pool}", pool),
            {"version": version})


def _catch_up(engine: Any, settings: Any, since: int, version: int, touched: str, theirs: str) -> tuple[bool, bool]:
    """The rows of the members named on events after `since`, or every row when that is most of them. Returns
    (rebuilt, copied): copied when it leaves table `touched` (those members) and `theirs`, the copy of their
    events (_copy_events), which the landing catch-up reads; the caller drops both."""
    _command(engine, f"CREATE TABLE {touched} (member_id String) ENGINE = MergeTree ORDER BY member_id")
    _insert(engine, f"INSERT INTO {touched} SELECT DISTINCT assumeNotNull(member_id) FROM events "
                    "WHERE seq > $since AND member_id IS NOT NULL", {"since": since})
    # Stored rows (old versions too, until merged) stand in for members: only the choice of path depends on it.
    count, members = _select(engine, f"SELECT (SELECT count() FROM {touched}), "
                                      "(SELECT count() FROM member_facts_log)")[0]
    if count > facts_rules.FULL_REBUILD_SHARE * members:
        rebuild(engine, settings, version)
        return True, False
    if not count:
        return False, False
    _copy_events(engine, touched, theirs)
    update_touched(engine, settings, touched, theirs, version)
    return False, True


def _copy_events(engine: Any, touched: str, theirs: str) -> None:
    """The events of the members in table `touched` into a new table `theirs` (EVENT_READ_COLUMNS), read once:
    the facts and the days each read them twice (a CTE is computed where used), the landing catch-up once more."""
    scope = f" AND member_id IN (SELECT member_id FROM {touched})"
    if engine.name == "clickhouse":  # chdb reads them through its projection by member (engines.EVENTS_BY_MEMBER)
        scope += f" AND seq IN {_seqs_of(engine, {'member_id': f'(SELECT member_id FROM {touched})'})}"
    _command(engine, f"CREATE TABLE {theirs} ENGINE = MergeTree ORDER BY seq AS SELECT {EVENT_READ_COLUMNS} "
                     f"FROM events WHERE member_id IS NOT NULL{scope}")


def update_touched(engine: Any, settings: Any, touched: str, theirs: str, version: int) -> None:
    """New versions of the rows (facts and days) of the members in table `touched` (tombstones for those with no
    join, or no span, left), and of the referrers named by their old and new first joins (referred counted
    again). `theirs`: the copy of their events (_copy_events)."""
    suffix = uuid.uuid4().hex
    build, targets = f"facts_build_{suffix}", f"facts_targets_{suffix}"
    in_touched = f"member_id IN (SELECT member_id FROM {touched})"
    for name in (build, targets):
        _command(engine, f"CREATE TABLE {name} ({TABLE_COLUMNS}) ENGINE = MergeTree ORDER BY member_id")
    try:
        _update_days(engine, settings, touched, theirs, version)
        _insert(engine, f"INSERT INTO {build} " + members_sql(MEMBER_FACTS, theirs), _params(settings, version))
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
        _drop(engine, build, targets)


def _update_days(engine: Any, settings: Any, touched: str, theirs: str, version: int) -> None:
    """New versions of the member days of the members in table `touched` (their events: table `theirs`), and
    tombstones for those of them who have a row but no span any more."""
    build = f"days_build_{uuid.uuid4().hex}"
    in_touched = f"member_id IN (SELECT member_id FROM {touched})"
    _command(engine, f"CREATE TABLE {build} ({DAYS_COLUMNS}) ENGINE = MergeTree ORDER BY member_id")
    try:
        _insert(engine, f"INSERT INTO {build} " + members_sql(MEMBER_DAYS, theirs), _params(settings, version))
        _insert(engine, "INSERT INTO member_days_log (member_id, version, deleted) SELECT member_id, $version, true "
                        f"FROM member_days WHERE {in_touched} AND member_id NOT IN (SELECT member_id FROM {build})",
                {"version": version})
        _command(engine, f"INSERT INTO member_days_log SELECT * FROM {build}")
    finally:
        _drop(engine, build)


def rewrite(engine: Any, settings: Any, member_ids: set[str], change: Callable[[], None]) -> None:
    """Run `change` (events rewritten in place: a merge, its undo, an erasure), then compute again the facts of
    `member_ids` and of the members whose first join names one of them. The facts are marked stale first: a
    crash in between rebuilds them. Facts that are not current are left to the next refresh. The caller merges
    the facts tables' parts when its whole write is done (merge_parts; an erasure's purge does)."""
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
    suffix = uuid.uuid4().hex
    touched, theirs = f"facts_touched_{suffix}", f"facts_events_{suffix}"
    _command(engine, f"CREATE TABLE {touched} (member_id String) ENGINE = MergeTree ORDER BY member_id")
    try:
        _insert(engine, f"INSERT INTO {touched} SELECT DISTINCT arrayJoin($ids) UNION DISTINCT "
                        "SELECT member_id FROM member_facts WHERE has($ids, referrer_id)", {"ids": ids})
        _copy_events(engine, touched, theirs)
        update_touched(engine, settings, touched, theirs, version)
    finally:
        _drop(engine, touched, theirs)
    rebuild_landings(engine, settings, version)  # ids rewritten in place move links and persons: rare, one pass
    _set_state(engine, state[0], key, version + 1)  # type: ignore[index]


def restate(engine: Any, settings: Any, table: Any) -> None:
    """`engine.restate(table)` with the facts following (facts.restate_with_facts on ClickHouse): the facts of every
    member on either side of the rewrite computed again (rewrite), then the facts tables' parts merged."""
    touched = members_of(engine, table.column("seq").to_pylist())
    touched |= {v for name in ("member_id", "referrer_id") for v in table.column(name).to_pylist() if v}
    rewrite(engine, settings, touched, lambda: engine.restate(table))
    merge_parts(engine)  # a merge of members (or its undo) leaves one part per facts table


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
        _insert(engine, f"INSERT INTO {fresh} " + landing_sql(fresh_links),
                {"tz": settings.timezone, "version": version})
        _command(engine, f"CREATE TABLE {fresh_days} {LANDING_DAYS_TABLE}")
        _command(engine, f"INSERT INTO {fresh_days} " + day_counts(fresh, 1))  # one row per (person, day) there
        for kept, made in ((links, fresh_links), (table, fresh), (days, fresh_days)):
            _command(engine, f"CREATE TABLE IF NOT EXISTS {kept} AS {made}")
            _command(engine, f"EXCHANGE TABLES {kept} AND {made}")
        if table == "landing_facts_log":
            replace_views(engine, ("landing_links", "landing_facts", "landing_days"))
    finally:
        _drop(engine, fresh_links, fresh, fresh_days)


def _catch_up_landings(engine: Any, settings: Any, since: int, version: int, copied: tuple[str, str] | None) -> bool:
    """As facts_duckdb._catch_up_landings: the landing rows of the persons named on landing views and joins after
    `since`, and of both sides of every visitor whose link the new events changed; every row when that is most
    of them (then True: rebuilt). `copied`: the tables of the member catch-up's members and of their events."""
    suffix = uuid.uuid4().hex
    new_links, named, build = f"links_new_{suffix}", f"landing_named_{suffix}", f"landing_build_{suffix}"
    landing_events = f"landing_events_{suffix}"
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
        if count > facts_rules.FULL_REBUILD_SHARE * rows:
            rebuild_landings(engine, settings, version)
            return True
        if count:
            in_named = f"(SELECT person FROM {named})"
            _copy_landing_events(engine, named, copied, landing_events)
            _command(engine, f"CREATE TABLE {build} {LANDING_TABLE}")
            # The links of these events' visitors only: the join's right side is built whole (0.05-0.07 s
            # at 1M links in chdb, 0.02 s narrowed so; the view's FINAL read uses its order by visitor_id).
            links = (f"(SELECT visitor_id, member_id FROM landing_links WHERE visitor_id IN (SELECT visitor_id "
                     f"FROM {landing_events} WHERE visitor_id IS NOT NULL))")
            rows = landing_sql(links, person_scope=f" AND pid IN {in_named}", events=landing_events)
            _insert(engine, f"INSERT INTO {build} " + rows, {"tz": settings.timezone, "version": version})
            # The day counts change by the touched persons' new rows less their old ones (read before they go).
            _command(engine, f"INSERT INTO landing_days_log SELECT {', '.join(LANDING_DAYS_KEY)}, sum(n) FROM ("
                             f"{day_counts(f'(SELECT * FROM landing_facts WHERE person IN {in_named})', -1)} "
                             f"UNION ALL {day_counts(build, 1)}) GROUP BY {', '.join(LANDING_DAYS_KEY)} "
                             "HAVING sum(n) <> 0")
            _insert(engine, "INSERT INTO landing_facts_log (person, day, version, deleted) "
                            f"SELECT person, day, $version, true FROM landing_facts WHERE person IN {in_named} "
                            f"AND (person, day) NOT IN (SELECT person, day FROM {build})", {"version": version})
            _command(engine, f"INSERT INTO landing_facts_log SELECT * FROM {build}")
        return False
    finally:
        _drop(engine, new_links, named, build, landing_events)


def _copy_landing_events(engine: Any, named: str, copied: tuple[str, str] | None, landing_events: str) -> None:
    """As facts_duckdb._copy_landing_events: the landing views and joins of the persons in table `named` into a new
    table `landing_events`; those of the members the member catch-up copied from that copy (`copied`: its members'
    and their events' tables), the others from the store, read only when there are any."""
    in_named = f"(SELECT person FROM {named})"
    visitors = (f"(SELECT visitor_id FROM landing_links WHERE member_id IN {in_named} "
                f"UNION ALL SELECT substring(person, 9) FROM {named} WHERE startsWith(person, 'visitor:'))")
    members = f"(SELECT person FROM {named} WHERE NOT startsWith(person, 'visitor:')"
    source = "events WHERE 0"
    if copied:
        touched, theirs = copied
        source = f"{theirs} WHERE type IN {LANDING_TYPES} AND member_id IN {in_named}"
        members += f" AND person NOT IN (SELECT member_id FROM {touched})"  # all their events are in the copy
    members += ")"
    _command(engine, f"CREATE TABLE {landing_events} ENGINE = MergeTree ORDER BY seq AS "
                     f"SELECT {EVENT_READ_COLUMNS} FROM {source}")
    left = _select(engine, f"SELECT (SELECT count() FROM {members}) + (SELECT count() FROM {visitors})")[0][0]
    if left:
        _command(engine, f"INSERT INTO {landing_events} SELECT {EVENT_READ_COLUMNS} FROM events WHERE type IN "
                         f"{LANDING_TYPES} AND (member_id IN {members} OR visitor_id IN {visitors}) "
                         f"AND seq IN {_seqs_of(engine, {'member_id': members, 'visitor_id': visitors})} "
                         f"AND seq NOT IN (SELECT seq FROM {landing_events})")


def members_of(engine: Any, seqs: list[int]) -> set[str]:
    """The member and referrer ids on these events as the store holds them (before a restate)."""
    if not seqs:
        return set()
    rows = _select(engine, "SELECT member_id, referrer_id FROM events WHERE seq IN ("
                   + ", ".join(str(int(s)) for s in seqs) + ")")
    return {v for row in rows for v in row if v}
