"""A member's Day-1 task pages (C3): `/m/<token>/task/<key>` shows the task, its POST does it.

The personal link's token names the member (services.privacy); a GET never completes anything (chat apps
open links to preview them), and each POST completes its task only by doing it (services.tasks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.gate import CONSENT_TEXT_VERSION
from qunflow.errors import InvalidInput, NotFound
from qunflow.i18n import t
from qunflow.services.privacy import member_from_token
from qunflow.services.tasks import ProfileErrors, TaskPage, cast_vote, claim_coupon, save_profile, task_page
from qunflow.web.deps import workspace_of
from qunflow.web.guard import view_refusal
from qunflow.web.render import lang_of, message_page, page

router = APIRouter(include_in_schema=False)


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """A naive UTC moment as the workspace's local time, to the minute."""
    return moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _render(request: Request, task: TaskPage, status: int = 200, *, form: dict[str, str] | None = None,
            errors: dict[str, str] | None = None, notice: str = "") -> Response:
    ws = workspace_of(request)
    extra: dict[str, Any] = {}
    if task.coupon is not None:
        extra = {"coupon_value": format(task.coupon.value.normalize(), "f"),
                 "coupon_expires": local_time(task.coupon.expires_at, ws.settings.zone)}
    return page(request, "task.html", status, task=task, form=form or {}, errors=errors or {}, notice=notice,
                consent_version=CONSENT_TEXT_VERSION, **extra)


def _show(request: Request, token: str, key: str) -> Response:
    ws = workspace_of(request)
    member_id = member_from_token(ws, token)
    try:
        return _render(request, task_page(ws, member_id, key))
    except NotFound:
        return message_page(request, "not_found", status_code=404)


@router.get("/m/{token}/task/{task}", response_class=HTMLResponse)
async def task_view(token: str, task: str, request: Request) -> Response:
    refused = await view_refusal(request)
    if refused is not None:
        return refused
    return await run_in_threadpool(_show, request, token, task)


@router.post("/m/{token}/task/{task}", response_class=HTMLResponse)
async def task_do(token: str, task: str, request: Request) -> Response:
    refused = await view_refusal(request)
    if refused is not None:
        return refused
    form = {k: str(v)[:500] for k, v in (await request.form()).items()}
    return await run_in_threadpool(_do, request, token, task, form)


def _do(request: Request, token: str, key: str, form: dict[str, str]) -> Response:
    ws = workspace_of(request)
    member_id = member_from_token(ws, token)
    lang = lang_of(request)
    try:
        current = task_page(ws, member_id, key)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    try:
        if current.kind == "profile":
            save_profile(ws, member_id, form)
            return _render(request, task_page(ws, member_id, key), notice=t("task_saved", lang))
        if current.kind == "coupon":
            try:
                claim_coupon(ws, member_id)
            except NotFound:
                return _render(request, current, 409)
            return _render(request, task_page(ws, member_id, key))  # the page says it is claimed
        if current.kind == "vote":
            cast_vote(ws, member_id, key, form.get("option", ""))
            return _render(request, task_page(ws, member_id, key))
    except ProfileErrors as exc:
        return _render(request, current, 422, form=form, errors=exc.errors)
    except InvalidInput:
        return _render(request, current, 422, form=form, errors={"option": "choose"})
    # check-in and other tasks are done in the group, not on this page
    return _render(request, current, 405)
