"""Engagement levels (issue 13): what a member's recent activity says about them. No I/O.

Activity is the workspace's engagement events (METRICS.md "Engagement events"). For an as-of day D,
in the workspace's time zone:

- `recent` = the member's engagement events in the `recent_days` days ending on D (default 7),
- `long`   = the same over the `long_days` days ending on D (default 30; it includes the recent ones),
- `score`  = `recent_weight` x recent + long (default weight 3: this week counts four times),
- `tenure` = D - the member's join day, in days.

The level is the first of these that holds:

| level      | when                                                             |
|------------|------------------------------------------------------------------|
| `new`      | tenure < `new_days` (default 7): still in their first week         |
| `core`     | active in the recent window and score >= `core_score` (default 15) |
| `active`   | at least one engagement event in the recent window                 |
| `slipping` | none in the recent window, but some in the long window, or joined  |
|            | less than `long_days` ago and never active since                  |
| `dormant`  | none in the long window (and joined at least `long_days` ago)      |

services/levels.py computes the same in one SQL statement for every member; tests/unit/test_engagement.py
and tests/integration/test_levels.py hold the two to each other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

LEVELS = ("new", "active", "core", "slipping", "dormant")


class LevelRules(BaseModel):
    """The thresholds, from `[qunflow.levels]` in qunflow.toml (docs/levels.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recent_days: int = Field(default=7, ge=1, le=90)
    long_days: int = Field(default=30, ge=2, le=365)
    recent_weight: int = Field(default=3, ge=0, le=100)
    new_days: int = Field(default=7, ge=0, le=365)
    core_score: int = Field(default=15, ge=1, le=100_000)

    @model_validator(mode="after")
    def _windows(self) -> LevelRules:
        if self.long_days <= self.recent_days:
            raise ValueError(f"long_days ({self.long_days}) must be more than recent_days ({self.recent_days})")
        return self


def engagement_score(recent: int, long: int, rules: LevelRules) -> int:
    """Frequency with recency: events this week weigh `recent_weight` times more (long includes recent)."""
    return rules.recent_weight * recent + long


def engagement_level(tenure_days: int, recent: int, long: int, rules: LevelRules) -> str:
    """The level for a member `tenure_days` after their join day with these event counts (see the table)."""
    if tenure_days < rules.new_days:
        return "new"
    if recent > 0:
        return "core" if engagement_score(recent, long, rules) >= rules.core_score else "active"
    if long > 0 or tenure_days < rules.long_days:
        return "slipping"
    return "dormant"


__all__ = ["LEVELS", "LevelRules", "engagement_level", "engagement_score"]
