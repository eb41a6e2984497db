"""DuckDB, embedded ClickHouse (chdb) and a ClickHouse server give identical metrics on the same events."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from qunflow.domain.metrics import DIMENSIONS, METRIC_KEYS
from qunflow.services.metrics import metrics_report
from qunflow.workspace import Workspace, init_workspace
from tests.clickhouse_http import ClickHouseHTTPServer
from tests.conftest import use_clickhouse
from tests.emptied import empty
from tests.examples import examples
from tests.integration.test_metrics_exact import AS_OF, END, SCENARIO, SPEND, START, event_logs, load

chdb = pytest.importorskip("chdb", reason="the ClickHouse engine tests need chdb: pip install -e '.[test]'")
ENGINES = ("duckdb", "chdb", "clickhouse")
FILTERS: list[dict[str, str]] = [{"channel": "ads"}, {"campaign": "none-such"}, {"entry_point": "e1"},
                                 {"group": "g1"}, {"tier": "core"}, {"channel": "ads", "group": "g2"}]


def workspaces(base: Path, server: ClickHouseHTTPServer) -> list[Workspace]:
    """One workspace per engine: DuckDB, chdb, and a database of its own on the ClickHouse server."""
    out = []
    for name in ENGINES:
        ws = init_workspace(base / name)
        ws.settings.analytics_engine = name
        out.append(use_clickhouse(ws, server.fresh_url()) if name == "clickhouse" else ws)
    return out


def assert_all_agree(wss: list[Workspace], **args: Any) -> None:
    reports = [metrics_report(ws, **args) for ws in wss]
    for report in reports[1:]:
        assert_same_report(reports[0], report)


def assert_same_report(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert (a["from"], a["to"], a["as_of"], a["by"]) == (b["from"], b["to"], b["as_of"], b["by"])
    rows_a = {r[a["by"]]: r for r in a["rows"]} | {"__total__": a["total"]}
    rows_b = {r[b["by"]]: r for r in b["rows"]} | {"__total__": b["total"]}
    assert set(rows_a) == set(rows_b), a["by"]
    for key, row in rows_a.items():
        for metric in METRIC_KEYS:
            x, y = row[metric], rows_b[key][metric]
            same = x is y if x is None or y is None else math.isclose(float(x), float(y), rel_tol=1e-12)
            assert same, (a["by"], key, metric, x, y)


def test_hand_worked_scenario_is_identical_on_every_engine(tmp_path: Path,
                                                          clickhouse_server: ClickHouseHTTPServer) -> None:
    wss = workspaces(tmp_path, clickhouse_server)
    for ws in wss:
        load(ws, SCENARIO, SPEND)
    for by in DIMENSIONS:
        assert_all_agree(wss, start=START, end=END, as_of=AS_OF, by=by,
                         experiment="welcome-copy" if by == "variant" else None)
    for filters in FILTERS:
        for by in ("none", "channel", "group"):
            assert_all_agree(wss, start=START, end=END, as_of=AS_OF, by=by, filters=filters)


@pytest.fixture(scope="module")
def emptied_workspaces(tmp_path_factory: pytest.TempPathFactory,
                       clickhouse_server: ClickHouseHTTPServer) -> Iterator[list[Workspace]]:
    """One workspace per engine for every example, emptied before each (tests/emptied.py)."""
    wss = workspaces(tmp_path_factory.mktemp("engines"), clickhouse_server)
    yield wss
    for ws in wss:
        ws.close()


@pytest.mark.long
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(logs=event_logs())
def test_random_logs_are_identical_on_every_engine(emptied_workspaces: list[Workspace],
                                                   logs: list[dict[str, Any]]) -> None:
    wss = emptied_workspaces
    spend_rows = [("ads", date(2026, 3, 1), Decimal("300"))]
    for ws in wss:
        empty(ws)
        for event in logs:
            load(ws, [event])
        load(ws, [], spend_rows)
    start = date(2026, 2, 28)
    for by in DIMENSIONS:
        args: dict[str, Any] = {"start": start, "end": start + timedelta(days=20),
                                "as_of": start + timedelta(days=45), "by": by,
                                "experiment": "exp" if by == "variant" else None}
        assert_all_agree(wss, **args)
    assert_all_agree(wss, start=start, end=start + timedelta(days=20), as_of=start + timedelta(days=45),
                     filters={"channel": "ads", "entry_point": "e1"})
