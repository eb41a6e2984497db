"""Console pages for incentives: the rewards review queue (approve / reject), counts, budget use and
programs; the referral leaderboard. POST forms follow console_automation: same-origin check, 303 back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.schedule import parse_day
from qunflow.errors import InvalidInput
from qunflow.i18n import TEXTS, t
from qunflow.services import referral_stats, reward_views
from qunflow.services import rewards as engine
from qunflow.services.fraud import why_text
from qunflow.web.auth import principal_of
from qunflow.web.console_automation import _back, _form, _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import RowId
from qunflow.web.render import page

router = APIRouter(prefix="/console", include_in_schema=False)


def reason_words(reason: Any, lang: str) -> str:
    """One stored fraud reason as words: the scoring's sentence with its numbers (services/fraud.why_text), else
    the code's text (or the code), then its details."""
    if isinstance(reason, dict) and (sentence := why_text(reason, lang)) is not None:
        return sentence
    if isinstance(reason, dict):
        code = str(reason.get("code", ""))
        extra = {k: v for k, v in reason.items() if k not in ("code", "referral_id")}
        details = ", ".join(str(v) if k in ("detail", "message") else f"{k}: {v}" for k, v in extra.items())
    else:
        code, details = str(reason), ""
    words = t(f"fraud_{code}", lang) if f"fraud_{code}" in TEXTS else code
    return f"{words} ({details})" if details else words


def status_words(status: str, lang: str) -> str:
    return t(f"reward_{status}", lang) if f"reward_{status}" in TEXTS else status


@router.get("/rewards", response_class=HTMLResponse)
async def rewards_page(request: Request) -> Response:
    ws = workspace_of(request)
    status = request.query_params.get("status") or "review"
    if status not in reward_views.STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(reward_views.STATUSES)}",
                           zh=f"状态须为以下之一:{', '.join(reward_views.STATUSES)}")
    rows = await run_in_threadpool(lambda: reward_views.list_rewards(ws, status=status, limit=200))
    overview = await run_in_threadpool(reward_views.overview, ws)
    programs = await run_in_threadpool(reward_views.program_details, ws)
    return page(request, "console_rewards.html", rows=rows, status=status, statuses=reward_views.STATUSES,
                overview=overview, programs=programs, reason_words=reason_words, status_words=status_words,
                notice=request.query_params.get("notice", ""), query_without_lang=_query_without_lang(request))


@router.post("/rewards/{reward_id}/{action}")
async def reward_action(request: Request, reward_id: RowId, action: str) -> Response:
    form = await _form(request)
    if action not in ("approve", "reject"):
        raise InvalidInput(f"unknown reward action {action!r} (approve, reject)",
                           zh=f"未知的奖励操作 {action!r}(approve、reject)")
    note = form.get("note", "").strip()[:500] or None
    who = principal_of(request).actor
    status = await run_in_threadpool(lambda: engine.decide(workspace_of(request), reward_id,
                                                           approve=action == "approve", by=who, note=note))
    request.state.audit_detail = {"before": "review", "after": status}
    return _back("/console/rewards", {**form, "notice": f"{reward_id}:{status}"}, "status", "notice")


@router.get("/referrals", response_class=HTMLResponse)
async def referrals_page(request: Request) -> Response:
    query = request.query_params
    by = query.get("by") or "member"
    start = parse_day(query.get("from"), "from")
    end = parse_day(query.get("to"), "to")
    rows = await run_in_threadpool(lambda: referral_stats.leaderboard(workspace_of(request), by=by, start=start,
                                                                      end=end, limit=100))
    return page(request, "console_referrals.html", rows=rows, by=by, start=start or "", end=end or "",
                query_without_lang=_query_without_lang(request))
