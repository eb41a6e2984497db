"""The dashboard's daily trend is made of the metrics service's own numbers, on DuckDB and chdb:
cohort metrics of each join day (`--by cohort_day`), M3 as of each day (`--as-of day`), that day's spend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from qunflow.services.metrics import TREND_DAYS, daily_trend, funnel_counts, metrics_report
from qunflow.workspace import Workspace, init_workspace
from tests.numbers_community import seed_community

ACTIVE = ("current_members", "active_ratio_7d", "active_ratio_14d", "active_ratio_30d")
COHORT = ("cohort_size", "retention_d1", "task_completion_d1", "converted", "conversion_rate", "k_factor",
          "revenue_per_member", "landing_visitors", "join_conversion")


@pytest.fixture(params=["duckdb", "chdb"])
def community(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Workspace, date]]:
    if request.param == "chdb":
        pytest.importorskip("chdb", reason="the chdb engine needs chdb: pip install -e '.[test]'")
    ws = init_workspace(tmp_path / request.param)
    ws.settings.analytics_engine = request.param
    today = seed_community(ws, tmp_path, range(-40, 10))
    yield ws, today
    ws.close()


def test_each_point_is_the_metrics_services_number(community: tuple[Workspace, date]) -> None:
    ws, today = community
    start, end, as_of = today - timedelta(days=40), today, today - timedelta(days=2)
    for filters in ({}, {"group": "g1"}, {"channel": "ads"}):
        points = daily_trend(ws, start=start, end=end, as_of=as_of, filters=filters)
        days = [date.fromisoformat(p["day"]) for p in points]
        assert days == [as_of - timedelta(days=TREND_DAYS - 1 - i) for i in range(TREND_DAYS)]  # up to as-of
        by_day = {row["cohort_day"]: row for row in metrics_report(
            ws, start=days[0], end=days[-1], as_of=as_of, by="cohort_day", filters=filters)["rows"]}
        for point, day in zip(points, days, strict=True):
            row = by_day.get(day.isoformat(), {})
            for key in COHORT:
                assert point[key] == row.get(key, 0 if key in ("cohort_size", "converted", "landing_visitors")
                                              else None), (filters, day, key)
        for point, day in list(zip(points, days, strict=True))[::4]:
            seen = metrics_report(ws, start=day, end=day, as_of=day, filters=filters)["total"]
            assert {k: point[k] for k in ACTIVE} == {k: seen[k] for k in ACTIVE}, (filters, day)
            if "group" not in filters:  # that day's spend; never a day after the as-of day
                spent = metrics_report(ws, start=day, end=day, as_of=as_of, filters=filters)["total"]["spend"]
                assert point["spend"] == spent == 100 + (day - today).days
    assert daily_trend(ws, start=today, end=today + timedelta(days=3), as_of=today - timedelta(days=1)) == []


def test_the_funnel_counts_unattributed_joins_apart(community: tuple[Workspace, date]) -> None:
    ws, today = community
    start = today - timedelta(days=40)
    funnel = funnel_counts(ws, start=start, end=today, as_of=today)
    rows = metrics_report(ws, start=start, end=today, as_of=today, by="channel")["rows"]
    unattributed = next(row["cohort_size"] for row in rows if row["channel"] is None)
    assert funnel["unattributed"] == unattributed > 0
    assert funnel["joined"] == sum(row["cohort_size"] for row in rows)
