"""The planner's pure math: the seed's sum exactly, Wilson intervals, orders/day's interval."""

from __future__ import annotations

from decimal import Decimal

import pytest

from qunflow.domain.plan import Funnel, Measured, measured_plan, number, plan, simulate_orders, wilson
from qunflow.errors import InvalidInput


def funnel(joins: str, task: str, order: str) -> Funnel:
    return Funnel(Decimal(joins), Decimal(task), Decimal(order))


def test_the_seed_example_gives_8_and_14_4_exactly() -> None:
    result = plan(funnel("200", "0.4", "0.1"), task_rate=Decimal("0.6"), order_rate=Decimal("0.12"))
    assert result["baseline"] == {"joins_per_day": 200.0, "task_completers_per_day": 80.0, "orders_per_day": 8.0}
    assert result["scenario"] == {"joins_per_day": 200.0, "task_completers_per_day": 120.0, "orders_per_day": 14.4}
    assert result["change"] == {"orders_per_day": 6.4, "relative": 0.8}
    assert 200 * 0.6 * 0.12 != 14.4  # what binary floats would have printed (14.399999999999999)


def test_options_not_given_keep_the_baseline_and_a_zero_baseline_has_no_relative_change() -> None:
    result = plan(funnel("150", "0.5", "0"), joins_per_day=Decimal("300"))
    assert result["scenario"] == {"joins_per_day": 300.0, "task_completers_per_day": 150.0, "orders_per_day": 0.0}
    assert result["change"] == {"orders_per_day": 0.0, "relative": None}


@pytest.mark.parametrize(("text", "rate"), [("1.01", True), ("-0.1", True), ("-1", False), ("nan", False),
                                            ("abc", True), ("inf", False)])
def test_out_of_range_numbers_are_refused(text: str, rate: bool) -> None:
    with pytest.raises(InvalidInput):
        number(text, "--x", rate=rate)


def test_wilson_matches_known_values() -> None:
    # statsmodels.stats.proportion.proportion_confint(40, 100, method="wilson")
    low, high = wilson(40, 100)
    assert low == pytest.approx(0.3094013, abs=1e-6) and high == pytest.approx(0.4979974, abs=1e-6)
    low, high = wilson(0, 10)  # (0.0, 0.2775328)
    assert low == 0.0 and high == pytest.approx(0.2775328, abs=1e-6)
    assert wilson(0, 0) == (None, None)


def test_measured_plan_has_rates_intervals_and_sample_sizes() -> None:
    m = Measured(days=50, joined=10_000, task_eligible=10_000, task_done=4_000, mature=10_000, converted=400)
    out = measured_plan(m)
    assert out["joins_per_day"]["value"] == 200 and out["task_rate"]["value"] == 0.4
    assert out["order_rate"]["value"] == pytest.approx(0.1)
    orders = out["orders_per_day"]
    assert orders["value"] == pytest.approx(8.0)
    # joins ~ Poisson(10000) -> 1% sd; conversion 400/10000 -> 4.9% sd; together ~5% sd: 8 +- ~0.8
    assert 7.0 < orders["ci_low"] < 7.4 and 8.6 < orders["ci_high"] < 9.0
    assert out["task_rate"]["n"] == 10_000 and out["conversion_rate"]["successes"] == 400


def test_a_typed_rate_replaces_its_stage_and_narrows_nothing_else() -> None:
    m = Measured(days=10, joined=2_000, task_eligible=2_000, task_done=800, mature=2_000, converted=80)
    what_if = measured_plan(m, task_rate=0.6)
    assert what_if["task_rate"]["value"] == 0.6 and what_if["task_rate"]["typed"] is True
    assert what_if["orders_per_day"]["value"] == pytest.approx(200 * 0.6 * 0.1)
    low, high = what_if["orders_per_day"]["ci_low"], what_if["orders_per_day"]["ci_high"]
    assert low < 12 < high
    assert simulate_orders(m, joins_per_day=100, task_rate=0.5, order_rate=0.2) == (10.0, 10.0)


def test_no_data_gives_nulls_not_zeros() -> None:
    out = measured_plan(Measured(days=56, joined=0, task_eligible=0, task_done=0, mature=0, converted=0))
    assert out["task_rate"]["value"] is None and out["orders_per_day"] == {"value": None, "ci_low": None,
                                                                            "ci_high": None}
