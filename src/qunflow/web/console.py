"""The operator console: dashboard, entry points, sandbox. Reads the analytics store for numbers."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from qunflow.domain.schedule import parse_day
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.catalog import list_entry_points
from qunflow.services.dashboard import build_dashboard, default_period, filter_options
from qunflow.services.pools import pool_stats
from qunflow.services.report_schedule import REPORTS_FOLDER, report_problem
from qunflow.web.auth import narrow_group, principal_of
from qunflow.web.dashboard_view import dashboard_view
from qunflow.web.deps import workspace_of
from qunflow.web.render import lang_of, page

router = APIRouter(prefix="/console", include_in_schema=False)


def _date(request: Request, name: str, default: date) -> date:
    return parse_day(request.query_params.get(name), name) or default


def _query_without_lang(request: Request) -> str:
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"])


@router.get("", response_class=HTMLResponse)
def home(request: Request) -> Response:
    ws, principal = workspace_of(request), principal_of(request)
    if not principal.can("metrics:read"):  # an advisor's console starts at the inbox
        return RedirectResponse("/console/inbox", status_code=303)
    lang = lang_of(request)
    start, end, as_of = default_period(ws.local_today())
    start, end, as_of = _date(request, "from", start), _date(request, "to", end), _date(request, "as_of", as_of)
    if start > end:
        raise InvalidInput("from must not be after to", zh="开始日期不能晚于结束日期")
    filters = {name: request.query_params[name] for name in ("channel", "campaign", "group", "tier")
               if request.query_params.get(name)}
    options = filter_options(ws)
    if principal.groups is not None:  # a user limited to groups sees one of theirs at a time
        filters["group"] = narrow_group(principal, filters.get("group") or min(principal.groups)) or ""
        options["group"] = [g for g in options["group"] if g in principal.groups]
    board = build_dashboard(ws, start, end, as_of, filters)
    if principal.groups is not None:  # nor the rows of groups that are not theirs
        board = replace(board, groups=[g for g in board.groups if g["key"] in principal.groups],
                        levels={"groups": [g for g in board.levels.get("groups", []) if g["key"] in principal.groups],
                                "channels": []})  # a channel's members span groups
    pools = [] if principal.groups is not None else [pool_stats(ws, name, as_of) for name in sorted(ws.settings.pools)]
    from qunflow.services.doctor import doctor_report
    from qunflow.web.console_plan import localized

    # the costly-channel check reuses the board's by-channel rows when they cover every member
    rows = None if filters else board.channels
    pitfalls = localized(doctor_report(ws, rows)["findings"], lang) if principal.can("config:write") else []
    return page(request, "console_home.html", **dashboard_view(board, lang), timezone=ws.settings.timezone, pools=pools,
                pitfalls=pitfalls,
                query_without_lang=_query_without_lang(request), filters=filters, options=options,
                report_problem=report_problem(ws))


REPORT_NAME = re.compile(r"^\d{4}-W\d{2}\.(html|pdf)$")


@router.get("/reports/{name}")
def weekly_report_file(request: Request, name: str) -> Response:
    """A weekly report written by the schedule (the link in the posted summary)."""
    path = workspace_of(request).home / REPORTS_FOLDER / name
    if not REPORT_NAME.match(name) or not path.is_file():
        raise NotFound(f"no weekly report {name!r}", zh=f"没有周报 {name!r}")
    return FileResponse(path)


@router.get("/entry-points", response_class=HTMLResponse)
def entry_points(request: Request) -> Response:
    ws = workspace_of(request)
    return page(request, "console_entries.html", entries=list_entry_points(ws),
                base=ws.settings.public_url.rstrip("/"), query_without_lang=_query_without_lang(request))


@router.get("/sandbox", response_class=HTMLResponse)
def sandbox(request: Request) -> Response:
    world = workspace_of(request).sandbox
    chat = request.query_params.get("chat")
    return page(request, "console_sandbox.html", chats=world.chats(), chat=chat, counts=world.counts(),
                messages=world.messages(chat_id=chat, limit=100), query_without_lang=_query_without_lang(request),
                timezone=workspace_of(request).settings.timezone)
