"""Metric definitions (METRICS.md): the keys, the slices, and the rules for rates. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from qunflow.errors import InvalidInput

DIMENSIONS = ("none", "channel", "campaign", "entry_point", "group", "tier", "cohort_day", "cohort_week",
              "variant")
METRIC_KEYS = (
    "landing_visitors", "join_conversion", "cohort_size", "retention_d1", "retention_d7", "retention_d14",
    "retention_d30", "task_completion_d1", "current_members", "active_ratio_7d", "active_ratio_14d",
    "active_ratio_30d", "invites_per_member", "k_factor", "converted", "in_progress", "conversion_rate",
    "median_seconds_to_conversion", "revenue_per_member", "margin_per_member", "ltv_90_revenue", "ltv_90_margin",
    "spend", "cost_per_join", "cost_per_acquisition",
)
RETENTION_DAYS = (1, 7, 14, 30)
ACTIVE_WINDOWS = (7, 14, 30)
MAX_PERIOD_DAYS = 3660


@dataclass(frozen=True)
class Period:
    """A join cohort period [start, end] and the as-of day, all calendar days in the reporting zone."""

    start: date
    end: date
    as_of: date
    zone: ZoneInfo

    @property
    def cutoff(self) -> datetime:
        """End of the as-of day (exclusive) in UTC, naive: events with ts before it are known."""
        local = datetime.combine(self.as_of + timedelta(days=1), time(0), self.zone)
        return local.astimezone(UTC).replace(tzinfo=None)


def make_period(start: date | None, end: date | None, as_of: date | None, zone: ZoneInfo, today: date) -> Period:
    """Defaults: as of today; the 28 days ending on the as-of day."""
    as_of = as_of or today
    end = end or as_of
    start = start or end - timedelta(days=27)
    if start > end:
        raise InvalidInput(f"from ({start}) is after to ({end})", zh=f"开始日期 {start} 晚于结束日期 {end}")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise InvalidInput(f"a period spans at most {MAX_PERIOD_DAYS} days", zh=f"统计区间最长 {MAX_PERIOD_DAYS} 天")
    return Period(start, end, as_of, zone)


def check_dimension(by: str | None) -> str:
    by = by or "none"
    if by not in DIMENSIONS:
        raise InvalidInput(f"by must be one of {', '.join(DIMENSIONS)}; got {by!r}",
                           zh=f"by 须为以下之一:{', '.join(DIMENSIONS)};收到的是 {by!r}")
    return by


FILTERS = ("channel", "campaign", "entry_point", "group", "tier", "variant")


def check_filters(filters: Mapping[str, str | None] | None) -> dict[str, str]:
    """Keep the filters that are set; refuse unknown names and over-long values."""
    clean: dict[str, str] = {}
    for name, value in (filters or {}).items():
        if name not in FILTERS:
            raise InvalidInput(f"cannot filter by {name!r}; use {', '.join(FILTERS)}",
                               zh=f"不能按 {name!r} 筛选;可用:{', '.join(FILTERS)}")
        if value:
            if len(value) > 128:
                raise InvalidInput(f"filter {name} is longer than 128 characters",
                                   zh=f"筛选条件 {name} 超过 128 个字符")
            clean[name] = value
    return clean


def check_experiment(experiment: str | None, by: str, filters: Mapping[str, str]) -> str | None:
    """The experiment whose exposed members a report covers; `by=variant` and a variant filter need one."""
    experiment = experiment or None
    if experiment is None and (by == "variant" or "variant" in filters):
        raise InvalidInput("by=variant and the variant filter need an experiment (experiment=NAME)",
                           zh="按 variant 拆分或筛选需要指定实验(experiment=NAME)")
    if experiment is not None and len(experiment) > 128:
        raise InvalidInput("experiment is longer than 128 characters", zh="实验名超过 128 个字符")
    return experiment


def ratio(numerator: float | Decimal | int | None, denominator: float | Decimal | int | None) -> float | None:
    """A rate or an average; None (never 0, never infinite) when the denominator is empty."""
    if not denominator:
        return None
    return float(numerator or 0) / float(denominator)


def metrics_from_counts(c: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the sufficient statistics of one row into the contract's metric values."""

    def n(key: str) -> Any:
        return c.get(key) or 0

    out: dict[str, Any] = {
        "landing_visitors": int(n("landing_visitors")),
        "join_conversion": ratio(n("landing_joined"), n("landing_mature")),
        "cohort_size": int(n("cohort_size")),
    }
    for day in RETENTION_DAYS:
        out[f"retention_d{day}"] = ratio(n(f"retained_{day}"), n(f"eligible_{day}"))
    out["task_completion_d1"] = ratio(n("task_d1"), n("eligible_1"))
    out.update(current_from_counts(c))
    out["invites_per_member"] = ratio(n("invites_30"), n("mature_30"))
    out["k_factor"] = ratio(n("referred_30"), n("mature_30"))
    out["converted"] = int(n("converted"))
    out["in_progress"] = int(n("in_progress"))
    out["conversion_rate"] = ratio(n("converted_mature"), n("mature_30"))
    median = c.get("median_seconds")
    out["median_seconds_to_conversion"] = float(median) if median is not None else None
    out["revenue_per_member"] = ratio(n("revenue_30"), n("mature_30"))
    out["margin_per_member"] = ratio(n("margin_30"), n("mature_30"))
    out["ltv_90_revenue"] = ratio(n("revenue_90"), n("mature_90"))
    out["ltv_90_margin"] = ratio(n("margin_90"), n("mature_90"))
    spend = c.get("spend")
    out["spend"] = float(spend) if spend is not None else None
    out["cost_per_join"], out["cost_per_acquisition"] = costs(spend, n("cohort_size"), n("converted"))
    return out


