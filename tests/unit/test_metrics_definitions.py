"""The pure metric rules (domain.metrics): periods, cut-offs, slices and the null rules. No I/O."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.metrics import (
    DIMENSIONS,
    METRIC_KEYS,
    check_dimension,
    check_filters,
    make_period,
    metrics_from_counts,
    ratio,
)
from qunflow.errors import InvalidInput

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTRACT_KEYS = [
    "landing_visitors", "join_conversion", "cohort_size", "retention_d1", "retention_d7", "retention_d14",
    "retention_d30", "task_completion_d1", "current_members", "active_ratio_7d", "active_ratio_14d",
    "active_ratio_30d", "invites_per_member", "k_factor", "converted", "in_progress", "conversion_rate",
    "median_seconds_to_conversion", "revenue_per_member", "margin_per_member", "ltv_90_revenue",
    "ltv_90_margin", "spend", "cost_per_join", "cost_per_acquisition",
]


def test_metric_keys_are_exactly_the_contract_of_issue_3() -> None:
    assert list(METRIC_KEYS) == CONTRACT_KEYS
    assert set(DIMENSIONS) == {"none", "channel", "campaign", "entry_point", "group", "tier", "cohort_day",
                               "cohort_week", "variant"}


def test_the_as_of_cutoff_is_local_midnight_after_the_as_of_day_in_utc() -> None:
    period = make_period(date(2026, 3, 1), date(2026, 3, 31), date(2026, 3, 31), SHANGHAI, date(2026, 6, 1))
    # 2026-04-01 00:00 in Shanghai (UTC+8) is 2026-03-31 16:00 UTC.
    assert period.cutoff == datetime(2026, 3, 31, 16, 0)


def test_the_cutoff_follows_daylight_saving_time() -> None:
    zone = ZoneInfo("America/New_York")
    # New York springs forward on 2026-03-08: midnight after 03-07 is EST (-5), after 03-08 EDT (-4).
    assert make_period(None, None, date(2026, 3, 7), zone, date(2026, 3, 7)).cutoff == datetime(2026, 3, 8, 5)
    assert make_period(None, None, date(2026, 3, 8), zone, date(2026, 3, 8)).cutoff == datetime(2026, 3, 9, 4)


def test_default_period_is_the_28_days_up_to_the_as_of_day_which_defaults_to_today() -> None:
    period = make_period(None, None, None, SHANGHAI, date(2026, 5, 28))
    assert (period.start, period.end) == (date(2026, 5, 1), date(2026, 5, 28))
    assert period.as_of == date(2026, 5, 28)
    period = make_period(None, None, date(2026, 2, 28), SHANGHAI, date(2026, 5, 28))
    assert (period.start, period.end) == (date(2026, 2, 1), date(2026, 2, 28))


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInput, match="after"):
        make_period(date(2026, 3, 2), date(2026, 3, 1), None, SHANGHAI, date(2026, 3, 5))


def test_an_as_of_day_before_the_period_end_is_allowed() -> None:
    # Decision (docs/metrics.md): events after the as-of day are unknown; young members are in progress.
    period = make_period(date(2026, 3, 1), date(2026, 3, 31), date(2026, 3, 10), SHANGHAI, date(2026, 5, 1))
    assert period.as_of == date(2026, 3, 10)


@pytest.mark.parametrize("by", [None, "", "none"])
def test_no_dimension_means_totals_only(by: str | None) -> None:
    assert check_dimension(by) == "none"


@pytest.mark.parametrize("by", ["city", "Channel", "variant ", "cohort_month"])
def test_unknown_dimensions_are_refused_with_the_list(by: str) -> None:
    with pytest.raises(InvalidInput, match="by must be one of none, channel"):
        check_dimension(by)


def test_filters_keep_set_values_and_refuse_unknown_names() -> None:
    assert check_filters({"channel": "ads", "tier": None, "group": ""}) == {"channel": "ads"}
    with pytest.raises(InvalidInput, match="cannot filter by 'city'"):
        check_filters({"city": "x"})
    with pytest.raises(InvalidInput, match="longer than 128"):
        check_filters({"campaign": "x" * 129})


def test_a_rate_over_an_empty_denominator_is_null_never_zero_or_infinite() -> None:
    assert ratio(0, 0) is None
    assert ratio(5, 0) is None
    assert ratio(5, None) is None
    assert ratio(0, 4) == 0.0
    assert ratio(Decimal("1.5"), 3) == 0.5


@given(num=st.integers(0, 10**6), den=st.integers(1, 10**6))
def test_a_rate_is_the_plain_quotient(num: int, den: int) -> None:
    assert ratio(num, den) == num / den


def test_empty_counts_give_zero_counts_and_null_rates() -> None:
    values = metrics_from_counts({})
    assert list(values) == CONTRACT_KEYS
    counts = ("landing_visitors", "cohort_size", "current_members", "converted", "in_progress")
    assert all(values[key] == 0 for key in counts)
    assert all(values[key] is None for key in CONTRACT_KEYS if key not in counts)


def test_maturity_counts_set_the_denominators() -> None:
    values = metrics_from_counts({
        "cohort_size": 10, "eligible_1": 8, "retained_1": 2, "eligible_7": 0, "retained_7": 0,
        "task_d1": 4, "converted": 3, "in_progress": 5, "mature_30": 2, "converted_mature": 1,
        "median_seconds": 60.0, "revenue_30": Decimal("30"), "margin_30": Decimal("10"),
        "landing_visitors": 9, "landing_mature": 4, "landing_joined": 1, "spend": Decimal("600"),
    })
    assert (values["retention_d1"], values["retention_d7"], values["task_completion_d1"]) == (0.25, None, 0.5)
    assert values["conversion_rate"] == 0.5
    assert (values["revenue_per_member"], values["margin_per_member"]) == (15, 5)
    assert (values["landing_visitors"], values["join_conversion"]) == (9, 0.25)
    assert (values["spend"], values["cost_per_join"], values["cost_per_acquisition"]) == (600, 60, 200)
    assert values["median_seconds_to_conversion"] == 60.0


def test_spend_without_joins_shows_the_spend_and_undefined_costs() -> None:
    values = metrics_from_counts({"spend": Decimal("250")})
    assert (values["spend"], values["cost_per_join"], values["cost_per_acquisition"]) == (250, None, None)


def test_joins_without_conversions_have_a_cost_per_join_but_no_cost_per_acquisition() -> None:
    values = metrics_from_counts({"spend": Decimal("100"), "cohort_size": 4})
    assert (values["cost_per_join"], values["cost_per_acquisition"]) == (25, None)


def test_unknown_spend_leaves_every_cost_null() -> None:
    values = metrics_from_counts({"spend": None, "cohort_size": 4, "converted": 2})
    assert (values["spend"], values["cost_per_join"], values["cost_per_acquisition"]) == (None, None, None)


def test_an_organic_channel_spent_nothing_so_its_costs_are_zero() -> None:
    """An organic channel (spend 0) with joins and conversions: 0 / 4 and 0 / 2, as METRICS.md M8 divides (and
    ../shared/floor/'s reference suite reads it), not undefined."""
    values = metrics_from_counts({"spend": Decimal("0"), "cohort_size": 4, "converted": 2})
    assert (values["spend"], values["cost_per_join"], values["cost_per_acquisition"]) == (0, 0, 0)
    assert metrics_from_counts({"spend": Decimal("0"), "cohort_size": 4})["cost_per_acquisition"] is None
