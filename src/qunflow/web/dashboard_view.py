"""The dashboard as people see it: labels, formatted numbers and charts, for the console and reports."""

from __future__ import annotations

from typing import Any

from qunflow.i18n import fmt_number, fmt_percent
from qunflow.services.dashboard import KPI_KEYS, PERCENT_KEYS, RETENTION_KEYS, Dashboard, trend
from qunflow.web.charts import FunnelStage, funnel_svg, heatmap_svg

LABELS = {
    "landing_visitors": ("落地页访客", "Landing visitors"), "join_conversion": ("M1 入群转化", "M1 join conversion"),
    "cohort_size": ("新入群", "New members"), "retention_d1": ("M2 次日留存", "M2 D1 retention"),
    "retention_d7": ("M2 7日留存", "M2 D7 retention"), "retention_d14": ("D14", "D14"), "retention_d30": ("D30", "D30"),
    "task_completion_d1": ("M9 首日任务", "M9 Day-1 tasks"), "conversion_rate": ("M5 转化率", "M5 conversion"),
    "cost_per_acquisition": ("M8 获客成本", "M8 CPA"), "ltv_90_revenue": ("M7 90日LTV", "M7 LTV 90d"),
    "cost_per_join": ("单个入群成本", "Cost per join"),
    "spend": ("投放", "Spend"), "converted": ("已转化", "Converted"), "channel": ("渠道", "Channel"),
}
CHANNEL_COLUMNS = ("channel", "spend", "landing_visitors", "join_conversion", "cohort_size", "retention_d1",
                   "retention_d7", "task_completion_d1", "conversion_rate", "ltv_90_revenue", "cost_per_join",
                   "cost_per_acquisition")


def label(key: str, lang: str) -> str:
    zh, en = LABELS[key]
    return zh if lang == "zh" else en


def fmt(key: str, value: object, lang: str) -> str:
    if key in PERCENT_KEYS:
        return fmt_percent(value, lang)  # type: ignore[arg-type]
    if isinstance(value, int | float) or value is None:
        return fmt_number(value, lang, 2 if key.startswith(("cost", "ltv")) else 0)
    return str(value)


def dashboard_view(board: Dashboard, lang: str) -> dict[str, Any]:
    """Template context shared by the console's front page and the weekly report."""
    kpis = []
    for key in KPI_KEYS:
        change = trend(board.total.get(key), board.previous.get(key), key in PERCENT_KEYS)
        text = ""
        if change is not None:
            vs = "较上期" if lang == "zh" else "vs previous"
            text = f"{change * 100:+.1f} pt {vs}" if key in PERCENT_KEYS else f"{change:+.0%} {vs}"
        kpis.append({"label": label(key, lang), "value": fmt(key, board.total.get(key), lang), "trend": text})
    f = board.funnel
    stages = [FunnelStage(label("landing_visitors", lang), f["landing_visitors"]),
              FunnelStage(label("cohort_size", lang), f["joined"]),
              FunnelStage(label("task_completion_d1", lang), f["day1_task"], f["day1_task_in_progress"]),
              FunnelStage(label("converted", lang), f["converted"], f["converted_in_progress"])]
    retention = [(str(row.get("cohort_week")), [row.get(k) for k in RETENTION_KEYS]) for row in board.cohorts]
    channel_rows = [[fmt(k, row.get(k), lang) for k in CHANNEL_COLUMNS] for row in board.channels]
    groups = [{**g, "active": fmt_percent(g.get("active_ratio_7d"), lang)} for g in board.groups]
    return {"lang": lang, "start": board.start, "end": board.end, "as_of": board.as_of, "kpis": kpis,
            "funnel_svg": funnel_svg(stages, "漏斗" if lang == "zh" else "Funnel"),
            "retention_svg": heatmap_svg(retention, ["D1", "D7", "D14", "D30"],
                                         "按入群周的留存" if lang == "zh" else "Retention by join week"),
            "channel_columns": [(k, label(k, lang)) for k in CHANNEL_COLUMNS], "channel_rows": channel_rows,
            "groups": groups, "room_alerts": [{"tier": t} for t in board.full_tiers],
            "failed_sends": board.failed_sends}
