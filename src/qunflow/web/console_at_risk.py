"""The at-risk list (/console/at-risk): members slipping this week, each with one click to an advisor task
(an inbox item) or to start a playbook for them. An advisor sees only the members of their groups."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.services import at_risk
from qunflow.web.console_automation import _back, _form, _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.render import page

router = APIRouter(prefix="/console", include_in_schema=False)


def _groups(request: Request) -> frozenset[str] | None:
    principal = getattr(request.state, "principal", None)
    return None if principal is None else principal.groups


@router.get("/at-risk", response_class=HTMLResponse)
async def at_risk_page(request: Request) -> Response:
    ws = workspace_of(request)
    rows = await run_in_threadpool(at_risk.at_risk, ws, _groups(request))
    playbooks = await run_in_threadpool(at_risk.member_playbooks, ws)
    return page(request, "console_at_risk.html", rows=rows, playbooks=playbooks,
                week_start=at_risk.week_start(ws), notice=request.query_params.get("notice", ""),
                query_without_lang=_query_without_lang(request))


def _visible(request: Request, member_id: str) -> None:
    """An advisor limited to some groups acts only on members listed for them (else: not found)."""
    groups = _groups(request)
    if groups is not None and member_id not in {r["member_id"] for r in at_risk.at_risk(workspace_of(request), groups)}:
        from qunflow.errors import NotFound

        raise NotFound(f"member {member_id} is not on your at-risk list", zh=f"成员 {member_id} 不在你的流失预警名单上")


@router.post("/at-risk/{member_id}/task")
async def at_risk_task(request: Request, member_id: str) -> Response:
    form = await _form(request)
    await run_in_threadpool(_visible, request, member_id)
    made = await run_in_threadpool(at_risk.open_advisor_task, workspace_of(request), member_id)
    return _back("/console/at-risk", {**form, "notice": "task" if made else "task_exists"}, "notice")


@router.post("/at-risk/{member_id}/enroll")
async def at_risk_enroll(request: Request, member_id: str) -> Response:
    form = await _form(request)
    await run_in_threadpool(_visible, request, member_id)
    made = await run_in_threadpool(at_risk.enroll_at_risk, workspace_of(request), member_id,
                                   form.get("playbook", "").strip())
    return _back("/console/at-risk", {**form, "notice": "enrolled" if made else "enrolled_exists"}, "notice")
