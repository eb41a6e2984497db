"""Who is calling, and may they: console sessions and API tokens, one permission table for the console,
CSRF tokens on console forms, the Host check and the security headers, and the audit trail of every
request that changes something.

The console: every page under /console except the login needs a session (the `qf_session` cookie); an
anonymous GET is sent to the login page, anything else gets 401. CONSOLE_PAGES maps each page to the
permission it needs (domain.access); a page missing from the table is for owners only. Pages that cannot
narrow what they show to a user's groups are refused to users limited to groups.
The API: each route names the scope it needs with `Depends(scope("..."))`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qunflow.domain.access import Principal
from qunflow.errors import Forbidden, Unauthorized
from qunflow.i18n import role_name
from qunflow.services import audit
from qunflow.services.tokens import check_token
from qunflow.services.users import Session, session_of
from qunflow.store.db import retry_busy
from qunflow.web.deps import workspace_of
from qunflow.workspace import Workspace

log = logging.getLogger(__name__)
SESSION_COOKIE = "qf_session"
LOGIN_PATH = "/console/login"

# (path prefix, permission, shows only the user's groups). The longest matching prefix wins; "/console"
# itself is the dashboard, open to every user (it sends those without metrics:read on to the inbox).
# A console path matching nothing needs users:manage (owners).
CONSOLE_PAGES: tuple[tuple[str, str, bool], ...] = (
    ("/console", "", True),
    ("/console/reports", "metrics:read", False),
    ("/console/entry-points", "metrics:read", False),
    ("/console/referrals", "metrics:read", False),
    ("/console/plan", "metrics:read", False),
    ("/console/doctor", "config:write", False),  # it names the set-up's gaps: for those who can fix them
    ("/console/inbox", "inbox:use", True),
    ("/console/at-risk", "inbox:use", True),  # advisors act on the slipping members of their groups
    ("/console/members", "members:read", True),
    ("/console/rewards", "rewards:decide", False),
    ("/console/automation", "automation:manage", False),
    ("/console/sends", "automation:manage", False),  # targets are people's platform ids: not for analysts
    ("/console/playbooks", "automation:manage", False),
    ("/console/meetups", "automation:manage", False),
    ("/console/polls", "automation:manage", False),  # linked from the events page
    ("/console/experiments", "metrics:read", False),
    ("/console/sandbox", "config:write", False),
    ("/console/setup", "config:write", False),
    ("/console/gates", "config:write", False),
    ("/console/texts", "config:write", False),
    ("/console/audit", "audit:read", False),
)
OWNERS_ONLY = ("users:manage", False)


def page_rule(path: str) -> tuple[str, bool]:
    """The permission a console path needs, and whether the page narrows itself to a user's groups."""
    best: tuple[str, str, bool] | None = None
    for prefix, permission, by_group in CONSOLE_PAGES:
        exact_only = prefix == "/console"
        matches = path.rstrip("/") == prefix if exact_only else (path == prefix or path.startswith(prefix + "/"))
        if matches and (best is None or len(prefix) > len(best[0])):
            best = (prefix, permission, by_group)
    return (best[1], best[2]) if best else OWNERS_ONLY


def principal_of(request: Request) -> Principal:
    """The caller authenticated by a dependency of this route (console session or API token)."""
    found = getattr(request.state, "principal", None)
    if found is None:
        raise Unauthorized("not logged in", zh="尚未登录")
    return found  # type: ignore[no-any-return]


def narrow_group(principal: Principal, requested: str | None) -> str | None:
    """The group filter a caller limited to groups must use: the one asked for if it is theirs, or their only
    group; anyone else keeps what they asked for."""
    if principal.groups is None:
        return requested
    if requested in principal.groups:
        return requested
    if requested is None and len(principal.groups) == 1:
        return next(iter(principal.groups))
    raise Forbidden(f"you may see only the groups {', '.join(sorted(principal.groups))}: choose one of them "
                    "with the group filter",
                    zh=f"你只能查看这些群:{', '.join(sorted(principal.groups))}。请在群筛选中选择其中一个")


# --- console ---------------------------------------------------------------------------------------------

class LoginRequired(Exception):
    """An anonymous console request: a GET goes to the login page, anything else gets 401."""


def console_session(request: Request) -> Session | None:
    ws = workspace_of(request)
    return session_of(ws.engine, request.cookies.get(SESSION_COOKIE), ws.clock())


