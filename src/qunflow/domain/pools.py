"""Pools (issue 13): a stored set of members who entered by a rule, with a repeat-order metric. No I/O.

A pool is fed by one segment rule: a member tag (S4 buyers get `repurchase_pool`) or an engagement level.
Its metric: of the members who entered in a week (Monday-based, workspace zone) and whose window of
`days` days after entering has closed by the end of the as-of day, the share with an order (a conversion
event) in that window; those whose window is still open are counted as in progress (METRICS.md
"Maturity"), and an empty denominator gives null, never 0.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

REPURCHASE = "repurchase"


class PoolRule(BaseModel):
    """`[qunflow.pools.<name>]` in qunflow.toml: one of tag or level, and the metric's window in days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str | None = Field(default=None, min_length=1, max_length=64)
    level: Literal["new", "active", "core", "slipping", "dormant"] | None = None
    days: int = Field(default=30, ge=1, le=365)

    @model_validator(mode="after")
    def _one_rule(self) -> PoolRule:
        if (self.tag is None) == (self.level is None):
            raise ValueError("a pool is fed by exactly one of tag or level")
        return self


def default_pools() -> dict[str, PoolRule]:
    """The S4 repurchase pool: buyers of an event, tagged by the s4_event_attendee playbook."""
    return {REPURCHASE: PoolRule(tag="repurchase_pool", days=30)}


def repeat_rate(repeated: int, mature: int) -> float | None:
    return None if mature == 0 else repeated / mature




def weekly_repeat(rows: list[tuple[datetime, datetime | None]], days: int, cutoff: datetime,
                  zone: ZoneInfo) -> list[dict[str, Any]]:
    """Per entry week: entered, in_progress, mature, repeated, rate. `rows` = (entered_at, first order after
    it or None), naive UTC; `cutoff` = the end of the as-of day (exclusive), naive UTC."""
    window = timedelta(days=days)
    weeks: dict[date, dict[str, Any]] = {}
    for entered, first_order in rows:
        day = entered.replace(tzinfo=UTC).astimezone(zone).date()
        week = weeks.setdefault(day - timedelta(days=day.weekday()),
                                {"entered": 0, "in_progress": 0, "mature": 0, "repeated": 0})
        week["entered"] += 1
        if entered + window > cutoff:
            week["in_progress"] += 1
            continue
        week["mature"] += 1
        if first_order is not None and first_order - entered < window:
            week["repeated"] += 1
    return [{"week": week, **counts, "rate": repeat_rate(counts["repeated"], counts["mature"])}
            for week, counts in sorted(weeks.items())]


__all__ = ["REPURCHASE", "PoolRule", "default_pools", "repeat_rate", "weekly_repeat"]
