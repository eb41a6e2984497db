"""`qunflow plan`: the seed's sum as a user types it, bad input, and the measured funnel from real events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.domain.plan import wilson
from qunflow.services.ingest import ingest_batch
from qunflow.workspace import Workspace

runner = CliRunner()
SEED = ["plan", "--joins-per-day", "200", "--task-rate", "0.4", "--order-rate", "0.1"]


def test_the_seed_example_as_json_has_exactly_the_contract_keys() -> None:
    result = runner.invoke(app, [*SEED, "--new-task-rate", "0.6", "--new-order-rate", "0.12", "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"baseline", "scenario", "change"}
    assert set(out["baseline"]) == set(out["scenario"]) == {"joins_per_day", "task_completers_per_day",
                                                            "orders_per_day"}
    assert set(out["change"]) == {"orders_per_day", "relative"}
    assert out["baseline"]["orders_per_day"] == 8.0 and out["scenario"]["orders_per_day"] == 14.4
    assert '"orders_per_day": 14.4' in result.stdout and '"orders_per_day": 8.0' in result.stdout
    assert out["change"] == {"orders_per_day": 6.4, "relative": 0.8}
    table = runner.invoke(app, [*SEED, "--new-task-rate", "0.6", "--new-order-rate", "0.12"]).stdout
    assert "14.4" in table and "+80.0%" in table


def test_other_numbers_and_a_scenario_that_keeps_the_baseline() -> None:
    result = runner.invoke(app, ["plan", "--joins-per-day", "350", "--task-rate", "0.35", "--order-rate", "0.07",
                                 "--new-joins-per-day", "500", "--format", "json"])
    out = json.loads(result.stdout)
    assert out["baseline"]["orders_per_day"] == 8.575 and out["scenario"]["orders_per_day"] == 12.25
    assert out["scenario"]["task_completers_per_day"] == 175.0


def test_bad_input_is_one_line_and_exit_2() -> None:
    for args, words in (([*SEED[:-1], "1.5"], "--order-rate must be a rate between 0 and 1"),
                        (["plan", "--joins-per-day", "-5", "--task-rate", "0.4", "--order-rate", "0.1"],
                         "--joins-per-day must not be negative"),
                        ([*SEED, "--new-task-rate", "-0.2"], "--new-task-rate must be a rate"),
                        (["plan", "--joins-per-day", "200"], "give --task-rate, --order-rate"),
                        ([*SEED, "--format", "xml"], "--format must be one of")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and words in result.stderr, (args, result.stderr)


def cohort(n: int, tasks: int, orders: int, start: datetime, channel: str, prefix: str) -> list[dict]:  # type: ignore[type-arg]
    """n joins spread over 20 days; the first `tasks` do the Day-1 task, the first `orders` order on day 3."""
    events = []
    for i in range(n):
        joined = start + timedelta(days=i % 20, hours=1)
        member = f"{prefix}{i}"
        events.append({"event_id": f"{member}-j", "type": "joined", "ts": joined.isoformat() + "Z",
                       "member_id": member, "channel": channel})
        if i < tasks:
            events.append({"event_id": f"{member}-t", "type": "task_completed",
                           "ts": (joined + timedelta(hours=2)).isoformat() + "Z", "member_id": member})
        if i < orders:
            events.append({"event_id": f"{member}-o", "type": "order",
                           "ts": (joined + timedelta(days=3)).isoformat() + "Z", "member_id": member, "amount": 30})
    return events


def test_from_data_measures_the_stages_with_intervals_and_sample_sizes(workspace: Workspace) -> None:
    start = datetime(2026, 3, 10)
    result = ingest_batch(workspace.engine, cohort(200, 80, 20, start, "ads", "a")
                          + cohort(100, 30, 2, start, "expo", "x"))
    assert not result.errors
    args = ["plan", "--from-data", "--as-of", "2026-04-30", "--format", "json", "--workspace", str(workspace.home)]
    out = json.loads(runner.invoke(app, args).stdout)
    m = out["measured"]
    assert out["from"] == "2026-03-06" and m["joins_per_day"]["n"] == 300 and m["joins_per_day"]["days"] == 56
    assert m["task_rate"]["value"] == 110 / 300 and m["task_rate"]["n"] == 300
    assert (m["task_rate"]["ci_low"], m["task_rate"]["ci_high"]) == wilson(110, 300)
    assert m["conversion_rate"]["value"] == 22 / 300 and m["conversion_rate"]["successes"] == 22
    orders = m["orders_per_day"]
    assert orders["value"] == pytest.approx(300 / 56 * 22 / 300, rel=1e-12)  # joins x M9 x (M5 / M9) = joins x M5
    assert orders["ci_low"] < orders["value"] < orders["ci_high"]
    ads = json.loads(runner.invoke(app, [*args, "--channel", "ads"]).stdout)["measured"]
    assert ads["task_rate"]["value"] == 0.4 and ads["order_rate"]["value"] == 0.25
    what_if = json.loads(runner.invoke(app, [*args, "--channel", "ads", "--new-task-rate", "0.6"]).stdout)
    assert what_if["what_if"]["orders_per_day"]["value"] == pytest.approx(200 / 56 * 0.6 * 0.25, rel=1e-12)
    table = runner.invoke(app, args[:-4] + ["--workspace", str(workspace.home), "--as-of", "2026-04-30"]).stdout
    assert "110 of 300" in table and "orders/day" in table
    both = runner.invoke(app, [*args, "--channel", "ads", "--entry-point", "e1"])
    assert both.exit_code == 2 and "not both" in both.stderr
    mixed = runner.invoke(app, [*args, "--task-rate", "0.5"])
    assert mixed.exit_code == 2 and "--new-task-rate" in mixed.stderr


def test_from_data_on_postgresql(pg_workspace: Workspace) -> None:
    assert not ingest_batch(pg_workspace.engine, cohort(100, 50, 10, datetime(2026, 3, 10), "ads", "p")).errors
    args = ["plan", "--from-data", "--as-of", "2026-04-30", "--format", "json", "--workspace", str(pg_workspace.home)]
    m = json.loads(runner.invoke(app, args).stdout)["measured"]
    assert (m["task_rate"]["successes"], m["task_rate"]["n"]) == (50, 100)
    assert (m["conversion_rate"]["successes"], m["conversion_rate"]["n"]) == (10, 100)
