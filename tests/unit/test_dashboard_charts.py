"""The dashboard's funnel prints the metrics' own rates, never a stage over the stage above; sparklines
leave gaps for days without a value. Pure rendering, no I/O."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from qunflow.services.dashboard import Dashboard, previous_period, trend
from qunflow.web.charts import RateStage, rate_funnel_svg, sparkline_svg
from qunflow.web.dashboard_view import dashboard_view, funnel_stages


def board(total: dict[str, Any], funnel: dict[str, int]) -> Dashboard:
    day = date(2026, 3, 9)
    return Dashboard(date(2026, 3, 1), day, day, total, {}, [], [], [], [], funnel, 0, [], {}, day)


FUNNEL = {"landing_visitors": 3, "landing_joined": 1, "landing_in_progress": 1, "joined": 6, "unattributed": 4,
          "day1_task": 2, "day1_task_in_progress": 1, "converted": 1, "converted_in_progress": 4}


def test_funnel_rates_are_the_cards_and_unattributed_joins_have_no_rate() -> None:
    total = {"join_conversion": 0.5, "task_completion_d1": 0.4, "conversion_rate": None}
    stages = {s.key: s for s in funnel_stages(board(total, FUNNEL), "en")}
    assert (stages["landing_joined"].rate, stages["day1_task"].rate, stages["converted"].rate) == (
        "50.0%", "40.0%", "—")
    assert stages["joined"].rate == stages["unattributed"].rate == ""  # counts, never 6 / 3 = 200%
    svg = rate_funnel_svg(list(stages.values()), "Funnel")
    assert "200%" not in svg and re.search(r'data-stage="unattributed" data-count="4"', svg)


def test_a_stage_bar_never_runs_past_its_track() -> None:
    svg = rate_funnel_svg([RateStage("joined", "Joined", 6, base=3)], "Funnel")
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]
    assert widths[1] <= widths[0]


def test_sparkline_leaves_gaps_for_unknown_days() -> None:
    svg = sparkline_svg([0.1, 0.2, None, 0.3, 0.4, None, 0.5], "M9")
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 1
    assert "<polyline" not in sparkline_svg([None, None], "M5")


def test_previous_period_is_as_long_and_as_old() -> None:
    assert previous_period(date(2026, 3, 1), date(2026, 3, 28), date(2026, 3, 30)) == (
        date(2026, 2, 1), date(2026, 2, 28), date(2026, 3, 2))
    assert trend(0.5, 0.4, True) is not None and trend(10, None, False) is None


def test_the_report_has_no_drill_down_links_and_the_console_does() -> None:
    b = board({}, FUNNEL)
    b.groups.append({"key": "g1", "tier": "core", "members": 1, "capacity": 200, "room": 199, "status": "ok"})
    assert dashboard_view(b, "en")["groups"][0]["link"] == (
        "/console?from=2026-03-01&to=2026-03-09&as_of=2026-03-09&group=g1&lang=en")
    assert dashboard_view(b, "en", links=False)["groups"][0]["link"] is None
