"""Per-member facts (analytics/facts.py): the cohort statistics from the facts equal those from the events.

Random logs (tests/integration/test_analytics_property.py's generator: rejoins, `left`, orders around the
30/90-day edges, invites, referrers, events at local midnights) are ingested in shuffled batches, shipping
after each, so joins arrive after their member's messages and referrers after their referred members; some
events are sent twice. After every ship the maintained facts must equal a rebuild from scratch, and
COHORT_FACTS and CURRENT_FACTS must give exactly COHORT's and CURRENT's rows (every slice, filters, several
as-of days). The same for the landing facts (M1): the kept links and rows equal a rebuild after every ship
(visitors linked late, or to another member by an earlier event arriving later), and LANDING_FACTS gives
LANDING's rows for every slice, filter, period (also periods starting between a person's views) and as-of day;
so does LANDING_DAYS over the kept landing days, which equal a rebuild too. An as-of day before the last event
must not use the facts. The member days too: the kept ones equal a rebuild after every ship, and
CURRENT_DAILY_FACTS gives CURRENT_DAILY's rows for windows of days before, across and after the last event,
with and without filters.

The same on chdb and on a ClickHouse server (tests/clickhouse_http.py), where the facts are ReplacingMergeTrees
(analytics/facts_clickhouse_sql.py): the kept facts, member days, links and landing rows are read through their
views (newest version per member, visitor, person and day; the landing days' signed counts added up) and
compared with a rebuild into tables of their own; the daily trend's M3 reads the member days in ClickHouse's
SQL (queries.CURRENT_DAILY_FACTS_CLICKHOUSE).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from qunflow.analytics import facts_clickhouse, facts_clickhouse_sql, facts_rules
from qunflow.analytics.facts import days_usable, usable
from qunflow.analytics.facts_duckdb import _rebuild, _rebuild_landings
from qunflow.analytics.queries import (
    COHORT,
    COHORT_FACTS,
    CURRENT,
    CURRENT_DAILY,
    CURRENT_FACTS,
    DAILY_MAX_DAYS,
    LANDING,
    LANDING_DAYS,
    LANDING_FACTS,
    current_daily_facts,
    render,
)
from qunflow.analytics.shipper import analytics
from qunflow.domain.metrics import Period
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import _params, metrics_report
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import use_clickhouse
from tests.emptied import empty
from tests.examples import examples
from tests.integration.test_analytics_property import event_logs

ZONES = ("Asia/Shanghai", "America/New_York")
ORIGIN = date(2026, 2, 28)
SLICES = [("none", {}), ("channel", {}), ("campaign", {}), ("entry_point", {}), ("group", {}), ("tier", {}),
          ("cohort_day", {}), ("cohort_week", {}), ("cohort_week", {"channel": "ads"}), ("channel", {"group": "g1"}),
          ("entry_point", {"tier": "core"}), ("cohort_day", {"campaign": "c1", "entry_point": "ep2"})]


ENGINES = ("duckdb", "chdb", "clickhouse")
# Per example: a few ships and 320 metric queries; ClickHouse answers each more slowly than DuckDB.
EXAMPLES = {"duckdb": 30, "chdb": 6, "clickhouse": 5}


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Workspace]:
    """One workspace per engine and zone, made when a test first asks for it."""
    made: dict[tuple[str, str], Workspace] = {}
    yield made  # type: ignore[misc]
    for ws in made.values():
        ws.close()


def workspace_for(request: pytest.FixtureRequest, made: dict[tuple[str, str], Workspace], engine: str,
                  zone: str) -> Workspace:
    if (engine, zone) not in made:
        made[engine, zone] = engine_workspace(request, request.getfixturevalue("tmp_path_factory").mktemp("facts"),
                                              engine, timezone=zone)
    return made[engine, zone]


# DuckDB keeping its copy of the events ordered by member at any size (analytics/by_member.py: a big store's),
# never sorted again, so the events shipped since are read from its tail.
BY_MEMBER = "duckdb-by-member"


def engine_workspace(request: pytest.FixtureRequest, path: Path, engine: str, **options: Any) -> Workspace:
    """A new workspace whose analytics store is `engine` (a fresh database on the ClickHouse test server)."""
    if engine == BY_MEMBER:
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setattr(facts_rules, "BY_MEMBER_MIN_EVENTS", 0)
        monkeypatch.setattr(facts_rules, "BY_MEMBER_TAIL_SHARE", float("inf"))
        engine = "duckdb"
    if engine != "duckdb":
        pytest.importorskip("chdb", reason="the ClickHouse facts tests need chdb: pip install -e '.[test]'")
    ws = init_workspace(path, **options)
    ws.settings.analytics_engine = engine
    if engine == "clickhouse":
        use_clickhouse(ws, request.getfixturevalue("clickhouse_server").fresh_url())
    return ws


def facts_rows(engine: Any) -> list[tuple[Any, ...]]:
    if engine.name != "duckdb":
        return engine.query("SELECT * FROM member_facts ORDER BY member_id", {})[1]  # type: ignore[no-any-return]
    return engine.conn.execute("SELECT * FROM member_facts ORDER BY member_id").fetchall()  # type: ignore[no-any-return]


def rebuilt_rows(engine: Any, ws: Workspace) -> list[tuple[Any, ...]]:
    """The facts computed from scratch over every event (into a temporary table: the store may be read-only)."""
    if engine.name != "duckdb":
        facts_clickhouse.rebuild(engine, ws.settings, 1, "facts_check")
        return engine.query(f"SELECT {', '.join(facts_clickhouse_sql.FACT_NAMES)} FROM facts_check FINAL "  # type: ignore[no-any-return]
                            "ORDER BY member_id", {})[1]
    _rebuild(engine.conn, ws.settings, "facts_check", temporary=True)
    return engine.conn.execute("SELECT * FROM facts_check ORDER BY member_id").fetchall()  # type: ignore[no-any-return]


def days_rows(engine: Any, table: str = "member_days") -> list[tuple[Any, ...]]:
    """The member days, sorted (on ClickHouse `table` is a view or a table of newest versions, as read)."""
    if engine.name != "duckdb":
        return engine.query(f"SELECT member_id, spans, active_days FROM {table} ORDER BY member_id", {})[1]  # type: ignore[no-any-return]
    return engine.conn.execute(f"SELECT * FROM {table} ORDER BY member_id").fetchall()  # type: ignore[no-any-return]


def rebuilt_days_rows(engine: Any, ws: Workspace) -> list[tuple[Any, ...]]:
    """The member days computed from scratch (with the facts, into tables of their own), as days_rows reads them."""
    if engine.name != "duckdb":
        facts_clickhouse.rebuild(engine, ws.settings, 1, "days_check")
        return days_rows(engine, "(SELECT * FROM days_check_days FINAL WHERE NOT deleted)")
    _rebuild(engine.conn, ws.settings, "days_check", temporary=True)
    return days_rows(engine, "days_check_days")


LANDING_TABLES = ("landing_links", "landing_facts", "landing_days")


def landing_rows(engine: Any, tables: tuple[str, ...] = LANDING_TABLES) -> list[Any]:
    """The kept links, landing facts and landing days, sorted (on ClickHouse: through the views, newest versions
    only, and the days' signed counts added up)."""
    if engine.name != "duckdb":
        return [engine.query(f"SELECT * FROM {table} ORDER BY ALL", {})[1] for table in tables]
    return [engine.conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in tables]


def rebuilt_landing_rows(engine: Any, ws: Workspace) -> list[Any]:
    """The links and landing facts computed from scratch (into temporary tables), sorted."""
    if engine.name != "duckdb":
        facts_clickhouse.rebuild_landings(engine, ws.settings, 1, "landings_check", "links_check")
        key = ", ".join(facts_clickhouse_sql.LANDING_DAYS_KEY)
        return [engine.query(f"SELECT {columns} FROM {table} FINAL WHERE {where} ORDER BY ALL", {})[1]
                for columns, table, where in (("visitor_id, member_id", "links_check", "true"),
                                              (", ".join(facts_clickhouse_sql.LANDING_NAMES), "landings_check",
                                               "NOT deleted"))] + \
            [engine.query(f"SELECT {key}, sum(n) AS views FROM landings_check_days GROUP BY {key} ORDER BY ALL", {})[1]]
    _rebuild_landings(engine.conn, ws.settings, "landings_check", "links_check", temporary=True)
    return landing_rows(engine, ("links_check", "landings_check", "landings_check_days"))


def cohort(engine: Any, ws: Workspace, period: Period, by: str, filters: dict[str, str],
           template: str) -> list[tuple[Any, ...]]:
    _names, rows = engine.query(render(template, by, filters), _params(ws, period, filters, None))
    return sorted(rows, key=repr)


def last_local_day(ws: Workspace, engine: Any) -> date:
    _names, rows = engine.query("SELECT max(@LOCAL_DAY(ts)) FROM events", {"tz": ws.settings.timezone})
    return rows[0][0]  # type: ignore[no-any-return]


def facts_match(engine_name: str) -> Any:
    """The property below with the number of examples that engine can afford. Its own time limit: on DuckDB
    30 examples each check the member facts, the landing facts and the member days against the events
    (397 s with a second worker beside it on the 2-core machine), past the suite's 300 s."""
    @pytest.mark.long
    @pytest.mark.timeout(1200)
    @settings(max_examples=examples(EXAMPLES[engine_name]), deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture],
              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    @given(logs=event_logs(), zone=st.sampled_from(ZONES), data=st.data())
    def check(request: pytest.FixtureRequest, workspaces: dict[tuple[str, str], Workspace],
              logs: list[dict[str, Any]], zone: str, data: st.DataObject) -> None:
        facts_match_events(workspace_for(request, workspaces, engine_name, zone), logs, zone, data)
    return check


test_facts_match_the_event_level_cohort_sql_as_events_arrive_duckdb = facts_match("duckdb")
test_facts_match_the_event_level_cohort_sql_as_events_arrive_chdb = facts_match("chdb")
test_facts_match_the_event_level_cohort_sql_as_events_arrive_clickhouse = facts_match("clickhouse")


def facts_match_events(ws: Workspace, logs: list[dict[str, Any]], zone: str, data: st.DataObject) -> None:
    """Small logs touch most members in every batch, which rebuilds the facts: half the examples raise the
    share for a rebuild out of reach, so the per-member update (the path of a big store) is what runs. On DuckDB
    half keep the copy ordered by member at any size (by_member.py; a big store's), the events of every ship
    appended to it as a sorted run or never (its tail then read from the events)."""
    knobs = ("FULL_REBUILD_SHARE", "BY_MEMBER_MIN_EVENTS", "BY_MEMBER_TAIL_SHARE")
    kept = {name: getattr(facts_rules, name) for name in knobs}
    facts_rules.FULL_REBUILD_SHARE = data.draw(st.sampled_from([kept["FULL_REBUILD_SHARE"], float("inf")]))
    facts_rules.BY_MEMBER_MIN_EVENTS = data.draw(st.sampled_from([kept["BY_MEMBER_MIN_EVENTS"], 0]))
    facts_rules.BY_MEMBER_TAIL_SHARE = data.draw(st.sampled_from([0.0, float("inf")]))
    try:
        _facts_match_events(ws, logs, zone, data)
    finally:
        for name, value in kept.items():
            setattr(facts_rules, name, value)


def _facts_match_events(ws: Workspace, logs: list[dict[str, Any]], zone: str, data: st.DataObject) -> None:
    empty(ws)
    order = data.draw(st.permutations(range(len(logs))))
    resent = data.draw(st.lists(st.sampled_from(range(len(logs))), max_size=3)) if logs else []
    arriving = [logs[i] for i in order] + [logs[i] for i in resent]  # late joins; re-sent ids are no-ops
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arriving)), min_size=1, max_size=3)))
    batches = [arriving[a:b] for a, b in zip([0, *cuts], [*cuts, len(arriving)], strict=True)]
    for batch in batches:
        if batch:
            ingest_batch(ws.engine, batch)
        with analytics(ws) as engine:
            assert facts_rows(engine) == rebuilt_rows(engine, ws)
            assert landing_rows(engine) == rebuilt_landing_rows(engine, ws)
            assert days_rows(engine) == rebuilt_days_rows(engine, ws)
            if engine.name == "duckdb":  # the newest event's time, kept as events ship (what `usable` reads)
                assert engine.conn.execute("SELECT max_ts FROM facts_state").fetchall() == \
                    engine.conn.execute("SELECT max(ts) FROM events").fetchall()
    drawn_start = ORIGIN + timedelta(days=data.draw(st.integers(-2, 70)))
    drawn_end = drawn_start + timedelta(days=data.draw(st.integers(0, 20)))
    with analytics(ws) as engine:
        last = last_local_day(ws, engine)
        start = ORIGIN - timedelta(days=5)
        as_ofs = [last + timedelta(days=n) for n in (0, 1, 31, 95)]
        wide = data.draw(st.booleans())
        if engine.name != "duckdb":  # a query costs ClickHouse ~0.2 s: one as-of day and span per example
            as_ofs = [data.draw(st.sampled_from(as_ofs))]
        for as_of in as_ofs:
            period = Period(start, ORIGIN + timedelta(days=75), as_of, ws.settings.zone)
            assert usable(engine, ws.settings, period.cutoff), as_of
            narrow = Period(ORIGIN + timedelta(days=10), ORIGIN + timedelta(days=20), as_of, ws.settings.zone)
            drawn = Period(drawn_start, drawn_end, as_of, ws.settings.zone)
            for span in (period, narrow) if engine.name == "duckdb" else ((period,) if wide else (narrow,)):
                for by, filters in SLICES[:10] if engine.name == "duckdb" else SLICES:
                    for facts, events in ((COHORT_FACTS, COHORT), (CURRENT_FACTS, CURRENT)):
                        assert cohort(engine, ws, span, by, filters, facts) == \
                            cohort(engine, ws, span, by, filters, events), (zone, as_of, by, filters, events[-60:])
            # M1 from the landing facts; it reads the as-of day only for a week's maturity. ClickHouse: one as-of
            # day (drawn above), one span (the drawn period or the one of the cohort checks).
            if engine.name != "duckdb" or as_of in (last, last + timedelta(days=31)):
                spans = (period, narrow, drawn) if engine.name == "duckdb" else \
                    (data.draw(st.sampled_from([drawn, period if wide else narrow])),)
                for span in spans:
                    for by, filters in SLICES:
                        from_events = cohort(engine, ws, span, by, filters, LANDING)
                        assert cohort(engine, ws, span, by, filters, LANDING_FACTS) == from_events, \
                            (zone, as_of, span, by, filters)
                        assert cohort(engine, ws, span, by, filters, LANDING_DAYS) == from_events, \
                            (zone, as_of, span, by, filters)
        # The cohort as of a day in the past, with events after it (late conversions, activity, referred joins):
        # COHORT_FACTS still gives COHORT's rows, also for a period that ends after that day.
        assert usable(engine, ws.settings, None)
        past = ORIGIN + timedelta(days=data.draw(st.integers(-1, 60)))
        past_spans = [Period(start, ORIGIN + timedelta(days=75), past, ws.settings.zone),
                      Period(drawn_start, drawn_end, past, ws.settings.zone)]
        if engine.name != "duckdb":
            past_spans = [data.draw(st.sampled_from(past_spans))]
        for span in past_spans:
            for by, filters in SLICES[:10] if engine.name == "duckdb" else SLICES:
                assert cohort(engine, ws, span, by, filters, COHORT_FACTS) == \
                    cohort(engine, ws, span, by, filters, COHORT), (zone, past, span, by, filters)
        # M3 day by day: windows before, across and after the last event (ClickHouse: one window per example)
        assert days_usable(engine, ws.settings)
        windows = [(drawn_start, drawn_end), (last - timedelta(days=DAILY_MAX_DAYS - 1), last),
                   (last - timedelta(days=3), last + timedelta(days=20))]
        if engine.name != "duckdb":
            windows = [data.draw(st.sampled_from(windows))]
        for first, final in windows:  # each day's M3 as of that day: the window's cutoff is its last day's end
            days = Period(first, final, final, ws.settings.zone)
            for filters in ({}, {"group": "g1"}, {"channel": "ads"}, {"tier": "core", "group": "g2"}):
                assert cohort(engine, ws, days, "none", filters, current_daily_facts(engine.name)) == \
                    cohort(engine, ws, days, "none", filters, CURRENT_DAILY), (zone, days, filters)
        # An as-of day before the last event: the facts hold events the day did not know yet.
        assert not usable(engine, ws.settings, Period(start, last, last - timedelta(days=1), ws.settings.zone).cutoff)


