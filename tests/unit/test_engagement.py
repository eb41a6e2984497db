"""The engagement level rules (domain/engagement.py): the table in its docstring, edge by edge."""

from __future__ import annotations

import pytest

from qunflow.domain.engagement import LevelRules, engagement_level, engagement_score

RULES = LevelRules()


@pytest.mark.parametrize(("tenure", "recent", "long", "level"), [
    (0, 0, 0, "new"), (6, 20, 40, "new"),          # the first week is new, however busy
    (7, 5, 5, "core"), (7, 4, 3, "core"),           # 3 x 4 + 3 = 15: the core score exactly
    (7, 3, 5, "active"), (40, 1, 1, "active"),      # 3 x 3 + 5 = 14: one short
    (40, 0, 1, "slipping"), (29, 0, 0, "slipping"),  # quiet this week; or never active, joined < 30 days ago
    (30, 0, 0, "dormant"), (400, 0, 0, "dormant"),
])
def test_levels(tenure: int, recent: int, long: int, level: str) -> None:
    assert engagement_level(tenure, recent, long, RULES) == level


def test_score_weighs_the_recent_window() -> None:
    assert engagement_score(2, 10, RULES) == 16
    assert engagement_score(2, 10, LevelRules(recent_weight=0)) == 10


def test_new_days_zero_means_no_new_level() -> None:
    assert engagement_level(0, 0, 0, LevelRules(new_days=0)) == "slipping"


def test_windows_must_nest() -> None:
    with pytest.raises(ValueError, match="long_days"):
        LevelRules(recent_days=30, long_days=14)
