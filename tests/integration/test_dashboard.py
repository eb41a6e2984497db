"""The console's front page: one shipping, and the same numbers as the metrics service's own reports."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from qunflow.services.dashboard import build_dashboard
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import funnel_counts, metrics_report
from qunflow.sim.demo import Simulation
from qunflow.store.tables import events
from qunflow.workspace import Workspace, init_workspace


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def community(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    if request.param == "chdb":
        pytest.importorskip("chdb", reason="the chdb engine needs chdb: pip install -e '.[test]'")
    ws = init_workspace(tmp_path_factory.mktemp("dashboard") / "ws")
    ws.settings.analytics_engine = request.param
    Simulation(ws, days=14, seed=11).run()
    return ws


def period(ws: Workspace) -> tuple[date, date, date]:
    with ws.engine.connect() as conn:
        last = conn.execute(select(func.max(events.c.ts))).scalar_one().date() - timedelta(days=1)
    return last - timedelta(days=13), last, last


def test_dashboard_numbers_equal_the_separate_reports(community: Workspace) -> None:
    start, end, as_of = period(community)
    board = build_dashboard(community, start, end, as_of, history_start=start - timedelta(weeks=2))
    assert board.funnel == funnel_counts(community, start=start, end=end, as_of=as_of)
    assert board.funnel["joined"] > 0 and board.funnel["landing_visitors"] > 0
    by_channel = metrics_report(community, start=start, end=end, as_of=as_of, by="channel")
    assert board.total == by_channel["total"] and board.channels == by_channel["rows"]
    # The previous period of equal length, seen as far from its end as the current one (like with like).
    previous = metrics_report(community, start=start - timedelta(days=14), end=start - timedelta(days=1),
                              as_of=as_of - timedelta(days=14))
    assert board.previous == previous["total"]
    cohorts = metrics_report(community, start=start - timedelta(weeks=2), end=end, as_of=as_of, by="cohort_week")
    assert board.cohorts == cohorts["rows"]
    # Each group's active ratio: M3 by the first join's group (read for M3 alone on the page).
    by_group = {row["group"]: row for row in metrics_report(community, start=start, end=end, as_of=as_of,
                                                            by="group")["rows"]}
    assert board.groups and any(group["active_ratio_7d"] is not None for group in board.groups)
    for group in board.groups:
        assert group["active_ratio_7d"] == by_group.get(group["key"], {}).get("active_ratio_7d"), group["key"]


def test_a_filtered_dashboard_funnel_equals_the_filtered_funnel(community: Workspace) -> None:
    start, end, as_of = period(community)
    channel = metrics_report(community, start=start, end=end, as_of=as_of, by="channel")["rows"][0]["channel"]
    board = build_dashboard(community, start, end, as_of, {"channel": channel})
    assert board.funnel == funnel_counts(community, start=start, end=end, as_of=as_of, filters={"channel": channel})
    assert board.funnel["joined"] == board.total["cohort_size"]


def test_the_dashboard_ships_new_events_before_reading(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = init_workspace(tmp_path / "ws", timezone="UTC")
    try:
        day = date(2026, 3, 2)
        ingest_batch(ws.engine, [{"event_id": "j1", "type": "joined", "ts": "2026-03-02T10:00:00Z",
                                  "member_id": "m1", "channel": "ads"}])
        assert build_dashboard(ws, day, day, day).funnel["joined"] == 1
        ingest_batch(ws.engine, [{"event_id": "j2", "type": "joined", "ts": "2026-03-02T11:00:00Z",
                                  "member_id": "m2", "channel": "ads"}])
        board = build_dashboard(ws, day, day, day)
        assert board.funnel["joined"] == board.total["cohort_size"] == 2
    finally:
        ws.close()


def test_the_default_period_and_today_follow_the_workspace_clock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The metrics' default as-of day and the page's "today" come from the workspace's clock (the demo's
    simulated one too), like every other service's day, not from the wall clock."""
    ws = init_workspace(tmp_path / "ws", timezone="Asia/Shanghai")
    try:
        ws.clock = lambda: datetime(2026, 3, 2, 17, 0)  # 01:00 on 3 March in Shanghai
        report = metrics_report(ws)
        assert (report["as_of"], report["to"], report["from"]) == ("2026-03-03", "2026-03-03", "2026-02-04")
        day = date(2026, 3, 3)
        assert build_dashboard(ws, day, day, day).today == day
    finally:
        ws.close()
