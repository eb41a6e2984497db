"""Console page of the outbox: every send with its state (/console/sends), and where a staff-confirmed task
(WeCom add_msg_template) stands (/console/sends/{id}/results). Read-only: retries live in the dead letters."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.errors import InvalidInput
from qunflow.services.sends import STATUSES, send_kinds, sends_view, task_results
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import RowId
from qunflow.web.render import message_page, page

router = APIRouter(prefix="/console", include_in_schema=False)
SENDS_PAGE = 100  # the newest sends shown


def _query_without_lang(request: Request) -> str:
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"])


@router.get("/sends", response_class=HTMLResponse)
async def sends_page(request: Request) -> Response:
    ws = workspace_of(request)
    status = request.query_params.get("status") or None
    kind = request.query_params.get("kind") or None
    rows = await run_in_threadpool(lambda: sends_view(ws, status=status, kind=kind, limit=SENDS_PAGE))
    kinds = await run_in_threadpool(send_kinds, ws)
    return page(request, "console_sends.html", rows=rows, statuses=STATUSES, kinds=kinds, status=status or "",
                kind=kind or "", timezone=ws.settings.timezone, query_without_lang=_query_without_lang(request))


@router.get("/sends/{send_id}/results", response_class=HTMLResponse)
async def send_results_page(request: Request, send_id: RowId) -> Response:
    ws = workspace_of(request)
    try:
        result = await run_in_threadpool(task_results, ws, send_id)
    except InvalidInput:  # a send that went out at once (or never reached the platform): nothing to follow
        return message_page(request, "sends_results", "results_no_task", status_code=400)
    return page(request, "console_send_results.html", send_id=send_id, result=result,
                query_without_lang=_query_without_lang(request))
