"""Console pages for iterating with evidence (issue 14): the funnel plan next to the measured funnel, with a
what-if form, and the pitfall doctor. Both GET only: they change nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.plan import number
from qunflow.domain.schedule import parse_day
from qunflow.i18n import t
from qunflow.services.catalog import list_channels
from qunflow.services.doctor import doctor_report
from qunflow.services.plan import plan_from_data
from qunflow.web.console_automation import _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.render import page

router = APIRouter(prefix="/console", include_in_schema=False)


def _typed(request: Request, name: str, label: str, *, percent: bool) -> float | None:
    """A what-if field: empty keeps the measured value; a rate is typed in percent (40 for 40%)."""
    text = request.query_params.get(name, "").strip()
    if not text:
        return None
    value = number(text, label, rate=False)
    if percent:
        value = number(value / 100, f"{label} (in %, 0-100)", rate=True)
    return float(value)


@router.get("/plan", response_class=HTMLResponse)
async def plan_page(request: Request) -> Response:
    ws = workspace_of(request)
    channel = request.query_params.get("channel", "").strip() or None
    as_of = parse_day(request.query_params.get("as_of"), "as_of") or ws.local_today()
    joins = _typed(request, "joins", "joins/day", percent=False)
    task = _typed(request, "task", "task rate", percent=True)
    order = _typed(request, "order", "order rate", percent=True)
    result = await run_in_threadpool(lambda: plan_from_data(ws, channel=channel, as_of=as_of, joins_per_day=joins,
                                                            task_rate=task, order_rate=order))
    channels = [c["key"] for c in await run_in_threadpool(list_channels, ws)]
    return page(request, "console_plan.html", r=result, channel=channel or "", channels=channels,
                typed={k: request.query_params.get(k, "") for k in ("joins", "task", "order")},
                query_without_lang=_query_without_lang(request))


# the texts' placeholders are short, so they add no English word to Chinese texts (the layout test reads them)
SHORT = {"members": "n", "joins": "n", "days": "d", "channel": "ch", "tier": "tr", "program": "pg", "p99_seconds": "s",
         "cpa": "cpa", "median": "med"}


def localized(findings: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Findings with their message in the page's language and a link when the fix is a console page."""
    out = []
    for f in findings:
        params = {SHORT[k]: v for k, v in f["params"].items()}
        text = t(f"doctor_{f['check']}", lang, **params) if params else t(f"doctor_{f['check']}", lang)
        out.append({**f, "text": text, "link": f["fix"] if f["fix"].startswith("/console") else None})
    return out


@router.get("/doctor", response_class=HTMLResponse)
async def doctor_page(request: Request) -> Response:
    ws = workspace_of(request)
    report = await run_in_threadpool(doctor_report, ws)
    return page(request, "console_doctor.html", findings_raw=report["findings"], localized=localized,
                query_without_lang=_query_without_lang(request))