def test_metrics_read_the_facts_only_when_every_event_is_known(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    try:
        ingest_batch(ws.engine, [
            {"event_id": "j1", "type": "joined", "ts": "2026-03-01T10:00:00+08:00", "member_id": "a",
             "channel": "ads"},
            {"event_id": "m1", "type": "message", "ts": "2026-03-02T10:00:00+08:00", "member_id": "a"},
            {"event_id": "j2", "type": "joined", "ts": "2026-03-03T10:00:00+08:00", "member_id": "b",
             "channel": "kol", "referrer_id": "a"},
        ])
        report = metrics_report(ws, start=date(2026, 3, 1), end=date(2026, 3, 3), as_of=date(2026, 4, 30),
                                by="channel")
        assert report["total"]["retention_d1"] == 0.5
        with analytics(ws, ship_first=False) as engine:
            assert usable(engine, ws.settings, Period(date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 3),
                                                      ws.settings.zone).cutoff)
            assert not usable(engine, ws.settings, Period(date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 2),
                                                          ws.settings.zone).cutoff)
            assert engine.conn.execute("SELECT referred FROM member_facts WHERE member_id = 'a'").fetchall() \
                == [(1,)]
        # As of 03-02, b has not joined yet: the cohort's facts answer a past day too, and count one member.
        past = metrics_report(ws, start=date(2026, 3, 1), end=date(2026, 3, 3), as_of=date(2026, 3, 2))
        assert past["total"]["cohort_size"] == 1
        ws.settings.metrics_facts = False  # the setting turns the facts off: the same report, from the events
        with analytics(ws, ship_first=False) as engine:
            assert not usable(engine, ws.settings, Period(date(2026, 3, 1), date(2026, 3, 3), date(2026, 4, 30),
                                                          ws.settings.zone).cutoff)
        assert metrics_report(ws, start=date(2026, 3, 1), end=date(2026, 3, 3), as_of=date(2026, 4, 30),
                              by="channel") == report
    finally:
        ws.close()


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize(("zone", "first"), [("America/New_York", date(2026, 3, 1)),  # summer time on 03-08
                                           ("Pacific/Apia", date(2011, 12, 22))])  # 2011-12-30 was skipped
