"""Console page for group polls (docs/polls.md): each poll's votes per option, and a form that posts one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from qunflow.errors import InvalidInput
from qunflow.services import group_polls
from qunflow.store.tables import groups
from qunflow.web.auth import principal_of
from qunflow.web.console_automation import _back, _form, _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.render import lang_of, page
from qunflow.workspace import Workspace

router = APIRouter(prefix="/console", include_in_schema=False)


def _group_keys(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        return list(conn.execute(select(groups.c.key).where(groups.c.archived_at.is_(None))
                                 .order_by(groups.c.key)).scalars())


@router.get("/polls", response_class=HTMLResponse)
async def polls_page(request: Request) -> Response:
    ws = workspace_of(request)
    polls = await run_in_threadpool(group_polls.list_polls, ws)
    keys = await run_in_threadpool(_group_keys, ws)
    return page(request, "console_polls.html", polls=polls, group_keys=keys,
                notice=request.query_params.get("notice", ""), query_without_lang=_query_without_lang(request))


@router.post("/polls")
async def poll_post(request: Request) -> Response:
    form = await _form(request)
    options = [line.strip() for line in form.get("options", "").splitlines() if line.strip()]
    try:
        hours = int(form.get("hours", "").strip() or group_polls.DEFAULT_HOURS)
    except ValueError:
        raise InvalidInput("hours must be a whole number", zh="小时数须为整数") from None
    who = principal_of(request)
    await run_in_threadpool(lambda: group_polls.post_poll(
        workspace_of(request), form.get("group", ""), form.get("question", ""), options, hours=hours,
        language=lang_of(request), actor=f"console:{who.name}"))
    return _back("/console/polls", {**form, "notice": "posted"}, "notice")
