"""Random join/leave/activity logs: M3 as of every day in one pass (queries.CURRENT_DAILY) equals CURRENT run
with each day as the as-of day, on DuckDB, chdb and a ClickHouse server (tests/clickhouse_http.py).

The generator aims at what the one-pass query's spans must get right: rejoins into another group, leaves
(also at the very instant of a join, in either arrival order), joins and leaves on the same day, members who
join only later in the window, activity before the window and at local midnights, in zones ahead of and behind
UTC (one with daylight saving time), and events arriving out of time order (late joins). The same from the
member days kept at ship time (queries.current_daily_facts: DuckDB's table, or chdb's and the server's
ReplacingMergeTree), also for windows before the last event.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from qunflow.analytics.facts import days_usable
from qunflow.analytics.queries import CURRENT, CURRENT_DAILY, DAILY_MAX_DAYS, current_daily_facts, render
from qunflow.analytics.shipper import analytics
from qunflow.domain.metrics import Period
from qunflow.services.ingest import ingest_batch
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import use_clickhouse
from tests.emptied import empty
from tests.examples import examples
from tests.integration.test_analytics_property import moments as any_moment

ZONES = ("Asia/Shanghai", "America/New_York")
ORIGIN = datetime(2026, 2, 27, 16, 0, tzinfo=UTC)  # 02-28 00:00 in Shanghai; DST starts in New York 03-08
FIRST_DAY = date(2026, 2, 28)
SECOND, DAY = timedelta(seconds=1), timedelta(days=1)
MEMBERS = [f"m{i}" for i in range(5)]
GROUPS = ["g1", "g2", None]
ACTIVITY = ["message", "checkin", "order", "invite_sent", "coupon_issued"]  # the last two are not engagement
FILTERS = ({}, {"group": "g1"}, {"channel": "ads"}, {"tier": "core"})


def moments() -> st.SearchStrategy[datetime]:
    """About six weeks, with a bias to local midnights of both zones (Shanghai 16:00 UTC, New York 04:00/05:00)."""
    return any_moment(ORIGIN, 42, (0, 12, 13))


@st.composite
def member_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Joins, rejoins, leaves and activity of a few members, in a random arrival order."""
    out: list[dict[str, Any]] = []

    def add(kind: str, ts: datetime, member: str, **fields: Any) -> None:
        out.append({"type": kind, "ts": ts.isoformat(), "member_id": member,
                    **{k: v for k, v in fields.items() if v is not None}})

    for member in MEMBERS:
        moves = sorted(draw(st.lists(moments(), max_size=4)))
        for at in moves:
            if draw(st.booleans()) or at == moves[0]:
                tier = draw(st.sampled_from(["core", "newbie", None]))
                add("joined", at, member, group=draw(st.sampled_from(GROUPS)),
                    channel=draw(st.sampled_from(["ads", "content", None])),
                    properties={"tier": tier} if tier else None)
                if draw(st.integers(0, 3)) == 0:  # a leave at the join's very instant, or a second join
                    add(draw(st.sampled_from(["left", "joined"])), at, member, group=draw(st.sampled_from(GROUPS)))
            else:
                add("left", at, member)
        for at in draw(st.lists(moments(), max_size=6)):
            add(draw(st.sampled_from(ACTIVITY)), at, member)
    order = draw(st.permutations(range(len(out))))
    return [{"event_id": f"e{i}", **out[i]} for i in order]


@pytest.fixture(scope="module", params=["duckdb", "chdb", "clickhouse"])
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One workspace per engine, emptied before each example (the zone is a query parameter here)."""
    if request.param != "duckdb":
        pytest.importorskip("chdb", reason="the chdb engines need chdb: pip install -e '.[test]'")
    ws = init_workspace(tmp_path_factory.mktemp(request.param))
    if request.param == "clickhouse":
        use_clickhouse(ws, request.getfixturevalue("clickhouse_server").fresh_url())
    ws.settings.analytics_engine = request.param
    yield ws
    ws.close()


def m3(names: list[str], row: tuple[Any, ...]) -> tuple[int, ...]:
    record = dict(zip(names, row, strict=True))
    return tuple(int(record[k] or 0) for k in ("current_members", "active_7", "active_14", "active_30"))


# Each example ships a log and runs CURRENT once per day; shrinking would be slow.
@pytest.mark.long
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(logs=member_logs(), zone=st.sampled_from(ZONES), start_offset=st.integers(0, 40),
       span=st.one_of(st.integers(0, 6), st.just(DAILY_MAX_DAYS - 1)),
       filters=st.sampled_from(FILTERS))
def test_each_days_m3_is_current_as_of_that_day(workspace: Workspace, logs: list[dict[str, Any]], zone: str,
                                                start_offset: int, span: int, filters: dict[str, str]) -> None:
    ws = workspace
    empty(ws)
    ws.settings.timezone = zone  # the member days are kept in the workspace's zone (CURRENT's read any zone)
    assert not ingest_batch(ws.engine, logs).errors
    first = FIRST_DAY + timedelta(days=start_offset)
    last = first + timedelta(days=span)

    def params(as_of: date, start: date) -> dict[str, Any]:
        period = Period(start, as_of, as_of, ZoneInfo(zone))
        return {"tz": zone, "cutoff": period.cutoff, "start": start, "end": as_of, "as_of": as_of,
                "engagement": ws.settings.engagement_types, "conversion": ws.settings.conversion_types,
                "experiment": None, **{f"f_{k}": v for k, v in filters.items()}}

    with analytics(ws) as engine:
        names, rows = engine.query(render(CURRENT_DAILY, "none", filters), params(last, first))
        daily = {str(row[names.index("dim")]): m3(names, row) for row in rows}
        assert set(daily) <= {(first + i * DAY).isoformat() for i in range(span + 1)}
        assert days_usable(engine, ws.settings)
        names, rows = engine.query(render(current_daily_facts(engine.name), "none", filters), params(last, first))
        assert {str(row[names.index("dim")]): m3(names, row) for row in rows} == daily, (zone, filters)
        for i in range(span + 1):
            day = first + i * DAY
            names, rows = engine.query(render(CURRENT, "none", filters), params(day, day))
            totals = [m3(names, row) for row in rows if row[names.index("is_total")]]
            assert daily.get(day.isoformat(), (0, 0, 0, 0)) == (totals[0] if totals else (0, 0, 0, 0)), (
                zone, filters, day)
