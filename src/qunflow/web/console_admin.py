"""The console's login and logout (open to all), and the audit log page (owners)."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.schedule import parse_day
from qunflow.errors import InvalidInput, TooManyAttempts, Unauthorized
from qunflow.i18n import t
from qunflow.services import audit
from qunflow.services.users import SESSION_IDLE, log_in, log_out
from qunflow.web.auth import LOGIN_PATH, SESSION_COOKIE, check_csrf, console_session, safe_next
from qunflow.web.deps import workspace_of
from qunflow.web.guard import client_ip
from qunflow.web.render import lang_of, page

public = APIRouter(prefix="/console", include_in_schema=False)  # the login itself needs no session
router = APIRouter(prefix="/console", include_in_schema=False)  # behind console_access, as every page
LOGIN_CSRF_COOKIE = "qf_login_csrf"  # double-submit token of the login form (no session exists yet)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or workspace_of(request).settings.public_url.startswith("https://")


def _login_page(request: Request, *, status_code: int = 200, error: str = "", name: str = "",
                next_path: str = "/console") -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", status_code, login_csrf=token, error=error, user_name=name, next=next_path)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path=LOGIN_PATH, max_age=3600)
    return response


@public.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _login_page(request, next_path=safe_next(request.query_params.get("next")))


@public.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}  # size: web.limits caps it
    cookie, lang = request.cookies.get(LOGIN_CSRF_COOKIE, ""), lang_of(request)
    if not cookie or not secrets.compare_digest(form.get("csrf", "").encode(), cookie.encode()):
        return _login_page(request, status_code=403, error=t("login_expired", lang))
    ws = workspace_of(request)
    name, next_path = form.get("name", "").strip()[:64], safe_next(form.get("next"))
    address = client_ip(request, ws.settings) or "?"  # behind a trusted proxy: the client, not the proxy
    try:
        session = await run_in_threadpool(log_in, ws.engine, name, form.get("password", ""), address, ws.clock())
    except (Unauthorized, TooManyAttempts) as exc:
        await run_in_threadpool(lambda: audit.record(ws.engine, actor=f"user:{name or '?'}", via="console",
                                                     action="login", outcome="refused", at=ws.clock()))
        message = (t("login_throttled", lang, minutes=exc.retry_after // 60 + 1) if isinstance(exc, TooManyAttempts)
                   else t("login_wrong", lang))
        response = _login_page(request, status_code=exc.http_status, error=message, name=name,
                               next_path=next_path)
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    await run_in_threadpool(lambda: audit.record(ws.engine, actor=session.principal.actor, via="console",
                                                 action="login", at=ws.clock()))
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="lax", secure=_secure(request),
                        path="/", max_age=int(SESSION_IDLE.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@public.post("/logout")
async def logout(request: Request) -> Response:
    session = await run_in_threadpool(console_session, request)
    if session is not None:
        await check_csrf(request, session.csrf)
        await run_in_threadpool(log_out, workspace_of(request).engine, session.id)
        request.state.principal = session.principal  # the audit row names who logged out
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    query = request.query_params
    start, end = parse_day(query.get("from"), "from"), parse_day(query.get("to"), "to")
    via = query.get("via") or None
    if via not in (None, "console", "api", "cli"):
        raise InvalidInput("via must be console, api or cli", zh="来源须为 console、api 或 cli")
    ws = workspace_of(request)

    def utc(day: date) -> datetime:  # the filter's days are local days, as every time on the page
        return datetime.combine(day, time.min, ws.settings.zone).astimezone(UTC).replace(tzinfo=None)

    rows = await run_in_threadpool(lambda: audit.entries(
        ws.engine, actor=query.get("actor") or None, action=query.get("action") or None,
        via=via, since=utc(start) if start else None, until=utc(end + timedelta(days=1)) if end else None,
        limit=500))
    filters = {"actor": query.get("actor", ""), "action": query.get("action", ""), "via": via or "",
               "from": query.get("from", ""), "to": query.get("to", "")}
    return page(request, "console_audit.html", rows=rows, filters=filters,
                query_without_lang="&".join(f"{k}={v}" for k, v in filters.items() if v))

