"""M8 as of a day: spend, like events, counts only up to the as-of day; organic channels have no cost.

Issue 12: `metrics --as-of D` divided the whole period's spend by the joins known on D. Checked on
both state databases (SQLite, PostgreSQL: where spend is stored) and on every analytics engine
(DuckDB, chdb: where it is summed), and through the CLI's JSON.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.metrics import metrics_report
from qunflow.workspace import Workspace, init_workspace
from tests.integration.test_metrics_exact import ev, load

MARCH1, MARCH15, MARCH31 = date(2026, 3, 1), date(2026, 3, 15), date(2026, 3, 31)
# ads: 100 a day for all of March, imported up front (a plan, or a platform that bills ahead).
SPEND = [("ads", MARCH1 + timedelta(days=i), Decimal("100")) for i in range(31)]
SPEND += [("ads", date(2026, 2, 28), Decimal("999")), ("offline", date(2026, 3, 20), Decimal("500"))]
EVENTS = [
    ev("1", "joined", "2026-03-02T10:00:00+08:00", member_id="m1", channel="ads"),
    ev("2", "order", "2026-03-05T10:00:00+08:00", member_id="m1", amount=80),
    ev("3", "joined", "2026-03-10T10:00:00+08:00", member_id="m3", channel="content"),  # organic: no spend
    ev("4", "order", "2026-03-11T10:00:00+08:00", member_id="m3", amount=50),
    ev("5", "joined", "2026-03-20T10:00:00+08:00", member_id="m2", channel="ads"),
    ev("6", "order", "2026-03-21T10:00:00+08:00", member_id="m2", amount=30),
]


@pytest.fixture(params=["sqlite+duckdb", "postgres+duckdb", "sqlite+chdb"])
def engine_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite+chdb":
        pytest.importorskip("chdb", reason="the chdb engine needs chdb: pip install -e '.[test]'")
        ws = init_workspace(tmp_path / "chdb")
        ws.settings.analytics_engine = "chdb"
        yield ws
        ws.close()
        return
    yield request.getfixturevalue("workspace" if request.param.startswith("sqlite") else "pg_workspace")


def by_channel(ws: Workspace, as_of: date) -> dict[Any, dict[str, Any]]:
    report = metrics_report(ws, start=MARCH1, end=MARCH31, as_of=as_of, by="channel")
    return {row["channel"]: row for row in report["rows"]} | {"TOTAL": report["total"]}


def test_spend_after_the_as_of_day_does_not_count(engine_workspace: Workspace) -> None:
    load(engine_workspace, EVENTS, SPEND)
    mid = by_channel(engine_workspace, MARCH15)
    # As of 03-15: ads spent 15 x 100; one ads join (m1), converted. Not 3,100 / 1.
    assert (mid["ads"]["spend"], mid["ads"]["cost_per_join"], mid["ads"]["cost_per_acquisition"]) == (
        1500, 1500, 1500)
    # offline's spend falls on 03-20: nothing spent yet as of 03-15, so no row at all.
    assert "offline" not in mid
    # The total: 1,500 over the 2 joins (m1, m3) and the 2 converted known on 03-15.
    assert (mid["TOTAL"]["spend"], mid["TOTAL"]["cost_per_join"], mid["TOTAL"]["cost_per_acquisition"]) == (
        1500, 750, 750)
    end = by_channel(engine_workspace, MARCH31)
    assert (end["ads"]["spend"], end["ads"]["cost_per_join"], end["ads"]["cost_per_acquisition"]) == (
        3100, 1550, 1550)
    assert (end["TOTAL"]["spend"], end["TOTAL"]["cost_per_join"]) == (3600, 1200)
    # As of a day after the period: the period's spend, and no more (February's 999 never counts).
    assert by_channel(engine_workspace, date(2026, 4, 30))["ads"]["spend"] == 3100
    # As of a day before the period: nothing spent, no cost.
    before = by_channel(engine_workspace, date(2026, 2, 28))["TOTAL"]
    assert (before["spend"], before["cost_per_join"], before["cost_per_acquisition"]) == (0, None, None)
    # A channel filter follows the same rule.
    only_ads = metrics_report(engine_workspace, start=MARCH1, end=MARCH31, as_of=MARCH15,
                              filters={"channel": "ads"})["total"]
    assert (only_ads["spend"], only_ads["cost_per_join"]) == (1500, 1500)


def test_organic_channels_cost_zero(engine_workspace: Workspace) -> None:
    """A channel without spend rows spent 0: its costs are 0 (METRICS.md M8's division), not undefined."""
    load(engine_workspace, EVENTS, SPEND)
    content = by_channel(engine_workspace, MARCH31)["content"]
    assert (content["cohort_size"], content["converted"]) == (1, 1)
    assert (content["spend"], content["cost_per_join"], content["cost_per_acquisition"]) == (0, 0, 0)
    organic = metrics_report(engine_workspace, start=MARCH1, end=MARCH31, as_of=MARCH31,
                             filters={"channel": "content"})["total"]
    assert (organic["cost_per_join"], organic["cost_per_acquisition"]) == (0, 0)


def test_cli_metrics_as_of_mid_period_divides_only_the_spend_so_far(workspace: Workspace, tmp_path: Path) -> None:
    load(workspace, EVENTS)
    spend_csv = tmp_path / "spend.csv"
    spend_csv.write_text("channel,day,amount\n" + "".join(f"{c},{d},{a}\n" for c, d, a in SPEND))
    runner = CliRunner()
    assert runner.invoke(app, ["spend", "import", str(spend_csv), "--workspace", str(workspace.home)]).exit_code == 0
    result = runner.invoke(app, ["metrics", "--from", "2026-03-01", "--to", "2026-03-31", "--as-of", "2026-03-15",
                                 "--by", "channel", "--format", "json", "--workspace", str(workspace.home)])
    assert result.exit_code == 0, result.output
    rows = {row["channel"]: row for row in json.loads(result.stdout)["rows"]}
    assert (rows["ads"]["spend"], rows["ads"]["cost_per_join"], rows["ads"]["cost_per_acquisition"]) == (
        1500, 1500, 1500)
    assert (rows["content"]["cost_per_join"], rows["content"]["cost_per_acquisition"]) == (0, 0)
    table = runner.invoke(app, ["metrics", "--from", "2026-03-01", "--to", "2026-03-31", "--as-of", "2026-03-15",
                                "--by", "channel", "--workspace", str(workspace.home)])
    lines = table.stdout.splitlines()
    assert lines[next(i for i, line in enumerate(lines) if "CPA" in line) + 1].count("│") == 0  # the rule
    content_line = next(line for line in lines if "content" in line)
    assert content_line.split("│")[-2].strip() == "0.00"  # an organic channel's CPA: nothing spent per conversion