def test_landing_days_mature_views_as_the_landing_sql_does_around_a_week(
        request: pytest.FixtureRequest, tmp_path: Path, zone: str, first: date, engine_name: str) -> None:
    """Views at the start, middle and end of each of 12 days, two of three followed by a join: M1 from the landing
    days equals M1 from the events for each as-of day whose week boundary falls among them."""
    ws = engine_workspace(request, tmp_path / "ws", engine_name, timezone=zone)
    try:
        tz = ZoneInfo(zone)
        batch = []
        for day in (first + timedelta(days=i) for i in range(12)):
            for k, at in enumerate((time(0, 0, 1), time(12), time(23, 59, 59))):
                visitor = f"v{day:%m%d}{k}"
                ts = datetime.combine(day, at, tz)
                batch.append({"event_id": visitor, "type": "landing_view", "ts": ts.isoformat(),
                              "visitor_id": visitor, "channel": "ads"})
                if k != 1:
                    batch.append({"event_id": f"j{visitor}", "type": "joined", "member_id": f"m{visitor}",
                                  "visitor_id": visitor, "ts": (ts + timedelta(hours=1)).isoformat()})
        ingest_batch(ws.engine, batch)
        with analytics(ws) as engine:
            last = last_local_day(ws, engine)
            for as_of in (last + timedelta(days=n) for n in range(12)):
                period = Period(first, first + timedelta(days=11), as_of, ws.settings.zone)
                for by in ("none", "cohort_day"):
                    assert cohort(engine, ws, period, by, {}, LANDING_DAYS) == \
                        cohort(engine, ws, period, by, {}, LANDING), (as_of, by)
    finally:
        ws.close()


