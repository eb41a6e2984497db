"""The dashboard as people see it: labels, formatted numbers and charts, for the console and reports."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from qunflow.domain.engagement import LEVELS
from qunflow.i18n import fmt_number, fmt_percent
from qunflow.services.dashboard import KPI_KEYS, PERCENT_KEYS, RETENTION_KEYS, Dashboard, previous_period, trend
from qunflow.web.charts import RateStage, heatmap_svg, rate_funnel_svg, sparkline_svg

LABELS = {
    "landing_visitors": ("落地页访客", "Landing visitors"), "join_conversion": ("M1 入群转化", "M1 join conversion"),
    "cohort_size": ("新入群", "New members"), "retention_d1": ("M2 次日留存", "M2 D1 retention"),
    "retention_d7": ("M2 7日留存", "M2 D7 retention"), "retention_d14": ("D14", "D14"), "retention_d30": ("D30", "D30"),
    "task_completion_d1": ("M9 首日任务", "M9 Day-1 tasks"), "conversion_rate": ("M5 转化率", "M5 conversion"),
    "cost_per_acquisition": ("M8 获客成本", "M8 CPA"), "ltv_90_revenue": ("M7 90日LTV", "M7 LTV 90d"),
    "cost_per_join": ("单个入群成本", "Cost per join"),
    "spend": ("投放", "Spend"), "converted": ("M5 已转化", "M5 converted"), "channel": ("渠道", "Channel"),
    "active_ratio_7d": ("M3 7日活跃", "M3 7-day active"), "k_factor": ("M4 K 因子", "M4 K-factor"),
    "revenue_per_member": ("M6 人均收入", "M6 revenue per member"),
    "landing_joined": ("M1 7天内入群", "M1 joined within 7 days"),
    "unattributed": ("其中未归因", "Unattributed joins"),
    "unattributed_row": ("未归因", "Unattributed"),
}
CHANNEL_COLUMNS = ("channel", "spend", "landing_visitors", "join_conversion", "cohort_size", "retention_d1",
                   "retention_d7", "task_completion_d1", "conversion_rate", "ltv_90_revenue", "cost_per_join",
                   "cost_per_acquisition")
MONEY_KEYS = ("cost", "ltv", "revenue", "margin", "spend")


def label(key: str, lang: str) -> str:
    zh, en = LABELS[key]
    return zh if lang == "zh" else en


def fmt(key: str, value: object, lang: str) -> str:
    if key in PERCENT_KEYS:
        return fmt_percent(value, lang)  # type: ignore[arg-type]
    if key == "k_factor":
        return fmt_number(value, lang, 2)  # type: ignore[arg-type]
    if isinstance(value, int | float) or value is None:
        return fmt_number(value, lang, 2 if key.startswith(MONEY_KEYS) and key != "spend" else 0)
    return str(value)


def drill_link(board: Dashboard, lang: str, **narrow: str) -> str:
    """The same page narrowed to one channel or group: the period, as-of and other filters kept."""
    query = {"from": board.start.isoformat(), "to": board.end.isoformat(), "as_of": board.as_of.isoformat(),
             **board.filters, **narrow, "lang": lang}
    return "/console?" + urlencode(query)


def _change(key: str, board: Dashboard, lang: str) -> str:
    change = trend(board.total.get(key), board.previous.get(key), key in PERCENT_KEYS)
    if change is None:
        return ""
    vs = "较上期" if lang == "zh" else "vs previous"
    return f"{change * 100:+.1f} pt {vs}" if key in PERCENT_KEYS else f"{change:+.0%} {vs}"


def funnel_stages(board: Dashboard, lang: str) -> list[RateStage]:
    """METRICS.md's funnel (joined -> Day-1 task (M9) -> converted (M5)), with M1's landings before it.

    Every printed rate is the card's own value (board.total): the same definition, denominator and as-of.
    Unattributed joins are a row of their own and no rate is ever joins over landings.
    """
    f, t = board.funnel, board.total
    landings, joined = f["landing_visitors"], f["joined"]
    return [
        RateStage("landing_visitors", label("landing_visitors", lang), landings, base=landings),
        RateStage("landing_joined", label("landing_joined", lang), f["landing_joined"], f["landing_in_progress"],
                  fmt("join_conversion", t.get("join_conversion"), lang), base=landings),
        RateStage("joined", label("cohort_size", lang), joined, base=joined),
        RateStage("unattributed", label("unattributed", lang), f["unattributed"], base=joined),
        RateStage("day1_task", label("task_completion_d1", lang), f["day1_task"], f["day1_task_in_progress"],
                  fmt("task_completion_d1", t.get("task_completion_d1"), lang), base=joined),
        RateStage("converted", label("converted", lang), f["converted"], f["converted_in_progress"],
                  fmt("conversion_rate", t.get("conversion_rate"), lang), base=joined),
    ]


def dashboard_view(board: Dashboard, lang: str, links: bool = True) -> dict[str, Any]:
    """Template context shared by the console's front page and the weekly report (`links=False`: a file
    has no console to drill into)."""
    days = [point["day"] for point in board.daily]
    span = f"{days[0]} – {days[-1]}" if days else ""
    kpis = []
    for key in KPI_KEYS:
        value = board.total.get(key)
        series = [point.get(key) for point in board.daily]
        title = (f"{label(key, lang)} 按日趋势 {span}" if lang == "zh" else f"{label(key, lang)}, daily {span}")
        kpis.append({"key": key, "label": label(key, lang), "value": fmt(key, value, lang),
                     "raw": "" if value is None else repr(value), "trend": _change(key, board, lang),
                     "spark": sparkline_svg(series, title) if days else ""})
    retention = [(str(row.get("cohort_week")), [row.get(k) for k in RETENTION_KEYS]) for row in board.cohorts]
    channel_rows = []
    for row in board.channels:
        name = row.get("channel")
        cells = [fmt(k, row.get(k), lang) for k in CHANNEL_COLUMNS]
        if name is None:  # joins and landings without a channel: their own row, not folded into a rate
            cells[0] = label("unattributed_row", lang)
        channel_rows.append({"name": name, "cells": cells,
                             "link": drill_link(board, lang, channel=name) if links and name is not None else None})
    groups = [{**g, "active": fmt_percent(g.get("active_ratio_7d"), lang),
               "link": drill_link(board, lang, group=g["key"]) if links else None} for g in board.groups]
    previous_start, previous_end, previous_as_of = previous_period(board.start, board.end, board.as_of)
    return {"lang": lang, "start": board.start, "end": board.end, "as_of": board.as_of, "kpis": kpis,
            "levels": board.levels, "level_names": LEVELS,
            "today": board.today, "previous": {"start": previous_start, "end": previous_end,
                                               "as_of": previous_as_of},
            "trend_span": span,
            "funnel_svg": rate_funnel_svg(funnel_stages(board, lang), "漏斗" if lang == "zh" else "Funnel"),
            "funnel": board.funnel,
            "retention_svg": heatmap_svg(retention, ["D1", "D7", "D14", "D30"],
                                         "按入群周的留存" if lang == "zh" else "Retention by join week"),
            "channel_columns": [(k, label(k, lang)) for k in CHANNEL_COLUMNS], "channel_rows": channel_rows,
            "groups": groups, "room_alerts": [{"tier": t} for t in board.full_tiers],
            "failed_sends": board.failed_sends, "filters_shown": board.filters,
            "unattributed_events": board.unattributed_events}
