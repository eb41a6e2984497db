"""The planner from the team's own data: the measured M9 and M5 stages of a period's join cohort."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from qunflow.domain.plan import Measured, measured_plan
from qunflow.errors import InvalidInput
from qunflow.services.metrics import cohort_statistics
from qunflow.workspace import Workspace

PLAN_DAYS = 56  # joins of the last 8 weeks (as the dashboard): enough of them are 30 days in for M5


def measured(ws: Workspace, *, channel: str | None = None, entry_point: str | None = None,
             as_of: date | None = None, ship_first: bool = True) -> tuple[Measured, dict[str, Any]]:
    """The statistics behind the plan, and the period and slice they cover."""
    if channel and entry_point:
        raise InvalidInput("give --channel or --entry-point, not both", zh="--channel 和 --entry-point 只能给一个")
    as_of = as_of or ws.local_today()
    start = as_of - timedelta(days=PLAN_DAYS - 1)
    filters = {key: value for key, value in (("channel", channel), ("entry_point", entry_point)) if value}
    counts = cohort_statistics(ws, start=start, end=as_of, as_of=as_of, filters=filters, ship_first=ship_first)

    def n(key: str) -> int:
        return int(counts.get(key) or 0)

    stats = Measured(days=PLAN_DAYS, joined=n("cohort_size"), task_eligible=n("eligible_1"), task_done=n("task_d1"),
                     mature=n("mature_30"), converted=n("converted_mature"))
    return stats, {"from": start.isoformat(), "to": as_of.isoformat(), "as_of": as_of.isoformat(),
                   "filters": filters}


def plan_from_data(ws: Workspace, *, channel: str | None = None, entry_point: str | None = None,
                   as_of: date | None = None, joins_per_day: float | None = None, task_rate: float | None = None,
                   order_rate: float | None = None, ship_first: bool = True) -> dict[str, Any]:
    """{"from", "to", "as_of", "filters", "measured": {...}, "what_if": {...} (only with a typed value)}."""
    stats, scope = measured(ws, channel=channel, entry_point=entry_point, as_of=as_of, ship_first=ship_first)
    out: dict[str, Any] = {**scope, "measured": measured_plan(stats)}
    if (joins_per_day, task_rate, order_rate) != (None, None, None):
        out["what_if"] = measured_plan(stats, joins_per_day=joins_per_day, task_rate=task_rate,
                                       order_rate=order_rate)
    return out