@pytest.mark.parametrize("engine_name", ENGINES)
def test_facts_an_older_version_kept_with_other_columns_are_rebuilt_and_read_through_new_views(
        request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine_name: str) -> None:
    """Version 4 kept the group of the last join in the facts and the member days; version 5 does not. A store an
    older qunflow kept (its state names version 4; a column more in the tables, and on ClickHouse in the views that
    name their columns) is rebuilt at the next ship, and its views follow the new tables."""
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    joins = [{"event_id": "j1", "type": "joined", "ts": "2026-03-01T10:00:00+08:00", "member_id": "a", "group": "g1"},
             {"event_id": "j2", "type": "joined", "ts": "2026-03-05T10:00:00+08:00", "member_id": "a", "group": "g2"}]
    try:
        monkeypatch.setattr(facts_rules, "FACTS_VERSION", 4)
        ingest_batch(ws.engine, joins)
        with analytics(ws) as engine:  # as an older qunflow left it
            if engine.name == "duckdb":
                engine.conn.execute("ALTER TABLE member_facts ADD COLUMN current_group VARCHAR")
            else:
                engine.command("ALTER TABLE member_facts_log ADD COLUMN current_group Nullable(String)")
                engine.command(f"CREATE OR REPLACE VIEW member_facts AS SELECT "
                               f"{', '.join(facts_clickhouse_sql.FACT_NAMES)}, current_group "
                               "FROM member_facts_log FINAL WHERE NOT deleted")
        monkeypatch.undo()
        ingest_batch(ws.engine, [{"event_id": "m1", "type": "message", "ts": "2026-03-06T10:00:00+08:00",
                                  "member_id": "a"}])
        with analytics(ws) as engine:
            assert usable(engine, ws.settings, None)
            names, rows = engine.query("SELECT * FROM member_facts", {})
            assert "current_group" not in names and len(rows) == 1
        groups = metrics_report(ws, start=date(2026, 3, 1), end=date(2026, 3, 31), as_of=date(2026, 3, 31),
                                by="group")["rows"]
        assert [(row["group"], row["current_members"]) for row in groups] == [("g1", 1)]  # the first join's group
    finally:
        ws.close()


