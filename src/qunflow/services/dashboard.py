"""What the console's front page shows: KPIs with trend, funnel, retention by cohort, channels, groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from qunflow.analytics.shipper import analytics
from qunflow.domain.entry import TIERS
from qunflow.domain.identity import UNATTRIBUTED_PREFIX
from qunflow.domain.routing import room_by_tier
from qunflow.services.at_risk import level_counts
from qunflow.services.catalog import group_slots, list_groups
from qunflow.services.metrics import daily_trend, metrics_report, metrics_reports
from qunflow.store.tables import campaigns, channels, deliveries, events, groups
from qunflow.workspace import Workspace

KPI_KEYS = ("landing_visitors", "join_conversion", "cohort_size", "retention_d1", "retention_d7",
            "task_completion_d1", "conversion_rate", "active_ratio_7d", "k_factor", "revenue_per_member",
            "ltv_90_revenue", "cost_per_acquisition")
PERCENT_KEYS = frozenset({"join_conversion", "retention_d1", "retention_d7", "retention_d14", "retention_d30",
                          "task_completion_d1", "conversion_rate", "active_ratio_7d", "active_ratio_14d",
                          "active_ratio_30d"})
RETENTION_KEYS = ("retention_d1", "retention_d7", "retention_d14", "retention_d30")


@dataclass(frozen=True)
class Dashboard:
    start: date
    end: date
    as_of: date
    total: dict[str, Any]
    previous: dict[str, Any]
    channels: list[dict[str, Any]]
    cohorts: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    full_tiers: list[str]
    funnel: dict[str, int]
    failed_sends: int  # messages not delivered yet: waiting out the platform's limit, or dead letters
    daily: list[dict[str, Any]] = field(default_factory=list)  # services.metrics.daily_trend
    filters: dict[str, str] = field(default_factory=dict)
    today: date | None = None  # in the reporting zone, when the board was made
    levels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # services.at_risk.level_counts
    unattributed_events: int = 0  # events in the period that named no member (docs/members.md)


DEFAULT_WEEKS = 8  # long enough for cohorts that are 30 days in (M5, D30) to show


def default_period(today: date) -> tuple[date, date, date]:
    """Joins of the last 8 weeks, as of today in the reporting zone (as `qunflow metrics` counts)."""
    return today - timedelta(days=DEFAULT_WEEKS * 7 - 1), today, today


def previous_period(start: date, end: date, as_of: date) -> tuple[date, date, date]:
    """The period of equal length just before, seen as of the same distance from its end: like is
    compared with like (cohorts as mature as the current ones, M3 one period earlier)."""
    span = timedelta(days=(end - start).days + 1)
    return start - span, start - timedelta(days=1), as_of - span


def build_dashboard(ws: Workspace, start: date, end: date, as_of: date,
                    filters: dict[str, str] | None = None, history_start: date | None = None) -> Dashboard:
    """Everything the front page shows; the retention heatmap may reach back to `history_start`.

    Ships once, then reads on that one analytics connection: the period by channel, group and cohort week in one
    pass (metrics_reports; by group M3 alone, for the groups' active ratio), the previous period and the daily
    trend; the funnel comes from the by-channel report's own totals, the very numbers of the cards. The previous
    period's as-of day is in the past, which the member and landing facts do not answer: its M3 comes from the
    member days (exact for any day, services.metrics), the rest from the events (M1 too: a visitor linked to a
    member after that day is another person as of then).
    """
    f = filters or {}
    cohort_start = min(history_start or start, start)
    together = ("channel", "group") if cohort_start < start else ("channel", "group", "cohort_week")
    with analytics(ws) as store:
        def report(first: date, last: date, by: str, seen: date = as_of) -> dict[str, Any]:
            return metrics_report(ws, start=first, end=last, as_of=seen, by=by, filters=f, ship_first=False,
                                  store=store)

        # The period's slicings in one pass; the heatmap's longer history, if any, in its own.
        sliced = metrics_reports(ws, start=start, end=end, as_of=as_of, bys=together, filters=f, ship_first=False,
                                 with_funnel=True, store=store, current_only=("group",))
        by_channel = sliced["channel"]
        before = previous_period(start, end, as_of)
        previous = report(before[0], before[1], "none", seen=before[2])
        cohorts = sliced.get("cohort_week") or report(cohort_start, end, "cohort_week")
        by_group = {row.get("group"): row for row in sliced["group"]["rows"]}
        daily = daily_trend(ws, start=start, end=end, as_of=as_of, filters=f, ship_first=False, store=store)
    groups = list_groups(ws)
    for group in groups:
        group["active_ratio_7d"] = by_group.get(group["key"], {}).get("active_ratio_7d")
    with ws.engine.connect() as conn:
        rooms = room_by_tier(group_slots(conn, ws.clock()))
        failed = conn.execute(select(func.count()).select_from(deliveries)
                              .where(deliveries.c.status.in_(("retry", "dead")))).scalar_one()
        unattributed = count_unattributed(conn, ws, start, end)
    for group in groups:
        group["status"] = "full" if group["room"] == 0 else (
            "low" if group["room"] < group["capacity"] * 0.1 else "ok")
    return Dashboard(start, end, as_of, by_channel["total"], previous["total"], by_channel["rows"],
                     cohorts["rows"], groups, [r.tier for r in rooms if r.status == "full"],
                     by_channel["funnel"], int(failed), daily, dict(f),
                     ws.local_today(), level_counts(ws), int(unattributed))


def count_unattributed(conn: Connection, ws: Workspace, start: date, end: date) -> int:
    """Events whose day (in the reporting zone) is in [start, end] and that named no member: identity
    resolution kept them with the visitor id unattributed:<field>."""
    zone = ws.settings.zone

    def utc(day: date) -> datetime:
        return datetime.combine(day, time.min, zone).astimezone(UTC).replace(tzinfo=None)

    return int(conn.execute(select(func.count()).select_from(events).where(
        events.c.member_id.is_(None), events.c.visitor_id.like(UNATTRIBUTED_PREFIX + "%"),
        events.c.ts >= utc(start), events.c.ts < utc(end + timedelta(days=1)))).scalar_one())


def filter_options(ws: Workspace) -> dict[str, list[str]]:
    """The values an operator can filter the dashboard by."""
    with ws.engine.connect() as conn:
        def keys(table: Any) -> list[str]:
            return list(conn.execute(select(table.c.key).order_by(table.c.key)).scalars())

        return {"channel": keys(channels), "campaign": keys(campaigns), "group": keys(groups), "tier": list(TIERS)}


def trend(current: float | None, previous: float | None, percent: bool) -> float | None:
    """Change versus the previous period: points for rates, a ratio for counts; None when unknown."""
    if current is None or previous is None:
        return None
    if percent:
        return current - previous
    return None if previous == 0 else current / previous - 1