def current_from_counts(c: Mapping[str, Any]) -> dict[str, Any]:
    """M3's values alone (current members, active ratios) from the statistics of one row."""
    current = c.get("current_members") or 0
    return {"current_members": int(current),
            **{f"active_ratio_{window}d": ratio(c.get(f"active_{window}"), current) for window in ACTIVE_WINDOWS}}


def costs(spend: float | Decimal | None, joins: int, converted: int) -> tuple[float | None, float | None]:
    """M8 cost per join and per acquisition: spend over joins and over conversions.

    Unknown spend (a slice that has none of its own) has no cost (None, shown "—"); spend without joins or
    conversions has none either (not infinite). A channel with no spend rows (an organic one) spent 0, so
    its costs are 0, as METRICS.md's division gives and ../shared/floor/'s reference suite reads it.
    """
    if spend is None:
        return None, None
    return ratio(spend, joins), ratio(spend, converted)


def funnel_from_counts(c: Mapping[str, Any]) -> dict[str, int]:
    """The funnel's stages as counts (METRICS.md's funnel view, with M1 before it):

    landing visitors -> joined within 7 days of their first view (M1's numerator); then the join
    cohort -> Day-1 task (M9's numerator) -> converted (M5). `unattributed` counts the cohort's joins
    without a channel: they are in the cohort, never in M1 (landings and joins are different people
    and periods, so joins are never divided by landings). `*_in_progress` are people whose window for
    that stage is still open (not dropped).
    """

    def n(key: str) -> int:
        return int(c.get(key) or 0)

    return {"landing_visitors": n("landing_visitors"), "landing_joined": n("landing_joined"),
            "landing_in_progress": n("landing_visitors") - n("landing_mature"),
            "joined": n("cohort_size"), "unattributed": n("unattributed"),
            "day1_task": n("task_d1"), "day1_task_in_progress": n("cohort_size") - n("eligible_1"),
            "converted": n("converted"), "converted_in_progress": n("in_progress")}