@pytest.mark.parametrize("engine_name", (*ENGINES, BY_MEMBER))
def test_facts_and_member_days_are_rebuilt_when_the_engagement_types_or_the_zone_change(
        request: pytest.FixtureRequest, tmp_path: Path, engine_name: str) -> None:
    """Facts and member days computed with other settings are not used (the daily trend's M3 reads the events
    then) until the next ship rebuilds them: a reward claim becomes engagement (D1 activity, an active day),
    then the zone moves every local day (Shanghai to Los Angeles: a day earlier here)."""
    ws = engine_workspace(request, tmp_path / "ws", engine_name, timezone="Asia/Shanghai")

    def days(engine: Any) -> list[tuple[Any, ...]]:
        kept = days_rows(engine)
        assert kept == rebuilt_days_rows(engine, ws)
        return [(row[0], [(s["present_from"], s["present_until"]) for s in row[1]], list(row[2])) for row in kept]

    def stale() -> None:
        with analytics(ws, ship_first=False) as engine:  # read-only on DuckDB: the old facts no longer apply
            assert not usable(engine, ws.settings, period.cutoff) and not days_usable(engine, ws.settings)

    def ship(event_id: str, ts: str) -> Any:
        ingest_batch(ws.engine, [{"event_id": event_id, "type": "message", "ts": ts, "member_id": "a"}])
        return analytics(ws)

    period = Period(date(2026, 3, 1), date(2026, 3, 1), date(2026, 4, 1), ws.settings.zone)
    try:
        ingest_batch(ws.engine, [
            {"event_id": "j1", "type": "joined", "ts": "2026-03-01T10:00:00+08:00", "member_id": "a"},
            {"event_id": "s1", "type": "reward_claimed", "ts": "2026-03-02T10:00:00+08:00", "member_id": "a"},
        ])
        with analytics(ws) as engine:
            assert engine.query("SELECT r1 FROM member_facts", {})[1] == [(False,)]
            assert days(engine) == [("a", [(date(2026, 3, 1), None)], [])]
        ws.settings.engagement_types = [*ws.settings.engagement_types, "reward_claimed"]
        stale()
        with ship("m1", "2026-03-20T10:00:00+08:00") as engine:
            assert usable(engine, ws.settings, period.cutoff) and days_usable(engine, ws.settings)
            assert engine.query("SELECT r1 FROM member_facts", {})[1] == [(True,)]
            assert days(engine) == [("a", [(date(2026, 3, 1), None)], [date(2026, 3, 2), date(2026, 3, 20)])]
        ws.settings.timezone = "America/Los_Angeles"
        period = Period(date(2026, 3, 1), date(2026, 3, 1), date(2026, 4, 1), ws.settings.zone)
        stale()
        with ship("m2", "2026-03-21T10:00:00+08:00") as engine:
            assert days_usable(engine, ws.settings)
            assert days(engine) == [("a", [(date(2026, 2, 28), None)],
                                     [date(2026, 3, 1), date(2026, 3, 19), date(2026, 3, 20)])]
    finally:
        ws.close()


