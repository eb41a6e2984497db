"""Several slicings of one period in one pass (services.metrics.metrics_reports, analytics/slicings.py) give each
slicing's own report, the very one `metrics_report` gives alone: on DuckDB from the facts and from the events,
on chdb and on a ClickHouse server, unfiltered and filtered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from qunflow.analytics.queries import COHORT, COHORT_FACTS, CURRENT, CURRENT_FACTS, LANDING
from qunflow.analytics.slicings import NotSliceable, render_sets
from qunflow.services.metrics import metrics_report, metrics_reports
from qunflow.workspace import Workspace, init_workspace
from tests.conftest import use_clickhouse
from tests.numbers_community import seed_community

BYS = ("channel", "group", "cohort_week", "tier", "cohort_day", "none")


@pytest.fixture(params=["duckdb-facts", "duckdb-events", "chdb", "clickhouse"])
def community(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Workspace, date]]:
    if request.param in ("chdb", "clickhouse"):
        pytest.importorskip("chdb", reason="the chdb engines need chdb: pip install -e '.[test]'")
    ws = init_workspace(tmp_path / "ws")
    if request.param == "clickhouse":
        use_clickhouse(ws, request.getfixturevalue("clickhouse_server").fresh_url())
    else:
        ws.settings.analytics_engine = request.param.split("-")[0]
    ws.settings.metrics_facts = request.param != "duckdb-events"
    today = seed_community(ws, tmp_path, range(-40, 1))
    yield ws, today
    ws.close()


def test_each_slicing_of_one_pass_is_its_own_report(community: tuple[Workspace, date]) -> None:
    ws, today = community
    start, end, as_of = today - timedelta(days=40), today - timedelta(days=3), today - timedelta(days=1)
    for filters in ({}, {"channel": "ads"}, {"group": "g1"}):
        together = metrics_reports(ws, start=start, end=end, as_of=as_of, bys=BYS, filters=filters,
                                   with_funnel=True)
        assert list(together) == list(BYS)
        for by in BYS:
            alone = metrics_report(ws, start=start, end=end, as_of=as_of, by=by, filters=filters, with_funnel=True)
            assert together[by] == alone, (filters, by)
        assert together["channel"]["rows"] and together["cohort_week"]["rows"], filters


def test_a_slicing_read_for_current_members_alone_has_their_values_and_the_whole_total(
        community: tuple[Workspace, date]) -> None:
    ws, today = community
    start, end, as_of = today - timedelta(days=40), today - timedelta(days=3), today - timedelta(days=1)
    m3 = ("current_members", "active_ratio_7d", "active_ratio_14d", "active_ratio_30d")
    for filters in ({}, {"channel": "ads"}):
        # Only slicings read for M3 (the metric queries other than M3's then read their total alone), or one
        # beside a full slicing (the dashboard's group table).
        for bys in (("group",), ("group", "tier"), ("channel", "group", "cohort_week")):
            together = metrics_reports(ws, start=start, end=end, as_of=as_of, bys=bys, filters=filters,
                                       with_funnel=True, current_only=("group", "tier"))
            for by in bys:
                alone = metrics_report(ws, start=start, end=end, as_of=as_of, by=by, filters=filters,
                                       with_funnel=True)
                if by in ("group", "tier"):
                    assert together[by]["rows"] == [{by: row[by], **{k: row[k] for k in m3}}
                                                    for row in alone["rows"] if row["current_members"]], \
                        (filters, bys, by)
                    alone["rows"] = together[by]["rows"]
                assert together[by] == alone, (filters, bys, by)
            assert together["group"]["rows"], (filters, bys)


@pytest.mark.parametrize("template", [COHORT, COHORT_FACTS, CURRENT, CURRENT_FACTS, LANDING])
def test_every_metric_template_widens_to_several_slicings(template: str) -> None:
    sql = render_sets(template, ("channel", "group", "cohort_week"))
    assert "GROUPING SETS ((" in sql and sql.count("AS is_total") == 3 and "dim2" in sql


def test_a_query_without_one_grouped_dim_is_not_sliceable() -> None:
    with pytest.raises(NotSliceable):
        render_sets("SELECT count(*) AS n FROM events", ("channel", "group"))
