"""Metrics report: ship the newest events, run the metric queries, shape the JSON contract."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from qunflow.analytics.facts import days_usable
from qunflow.analytics.facts import usable as facts_usable
from qunflow.analytics.queries import (
    COHORT,
    COHORT_FACTS,
    CURRENT,
    CURRENT_DAILY,
    CURRENT_FACTS,
    DAILY_MAX_DAYS,
    LANDING,
    LANDING_DAYS,
    SPEND,
    SPEND_DAILY,
    current_daily_facts,
    render,
)
from qunflow.analytics.shipper import analytics
from qunflow.analytics.slicings import NotSliceable, render_sets, split_sets
from qunflow.domain.metrics import (
    METRIC_KEYS,
    Period,
    check_dimension,
    check_experiment,
    check_filters,
    current_from_counts,
    funnel_from_counts,
    make_period,
    metrics_from_counts,
)
from qunflow.workspace import Workspace

if TYPE_CHECKING:
    from qunflow.analytics.engines import Engine


@contextmanager
def _store(ws: Workspace, store: Engine | None, ship_first: bool) -> Iterator[Engine]:
    """The caller's open analytics store (a page reading several reports on one connection), or one for this
    read alone."""
    if store is not None:
        yield store
        return
    with analytics(ws, ship_first=ship_first) as engine:
        yield engine


def _params(ws: Workspace, period: Period, filters: dict[str, str], experiment: str | None) -> dict[str, Any]:
    settings = ws.settings
    return {"tz": settings.timezone, "cutoff": period.cutoff, "start": period.start, "end": period.end,
            "as_of": period.as_of, "engagement": settings.engagement_types,
            "conversion": settings.conversion_types, "experiment": experiment,
            **{f"f_{name}": value for name, value in filters.items()}}


Statistics = tuple[dict[Any, dict[str, Any]], dict[str, Any]]  # per slice value, and the total


def _statistics(ws: Workspace, period: Period, by: str, filters: dict[str, str] | None = None,
                experiment: str | None = None, *, ship_first: bool = False, store: Engine | None = None,
                ) -> Statistics:
    """Sufficient statistics per slice value, and for the total (the store brought up to date first when
    `ship_first`, on the same connection)."""
    return _statistics_sets(ws, period, (by,), filters, experiment, ship_first=ship_first, store=store)[by]


def _statistics_sets(ws: Workspace, period: Period, bys: tuple[str, ...], filters: dict[str, str] | None = None,
                     experiment: str | None = None, *, ship_first: bool = False, store: Engine | None = None,
                     templates: tuple[str, ...] = (COHORT, CURRENT, LANDING, SPEND),
                     narrow: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Statistics]:
    """`_statistics` of several slicings of one period, each metric query run once for all of them (GROUPING
    SETS, analytics/slicings.py) where its template allows, else once per slicing; only the statistics of
    `templates` (by default all of them), and of a slicing named in `narrow` only those of the templates it
    names there (its rows lack the rest; the total is whole)."""
    filters = filters or {}
    narrow = narrow or {}
    params = _params(ws, period, filters, experiment)
    with _store(ws, store, ship_first) as engine:  # each engine uses only the parameters its SQL names
        plain = experiment is None and "variant" not in filters and "variant" not in bys
        from_facts = plain and facts_usable(engine, ws.settings, period.cutoff)
        facts = {COHORT: COHORT_FACTS, CURRENT: CURRENT_FACTS, LANDING: LANDING_DAYS} if from_facts else {}
        if plain and not from_facts and facts_usable(engine, ws.settings, None):  # a past as-of day: the cohort's
            facts[COHORT] = COHORT_FACTS  # facts still answer it (queries.COHORT_FACTS), M3 and M1 do not
        fetched: list[tuple[str, int | None, Any, dict[str, Any]]] = []  # (template, slicing, dim, statistics)
        for template in templates:
            sql = facts.get(template, template)
            # Spend is by channel whatever the slicing: read once, as slicing 0.
            mine = [0] if template is SPEND else [k for k, by in enumerate(bys)
                                                  if template in narrow.get(by, templates)]
            if template is CURRENT and not from_facts and plain and all(bys[k] == "none" for k in mine) \
                    and days_usable(engine, ws.settings):
                fetched.append((CURRENT, None, None, _current_total_from_days(ws, engine, period, filters)))
                continue
            together = len(mine) > 1 and experiment is None
            try:
                sql_sets = render_sets(sql, tuple(bys[k] for k in mine), filters) if together else None
            except NotSliceable:  # a template of another shape: once per slicing
                sql_sets = None
            if sql_sets is not None:
                names, rows = engine.query(sql_sets, params)
                for row in rows:
                    k, dim, record = split_sets(names, row, len(mine))
                    fetched.append((template, None if k is None else mine[k], dim, record))
            else:
                each: list[int | None] = [*mine] or [None]  # no slicing left to it: its total alone
                for k in each:
                    by = "none" if k is None else bys[k]
                    names, rows = engine.query(render(sql, by, filters, experiment is not None), params)
                    for row in rows:
                        record = dict(zip(names, row, strict=True))
                        is_total, dim = record.pop("is_total"), record.pop("dim")
                        if is_total or k is not None:
                            fetched.append((template, None if is_total else k, dim, record))
    return {by: _shape(by, k, fetched, filters, experiment) for k, by in enumerate(bys)}


def _current_total_from_days(ws: Workspace, engine: Engine, period: Period, filters: dict[str, str]) -> dict[str, Any]:
    """M3's total as of an as-of day the member facts do not answer (a day in the past: the dashboard's previous
    period), from the member days: CURRENT_DAILY_FACTS (in the engine's SQL) over that one day, which gives
    CURRENT's total exactly."""
    day = Period(period.as_of, period.as_of, period.as_of, period.zone)
    names, rows = engine.query(render(current_daily_facts(engine.name), "none", filters),
                              _params(ws, day, filters, None))
    record: dict[str, Any] = {"current_members": 0, "active_7": 0, "active_14": 0, "active_30": 0}  # no one present
    for values in rows:
        record.update(zip(names, values, strict=True))
    record.pop("dim", None)
    return record


def _shape(by: str, k: int, fetched: list[tuple[str, int | None, Any, dict[str, Any]]], filters: dict[str, str],
           experiment: str | None) -> Statistics:
    """One slicing's rows and total from the fetched statistics (SPEND's rows are by channel, fetched as slicing 0)."""
    no_spend = bool(set(filters) - {"channel"}) or experiment is not None
    rows: dict[Any, dict[str, Any]] = {}
    total: dict[str, Any] = {}
    for template, slicing, dim, record in fetched:
        if slicing is None:
            total.update(record)
        elif template is SPEND:
            if by == "channel" and experiment is None:  # spend is known per channel only, and not per variant
                rows.setdefault(dim, {}).update(record)
        elif slicing == k:
            rows.setdefault(dim, {}).update(record)
    if no_spend:
        total["spend"] = None  # spend is known per channel only: a narrower slice has no spend of its own
    # No spend rows means nothing was spent: spend 0, so an organic channel's costs are 0 (METRICS.md M8).
    total.setdefault("spend", 0)
    if by == "channel":
        for record in rows.values():
            record.setdefault("spend", None if no_spend else 0)
    return rows, total


def metrics_report(ws: Workspace, *, start: date | None = None, end: date | None = None,
                   as_of: date | None = None, by: str | None = "none",
                   filters: dict[str, str] | None = None, experiment: str | None = None,
                   ship_first: bool = True, with_funnel: bool = False, store: Engine | None = None,
                   ) -> dict[str, Any]:
    """The metrics contract: {"from", "to", "as_of", "by", "rows": [...], "total": {...}}.

    `filters` narrows every metric to members (and landings) with these acquisition attributes;
    `experiment` to the people exposed to it, counting their behaviour from exposure on
    (METRICS.md Experiments), with `by="variant"` giving one row per variant.
    `ship_first=False` when the caller has just shipped; `with_funnel` adds "funnel" (funnel_counts of the
    same period, from the same statistics); `store`: read on the caller's open analytics store.
    """
    by = check_dimension(by)
    filters = check_filters(filters)
    experiment = check_experiment(experiment, by, filters)
    period = make_period(start, end, as_of, ws.settings.zone, ws.local_today())
    rows, total = _statistics(ws, period, by, filters, experiment, ship_first=ship_first, store=store)
    return _report(period, by, rows, total, experiment, with_funnel)


def metrics_reports(ws: Workspace, *, start: date, end: date, as_of: date, bys: tuple[str, ...],
                    filters: dict[str, str] | None = None, ship_first: bool = True, with_funnel: bool = False,
                    store: Engine | None = None, current_only: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """`metrics_report` of one period by each of `bys` (no experiment), read in one pass for all of them; the
    slicings in `current_only` are read for M3 alone: a row per value with current members, holding M3's values."""
    bys = tuple(check_dimension(by) for by in bys)
    filters = check_filters(filters)
    for by in bys:
        check_experiment(None, by, filters)
    period = make_period(start, end, as_of, ws.settings.zone, ws.local_today())
    sets = _statistics_sets(ws, period, bys, filters, ship_first=ship_first, store=store,
                            narrow={by: (CURRENT,) for by in current_only})
    return {by: _report(period, by, *sets[by], None, with_funnel, by in current_only) for by in bys}


def _report(period: Period, by: str, rows: dict[Any, dict[str, Any]], total: dict[str, Any],
            experiment: str | None, with_funnel: bool, current_only: bool = False) -> dict[str, Any]:
    out_rows = []
    shape = current_from_counts if current_only else metrics_from_counts
    if by != "none":
        for dim in sorted(rows, key=lambda d: (d is None, str(d))):
            out_rows.append({by: dim, **shape(rows[dim])})
    report = {"from": period.start.isoformat(), "to": period.end.isoformat(), "as_of": period.as_of.isoformat(),
              "by": by, "rows": out_rows, "total": metrics_from_counts(total)}
    if experiment is not None:
        report["experiment"] = experiment
    if with_funnel:
        report["funnel"] = funnel_from_counts(total)
    return report


def funnel_counts(ws: Workspace, *, start: date, end: date, as_of: date,
                  filters: dict[str, str] | None = None, ship_first: bool = True) -> dict[str, int]:
    """The funnel's stages as counts: landing -> joined -> Day-1 task -> converted (see funnel_from_counts)."""
    period = make_period(start, end, as_of, ws.settings.zone, ws.local_today())
    filters = check_filters(filters)
    check_experiment(None, "none", filters)
    _rows, total = _statistics(ws, period, "none", filters, ship_first=ship_first)
    return funnel_from_counts(total)


def cohort_statistics(ws: Workspace, *, start: date, end: date, as_of: date,
                      filters: dict[str, str] | None = None, ship_first: bool = True) -> dict[str, Any]:
    """The period's sufficient statistics for the whole slice (counts behind every metric): the planner
    needs the denominators (eligible_1, mature_30) as well as the rates."""
    period = make_period(start, end, as_of, ws.settings.zone, ws.local_today())
    filters = check_filters(filters)
    check_experiment(None, "none", filters)
    return _statistics(ws, period, "none", filters, ship_first=ship_first)[1]


TREND_DAYS = 28  # the daily trend's length: at most the last four weeks of the period
assert TREND_DAYS <= DAILY_MAX_DAYS  # CURRENT_DAILY's bits of activity hold that many days at most


def daily_trend(ws: Workspace, *, start: date, end: date, as_of: date, filters: dict[str, str] | None = None,
                ship_first: bool = True, store: Engine | None = None) -> list[dict[str, Any]]:
    """One point per day, {"day", **metric values}, for the period's days up to the as-of day (the last
    TREND_DAYS of them), every value by the definitions of `metrics_report`:

    - cohort metrics (M1's landings, joins, M2, M4-M7, M9) are those of the day's own join cohort
      (landings: of the day's landings), as of the as-of day: `metrics --by cohort_day`;
    - M3 (current members, active ratios) is the point-in-time value as of that day: `metrics --as-of day`;
    - spend is that day's spend (up to the as-of day); costs divide it by the day's cohort.
    """
    filters = check_filters(filters)
    check_experiment(None, "none", filters)
    zone = ws.settings.zone
    last = min(end, as_of)
    first = max(start, last - timedelta(days=TREND_DAYS - 1))
    if first > last:
        return []
    # The cohorts' and landings' statistics by join day; M3 and spend are read per day below.
    rows, _total = _statistics_sets(ws, Period(first, last, as_of, zone), ("cohort_day",), filters,
                                    ship_first=ship_first, store=store, templates=(COHORT, LANDING))["cohort_day"]
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    spend_known = not set(filters) - {"channel"}
    # M3 as of each day (cutoff: the end of the last one; each day's rows stop at its own end), from the member
    # days when they are up to date (analytics/facts.py), else from the events.
    params = _params(ws, Period(first, last, last, zone), filters, None)
    with _store(ws, store, False) as engine:
        from_days = "variant" not in filters and days_usable(engine, ws.settings)
        template = current_daily_facts(engine.name) if from_days else CURRENT_DAILY
        names, fetched = engine.query(render(template, "none", filters), params)
        current = {}
        for values in fetched:
            record = dict(zip(names, values, strict=True))
            current[str(record.pop("dim"))] = record
        spend_by_day: dict[str, Any] = {}
        if spend_known:
            spend_params = _params(ws, Period(first, last, as_of, zone), filters, None)
            _names, fetched = engine.query(render(SPEND_DAILY, "none", filters), spend_params)
            spend_by_day = {str(dim): amount for dim, amount in fetched}
    points = []
    for day in days:
        counts = {**rows.get(day.isoformat(), {}), **current.get(day.isoformat(), {}),
                  "spend": spend_by_day.get(day.isoformat(), 0) if spend_known else None}
        points.append({"day": day.isoformat(), **metrics_from_counts(counts)})
    return points


__all__ = ["METRIC_KEYS", "TREND_DAYS", "cohort_statistics", "daily_trend", "funnel_counts", "metrics_report",
           "metrics_reports"]
