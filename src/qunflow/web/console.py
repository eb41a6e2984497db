"""The operator console: dashboard, entry points, sandbox. Reads the analytics store for numbers."""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from qunflow.errors import InvalidInput
from qunflow.i18n import fmt_number, fmt_percent
from qunflow.services.catalog import list_entry_points
from qunflow.services.dashboard import (
    KPI_KEYS,
    PERCENT_KEYS,
    RETENTION_KEYS,
    build_dashboard,
    default_period,
    filter_options,
    trend,
)
from qunflow.services.platforms import sandbox_world
from qunflow.web.charts import FunnelStage, funnel_svg, heatmap_svg
from qunflow.web.deps import workspace_of
from qunflow.web.render import lang_of, page

router = APIRouter(prefix="/console", include_in_schema=False)

LABELS = {
    "landing_visitors": ("落地页访客", "Landing visitors"), "join_conversion": ("M1 入群转化", "M1 join conversion"),
    "cohort_size": ("新入群", "New members"), "retention_d1": ("M2 次日留存", "M2 D1 retention"),
    "retention_d7": ("M2 7日留存", "M2 D7 retention"), "retention_d14": ("D14", "D14"), "retention_d30": ("D30", "D30"),
    "task_completion_d1": ("M9 首日任务", "M9 Day-1 tasks"), "conversion_rate": ("M5 转化率", "M5 conversion"),
    "cost_per_acquisition": ("M8 获客成本", "M8 CPA"), "cost_per_join": ("单个入群成本", "Cost per join"),
    "spend": ("投放", "Spend"), "converted": ("已转化", "Converted"), "channel": ("渠道", "Channel"),
}
CHANNEL_COLUMNS = ("channel", "spend", "landing_visitors", "join_conversion", "cohort_size", "retention_d1",
                   "retention_d7", "task_completion_d1", "conversion_rate", "cost_per_join", "cost_per_acquisition")


def label(key: str, lang: str) -> str:
    zh, en = LABELS[key]
    return zh if lang == "zh" else en


def fmt(key: str, value: object, lang: str) -> str:
    if key in PERCENT_KEYS:
        return fmt_percent(value, lang)  # type: ignore[arg-type]
    if isinstance(value, int | float) or value is None:
        return fmt_number(value, lang, 2 if key.startswith("cost") else 0)
    return str(value)


def _date(request: Request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date like 2026-01-31") from exc


def _query_without_lang(request: Request) -> str:
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"])


@router.get("", response_class=HTMLResponse)
def home(request: Request) -> Response:
    ws = workspace_of(request)
    lang = lang_of(request)
    start, end, as_of = default_period(datetime.now(ws.settings.zone).date())
    start, end, as_of = _date(request, "from", start), _date(request, "to", end), _date(request, "as_of", as_of)
    if start > end:
        raise InvalidInput("from must not be after to")
    filters = {name: request.query_params[name] for name in ("channel", "campaign", "group", "tier")
               if request.query_params.get(name)}
    board = build_dashboard(ws, start, end, as_of, filters)
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
    return page(request, "console_home.html", lang=lang, start=start, end=end, as_of=as_of, kpis=kpis,
                funnel_svg=funnel_svg(stages, "漏斗" if lang == "zh" else "Funnel"),
                retention_svg=heatmap_svg(retention, ["D1", "D7", "D14", "D30"],
                                          "按入群周的留存" if lang == "zh" else "Retention by join week"),
                channel_columns=[(k, label(k, lang)) for k in CHANNEL_COLUMNS], channel_rows=channel_rows,
                groups=groups, room_alerts=[{"tier": t} for t in board.full_tiers], failed_sends=board.failed_sends,
                timezone=ws.settings.timezone, query_without_lang=_query_without_lang(request),
                filters=filters, options=filter_options(ws))


@router.get("/entry-points", response_class=HTMLResponse)
def entry_points(request: Request) -> Response:
    ws = workspace_of(request)
    return page(request, "console_entries.html", entries=list_entry_points(ws),
                base=ws.settings.public_url.rstrip("/"), query_without_lang=_query_without_lang(request))


@router.get("/sandbox", response_class=HTMLResponse)
def sandbox(request: Request) -> Response:
    world = sandbox_world(workspace_of(request))
    chat = request.query_params.get("chat")
    return page(request, "console_sandbox.html", chats=world.chats(), chat=chat, counts=world.counts(),
                messages=world.messages(chat_id=chat, limit=100), query_without_lang=_query_without_lang(request))
