"""DuckDB and embedded ClickHouse (chdb) give identical metrics on the same events."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from qunflow.domain.metrics import DIMENSIONS, METRIC_KEYS
from qunflow.services.metrics import metrics_report
from qunflow.workspace import Workspace, init_workspace
from tests.integration.test_metrics_exact import AS_OF, END, SCENARIO, SPEND, START, event_logs, load

chdb = pytest.importorskip("chdb", reason="the ClickHouse engine tests need chdb: pip install -e '.[test]'")


def twin_workspaces(base: Path) -> tuple[Workspace, Workspace]:
    duck = init_workspace(base / "duck")
    house = init_workspace(base / "house")
    house.settings.analytics_engine = "chdb"
    return duck, house


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


def test_hand_worked_scenario_is_identical_on_both_engines(tmp_path: Path) -> None:
    duck, house = twin_workspaces(tmp_path)
    for ws in (duck, house):
        load(ws, SCENARIO, SPEND)
    for by in DIMENSIONS:
        experiment = "welcome-copy" if by == "variant" else None
        assert_same_report(metrics_report(duck, start=START, end=END, as_of=AS_OF, by=by, experiment=experiment),
                           metrics_report(house, start=START, end=END, as_of=AS_OF, by=by, experiment=experiment))
    filtered = {"channel": "ads"}
    assert_same_report(metrics_report(duck, start=START, end=END, as_of=AS_OF, filters=filtered),
                       metrics_report(house, start=START, end=END, as_of=AS_OF, filters=filtered))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(logs=event_logs())
def test_random_logs_are_identical_on_both_engines(tmp_path_factory: pytest.TempPathFactory,
                                                   logs: list[dict[str, Any]]) -> None:
    duck, house = twin_workspaces(tmp_path_factory.mktemp("engines"))
    spend_rows = [("ads", date(2026, 3, 1), Decimal("300"))]
    for ws in (duck, house):
        for event in logs:
            load(ws, [event])
        load(ws, [], spend_rows)
    start = date(2026, 2, 28)
    for by in DIMENSIONS:
        args: dict[str, Any] = {"start": start, "end": start + timedelta(days=20),
                                "as_of": start + timedelta(days=45), "by": by,
                                "experiment": "exp" if by == "variant" else None}
        assert_same_report(metrics_report(duck, **args), metrics_report(house, **args))