async def console_access(request: Request) -> Principal:
    """The dependency of every console page: a session, the page's permission, the form's CSRF token."""
    session = await run_in_threadpool(console_session, request)
    if session is None:
        raise LoginRequired
    principal = session.principal
    request.state.principal = principal
    request.state.csrf = session.csrf
    permission, by_group = page_rule(request.url.path)
    if permission and not principal.can(permission):
        role_zh = role_name(principal.role, "zh") if principal.role else "无"
        raise Forbidden(f"your role ({principal.role}) may not open this page (it needs {permission})",
                        zh=f"你的角色({role_zh})无权打开此页面(需要 {permission} 权限)")
    if principal.groups is not None and not by_group:
        raise Forbidden("this page shows every group; your account is limited to "
                        f"{', '.join(sorted(principal.groups))}",
                        zh=f"此页面显示所有群的数据,而你的账号仅限于:{', '.join(sorted(principal.groups))}")
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, session.csrf)
    return principal


async def check_csrf(request: Request, expected: str) -> None:
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        await request.body()  # kept on the request, so the page's handler can still read its form
        form = await request.form()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("this form has no valid CSRF token: reload the page and send it again",
                        zh="表单缺少有效的 CSRF 令牌:请刷新页面后重新提交")


def login_redirect_target(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?next={quote(target, safe='')}"


def safe_next(value: str | None) -> str:
    """Only a console path of this site (no scheme, no host, no //) may be the target after login."""
    if not value or not value.startswith("/console") or value.startswith("//") or "\\" in value:
        return "/console"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/console"


# --- API -------------------------------------------------------------------------------------------------

# Declares the API's security scheme in the OpenAPI schema (the /docs "Authorize" button); the checks and
# their messages are check_token's and scope's, so auto_error is off.
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token from `qunflow token create NAME --scope S` "
                                "(Authorization: Bearer <token>); each route names the scope it needs.")


def scope(needed: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's API token, which must carry the scope `needed`."""

    async def check(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        token = credentials.credentials if credentials is not None else None
        principal = await run_in_threadpool(check_token, workspace_of(request).engine, token)
        request.state.principal = principal
        if not principal.can(needed):
            raise Forbidden(f"the token {principal.name!r} lacks the scope {needed}: create one with "
                            f"`qunflow token create NAME --scope {needed}`",
                            zh=f"令牌 {principal.name!r} 缺少 {needed} 作用域:请用 "
                               f"`qunflow token create NAME --scope {needed}` 创建一个")
        return principal

    check.__name__ = f"scope_{needed.replace(':', '_')}"
    return check


# --- every request: Host check, security headers, audit of changes -------------------------------------------

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def host_name(value: str) -> str:
    """'example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class SiteGuard:
    """ASGI middleware: refuses a Host this install does not serve (DNS rebinding), adds the security
    headers to every answer, and writes the audit row of every state-changing console or API request."""

    def __init__(self, app: ASGIApp, workspace: Workspace) -> None:
        self.app, self.workspace = app, workspace
        self.https = workspace.settings.public_url.lower().startswith("https://")
        extra = workspace.settings.allowed_hosts
        self.hosts = LOOPBACK_HOSTS | {host_name(urlsplit(workspace.settings.public_url).netloc)} | {
            host_name(h) for h in extra}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            await _plain(send, 400, f"this server does not answer for the host {host!r}: set public_url (or "
                                    "allowed_hosts) in qunflow.toml to the address people use")
            return
        audited = scope["method"] not in ("GET", "HEAD", "OPTIONS") and _audited(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"same-origin")]
                if not scope["path"].startswith(("/docs", "/redoc")):
                    extra.append((b"content-security-policy", CSP.encode()))
                if self.https:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = [*message.get("headers", []), *extra]
                if audited:  # recorded before the caller hears the outcome
                    await self._audit(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if audited:
                await self._audit(scope, 500)
            raise

    async def _audit(self, scope: Scope, status: int) -> None:
        try:
            await run_in_threadpool(retry_busy, lambda: _audit_request(self.workspace, scope, status))
        except Exception as exc:  # noqa: BLE001 - never turn an answer into an error; say so without personal data
            log.error("audit: could not record %s %s (%s)", scope["method"], scope["path"], type(exc).__name__)


def _audited(path: str) -> bool:
    """Operator actions: console forms and API calls, except the login (audited itself) and event ingestion."""
    return (path.startswith("/console/") and path != LOGIN_PATH) or (
        path.startswith("/api/") and path != "/api/v1/events")


def _audit_request(ws: Workspace, scope: Scope, status: int) -> None:
    state = scope.get("state") or {}
    principal: Principal | None = state.get("principal")
    if principal is None:
        return  # refused before anyone was known: nothing an operator did
    route = scope.get("route")
    template = str(getattr(route, "path", None) or scope["path"])
    params = scope.get("path_params") or {}
    outcome = "ok" if status < 400 else ("failed" if status >= 500 else "refused")
    audit.record(ws.engine, actor=principal.actor, via="console" if template.startswith("/console") else "api",
                 action=f"{scope['method']} {template}", target=" ".join(f"{k}={v}" for k, v in params.items()) or None,
                 outcome=outcome, detail=state.get("audit_detail"), at=ws.clock())


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