def ship_checking_landings(ws: Workspace, batch: list[dict[str, Any]],
                           period: dict[str, date]) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """Ingest and ship `batch`; the kept landing facts must equal a rebuild, and the report by channel from the
    facts the one from the events. Returns that report and the persons of the landing facts."""
    ingest_batch(ws.engine, batch)
    with analytics(ws) as engine:
        assert landing_rows(engine) == rebuilt_landing_rows(engine, ws)
        persons = [tuple(row) for row in engine.query("SELECT DISTINCT person FROM landing_facts", {})[1]]
    report = metrics_report(ws, **period, by="channel", ship_first=False)
    ws.settings.metrics_facts = False
    assert metrics_report(ws, **period, by="channel", ship_first=False) == report
    ws.settings.metrics_facts = True
    return report, persons


@pytest.mark.parametrize("engine_name", ENGINES)
def test_landing_facts_follow_links_that_arrive_late_or_move(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """A visitor's views belong to the bare visitor, then to the member whose join links them, then to another
    member named with the visitor on an earlier event that arrives last: after each ship the kept landing facts
    equal a rebuild and M1 from the facts equals M1 from the events. Per-person updates only (no rebuild)."""
    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    period = {"start": date(2026, 3, 1), "end": date(2026, 3, 10), "as_of": date(2026, 3, 31)}
    try:
        batches = [
            [{"event_id": "l1", "type": "landing_view", "ts": "2026-03-01T10:00:00+08:00", "visitor_id": "v1",
              "channel": "ads"},
             {"event_id": "l2", "type": "landing_view", "ts": "2026-03-03T10:00:00+08:00", "visitor_id": "v1",
              "channel": "kol"}],
            [{"event_id": "j1", "type": "joined", "ts": "2026-03-04T10:00:00+08:00", "member_id": "a",
              "visitor_id": "v1"}],
            [{"event_id": "m1", "type": "message", "ts": "2026-02-20T10:00:00+08:00", "member_id": "b",
              "visitor_id": "v1"}],
        ]
        seen = []
        for batch in batches:
            report, persons = ship_checking_landings(ws, batch, period)
            seen.append((persons, report["total"]["landing_visitors"], report["total"]["join_conversion"]))
        assert seen == [([("visitor:v1",)], 1, 0.0), ([("a",)], 1, 1.0), ([("b",)], 1, 0.0)]
        # From 03-02 on, the first view in the period is the second one (kol).
        later = metrics_report(ws, start=date(2026, 3, 2), end=date(2026, 3, 10), as_of=date(2026, 3, 31),
                               by="channel", ship_first=False)
        assert [(row["channel"], row["landing_visitors"]) for row in later["rows"]
                if row["landing_visitors"]] == [("kol", 1)]
    finally:
        ws.close()


@pytest.mark.parametrize("engine_name", (*ENGINES, BY_MEMBER))
def test_landing_facts_of_known_members_follow_their_own_views_and_joins(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """Members seen on landing views by their own id (no visitor id) join in a later ship, and then a visitor's
    view is linked by another member's join: the first catch-up reads their views and joins from the copy of the
    touched members' events alone, the second from the copy and a read of the store for the visitor. After each
    ship the kept landing facts equal a rebuild, and M1 from the facts equals M1 from the events."""
    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    period = {"start": date(2026, 3, 1), "end": date(2026, 3, 10), "as_of": date(2026, 3, 31)}
    members = [f"k{n}" for n in range(7)]
    try:
        batches = [
            [{"event_id": f"v-{m}", "type": "landing_view", "ts": f"2026-03-0{1 + n % 3}T10:00:00+08:00",
              "member_id": m, "channel": "ads" if n % 2 else "kol"} for n, m in enumerate(members)],
            [{"event_id": f"j-{m}", "type": "joined", "ts": f"2026-03-0{4 + n % 3}T10:00:00+08:00", "member_id": m}
             for n, m in enumerate(members) if n != 6],  # k6 never joins
            [{"event_id": "v-x", "type": "landing_view", "ts": "2026-03-02T10:00:00+08:00", "visitor_id": "vx",
              "channel": "ads"}],
            [{"event_id": "j-x", "type": "joined", "ts": "2026-03-03T10:00:00+08:00", "member_id": "x",
              "visitor_id": "vx"}],
        ]
        totals = [ship_checking_landings(ws, batch, period)[0]["total"] for batch in batches]
        assert [(t["landing_visitors"], t["join_conversion"]) for t in totals] == [(7, 0.0), (7, 6 / 7), (8, 6 / 8),
                                                                                  (8, 7 / 8)]
    finally:
        ws.close()


@pytest.mark.parametrize("engine_name", (*ENGINES, BY_MEMBER))
def test_a_late_earlier_join_moves_the_referred_count_between_referrers(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """Per-member updates (no rebuild): b's referrer is a until an earlier join of b naming c arrives; then
    a's count must drop and c's rise, though neither a nor c has a new event. On ClickHouse the old versions
    are still in the table (no merge ran): the view reads only the newest."""
    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    steps = [
        [{"event_id": "ja", "type": "joined", "ts": "2026-03-01T10:00:00+08:00", "member_id": "a"},
         {"event_id": "jc", "type": "joined", "ts": "2026-03-01T11:00:00+08:00", "member_id": "c"}],
        [{"event_id": "jb2", "type": "joined", "ts": "2026-03-05T10:00:00+08:00", "member_id": "b",
          "referrer_id": "a"}],
        [{"event_id": "jb1", "type": "joined", "ts": "2026-03-03T10:00:00+08:00", "member_id": "b",
          "referrer_id": "c"}],
    ]
    expected = [{"a": 0, "c": 0}, {"a": 1, "b": 0, "c": 0}, {"a": 0, "b": 0, "c": 1}]

    def check(engine: Any, want: dict[str, int]) -> None:
        rows = facts_rows(engine)
        names = ([d[0] for d in engine.conn.execute("SELECT * FROM member_facts LIMIT 0").description]
                 if engine.name == "duckdb" else engine.query("SELECT * FROM member_facts LIMIT 0", {})[0])
        referred = names.index("referred")
        assert {row[0]: row[referred] for row in rows} == want
        assert rows == rebuilt_rows(engine, ws)

    try:
        versions = ship_with_merges_stopped(ws, steps, expected, check, "member_facts_log")
        if engine_name not in ("duckdb", BY_MEMBER):
            assert versions == [("a", 3, 0), ("b", 2, 0), ("c", 2, 0)]  # every version kept, the newest read
    finally:
        ws.close()


def ship_with_merges_stopped(ws: Workspace, steps: list[list[dict[str, Any]]], expected: list[Any],
                             check: Any, table: str) -> list[tuple[Any, ...]]:
    """Ship each step's events and `check(engine, expected[i])` after it. On ClickHouse `table`'s background merges
    stop after the first ship, so every version written stays side by side; returns each member's count of
    versions and of tombstones in `table` then (nothing on DuckDB)."""
    for batch, want in zip(steps, expected, strict=True):
        ingest_batch(ws.engine, batch)
        with analytics(ws) as engine:
            check(engine, want)
            if engine.name != "duckdb":
                engine.command(f"SYSTEM STOP MERGES {table}")  # type: ignore[attr-defined]
    if ws.settings.analytics_engine == "duckdb":
        return []
    with analytics(ws, ship_first=False) as engine:
        return engine.query(f"SELECT member_id, count(), countIf(deleted) FROM {table} GROUP BY member_id "  # type: ignore[no-any-return]
                            "ORDER BY member_id", {})[1]


@pytest.mark.parametrize("engine_name", ENGINES)
def test_the_cohort_facts_answer_an_as_of_day_in_the_past(request: pytest.FixtureRequest, tmp_path: Path,
                                                          engine_name: str) -> None:
    """As of 03-05: a's order on 03-10 has not happened yet (not converted), and b, who joins on 03-07 within
    the period, is not in the cohort; both events are in the facts. A hand-checked count and COHORT's rows."""
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    try:
        ingest_batch(ws.engine, [
            {"event_id": "ja", "type": "joined", "ts": "2026-03-01T10:00:00+08:00", "member_id": "a",
             "channel": "ads"},
            {"event_id": "ma", "type": "message", "ts": "2026-03-02T10:00:00+08:00", "member_id": "a"},
            {"event_id": "pa", "type": "order", "ts": "2026-03-10T10:00:00+08:00", "member_id": "a",
             "amount": 99},
            {"event_id": "jb", "type": "joined", "ts": "2026-03-07T10:00:00+08:00", "member_id": "b",
             "channel": "ads"},
        ])
        period = Period(date(2026, 3, 1), date(2026, 3, 10), date(2026, 3, 5), ws.settings.zone)
        with analytics(ws) as engine:
            assert usable(engine, ws.settings, None) and not usable(engine, ws.settings, period.cutoff)
            for by in ("none", "channel"):
                from_facts = cohort(engine, ws, period, by, {}, COHORT_FACTS)
                assert from_facts == cohort(engine, ws, period, by, {}, COHORT), by
        report = metrics_report(ws, start=period.start, end=period.end, as_of=period.as_of)
        assert report["total"]["cohort_size"] == 1
        assert report["total"]["retention_d1"] == 1.0
        assert not report["total"]["converted"]
        later = metrics_report(ws, start=period.start, end=period.end, as_of=date(2026, 3, 31))
        assert later["total"]["cohort_size"] == 2 and later["total"]["converted"] == 1
    finally:
        ws.close()


@pytest.mark.parametrize("engine_name", (*ENGINES, BY_MEMBER))
def test_member_days_stay_exact_across_tombstones_and_merges_of_their_parts(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine_name: str) -> None:
    """Per-member updates (no rebuild): a's span ends when a `left` arrives, then disappears when a late `left` on
    the join's own day arrives (a tombstone on ClickHouse), and b's days grow. On ClickHouse with merges
    stopped every version stays side by side and the view reads the newest; after the parts are merged
    (OPTIMIZE ... FINAL) the same. Each time the kept days equal a rebuild, and the daily trend's M3 from them
    equals the one from the events."""
    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    ws = engine_workspace(request, tmp_path / "ws", engine_name)
    steps = [
        [{"event_id": "ja", "type": "joined", "ts": "2026-03-01T10:00:00+08:00", "member_id": "a", "group": "g1"},
         {"event_id": "jb", "type": "joined", "ts": "2026-03-02T10:00:00+08:00", "member_id": "b", "group": "g1"},
         {"event_id": "ma", "type": "message", "ts": "2026-03-03T10:00:00+08:00", "member_id": "a"}],
        [{"event_id": "la", "type": "left", "ts": "2026-03-05T10:00:00+08:00", "member_id": "a"},
         {"event_id": "mb", "type": "checkin", "ts": "2026-03-06T10:00:00+08:00", "member_id": "b"}],
        [{"event_id": "la0", "type": "left", "ts": "2026-03-01T12:00:00+08:00", "member_id": "a"},
         {"event_id": "mb2", "type": "message", "ts": "2026-03-08T10:00:00+08:00", "member_id": "b"}],
    ]
    spans = [{"a": 1, "b": 1}, {"a": 1, "b": 1}, {"b": 1}]
    days = Period(date(2026, 2, 27), date(2026, 3, 12), date(2026, 3, 12), ws.settings.zone)

    def check(engine: Any, members: dict[str, int]) -> None:
        kept = days_rows(engine)
        assert {row[0]: len(row[1]) for row in kept} == members
        assert kept == rebuilt_days_rows(engine, ws)
        assert days_usable(engine, ws.settings)
        from_days = cohort(engine, ws, days, "none", {}, current_daily_facts(engine.name))
        assert from_days and from_days == cohort(engine, ws, days, "none", {}, CURRENT_DAILY)

    try:
        versions = ship_with_merges_stopped(ws, steps, spans, check, "member_days_log")
        if engine_name not in ("duckdb", BY_MEMBER):
            assert versions == [("a", 3, 1), ("b", 3, 0)]  # every version kept, the tombstone newest for a
            with analytics(ws, ship_first=False) as engine:
                engine.command("SYSTEM START MERGES member_days_log")  # type: ignore[attr-defined]
                engine.command("OPTIMIZE TABLE member_days_log FINAL")  # type: ignore[attr-defined]
                assert engine.query("SELECT member_id, deleted FROM member_days_log ORDER BY member_id", {})[1] == \
                    [("a", True), ("b", False)]
                check(engine, {"b": 1})
    finally:
        ws.close()


def test_events_shipped_since_the_copy_join_it_as_a_run_sorted_by_member(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """DuckDB's copy ordered by member (by_member.py): once the events shipped since exceed the tail's share, they
    are appended as a run of their own sorted by member (not the whole copy sorted again inside a read), and the
    copy still holds exactly the events with a member; the facts kept from it equal a rebuild."""
    from qunflow.analytics import by_member

    monkeypatch.setattr(facts_rules, "FULL_REBUILD_SHARE", float("inf"))
    monkeypatch.setattr(facts_rules, "BY_MEMBER_MIN_EVENTS", 0)
    monkeypatch.setattr(facts_rules, "BY_MEMBER_TAIL_SHARE", 0.5)
    ws = init_workspace(tmp_path / "ws")

    def joined(member: str, day: int) -> dict[str, Any]:
        return {"event_id": f"j-{member}", "type": "joined", "ts": f"2026-03-0{day}T10:00:00+08:00",
                "member_id": member, "channel": "ads"}

    def said(member: str, n: int, day: int) -> dict[str, Any]:
        return {"event_id": f"m-{member}-{n}", "type": "message", "ts": f"2026-03-0{day}T11:0{n}:00+08:00",
                "member_id": member}

    def physical(engine: Any) -> list[str]:
        return [r[0] for r in engine.conn.execute(f"SELECT member_id FROM {by_member.TABLE} ORDER BY rowid").fetchall()]

    try:
        first = [joined(m, 1) for m in "dbca"] + [said(m, 1, 1) for m in "cadb"]
        small = [said("c", 2, 2)]  # 1 event: under half of the copy, it stays in the tail
        later = [joined(m, 3) for m in "fe"] + [said(m, 3, 3) for m in "ebfa"]  # 6 more: over half, a run
        ingest_batch(ws.engine, first)
        with analytics(ws) as engine:
            assert physical(engine) == sorted(e["member_id"] for e in first)
        ingest_batch(ws.engine, small)
        with analytics(ws) as engine:
            assert physical(engine) == sorted(e["member_id"] for e in first)
            assert facts_rows(engine) == rebuilt_rows(engine, ws)
        ingest_batch(ws.engine, later)
        with analytics(ws) as engine:
            assert physical(engine) == (sorted(e["member_id"] for e in first)
                                        + sorted(e["member_id"] for e in small + later))
            columns = by_member.COLUMNS
            assert engine.conn.execute(f"SELECT {columns} FROM {by_member.TABLE} ORDER BY seq").fetchall() == \
                engine.conn.execute(f"SELECT {columns} FROM events WHERE member_id IS NOT NULL "
                                    "ORDER BY seq").fetchall()
            assert facts_rows(engine) == rebuilt_rows(engine, ws)
    finally:
        ws.close()
