"""The FastAPI application: public pages, JSON API and console, over one workspace."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qunflow import __version__
from qunflow.errors import QunflowError
from qunflow.store.db import is_busy
from qunflow.web import answers, api_docs
from qunflow.web.auth import LoginRequired, SiteGuard, console_access, login_redirect_target
from qunflow.web.hooks import HookPath
from qunflow.web.limits import BodyLimit
from qunflow.workspace import Workspace


def create_app(workspace: Workspace) -> FastAPI:
    app = FastAPI(title="qunflow", version=__version__, docs_url=None, redoc_url=None,
                  description="Community-distribution chain: entry points, joins, events, metrics.")
    app.state.workspace = workspace
    app.add_middleware(HookPath, workspace=workspace)  # /hooks/{platform}, inside the two below
    app.add_middleware(BodyLimit)  # bodies over their route's cap are refused before they are read

    app.add_middleware(SiteGuard, workspace=workspace)

    @app.exception_handler(QunflowError)
    async def _qunflow_error(request: Request, exc: QunflowError) -> Response:
        if request.url.path.startswith("/console") and "text/html" in request.headers.get("accept", ""):
            from qunflow.web.render import lang_of, page

            return page(request, "message.html", exc.http_status, title=str(exc.http_status),
                        text=exc.text(lang_of(request)))
        return answers.qunflow_error(exc)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(login_redirect_target(request), status_code=303)
        return JSONResponse({"error": "log in first: this console request has no valid session"}, status_code=401)

    @app.exception_handler(DBAPIError)
    async def _database_busy(_request: Request, exc: DBAPIError) -> JSONResponse:
        if not is_busy(exc):
            raise exc
        return answers.database_busy()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", []))
        return JSONResponse({"error": f"{where}: {first.get('msg')}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        # The framework's own refusals (a body that is not JSON, an unknown path) in the API's error shape.
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, _exc: DataError) -> JSONResponse:
        return answers.data_error()

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    from fastapi.staticfiles import StaticFiles

    from qunflow.web import (
        api,
        api_automation,
        api_members,
        api_metrics,
        api_referrals,
        api_rewards,
        console_admin,
        meetup_pages,
        public,
        sandbox_pages,
        tasks_pages,
    )

    api_docs.install(app)  # /docs and /redoc with their assets from this machine, not a CDN
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    for module in (api, api_metrics, api_automation, api_rewards, api_referrals, api_members, public, tasks_pages,
                   meetup_pages, sandbox_pages):
        app.include_router(module.router)
    # Every console page is behind the login and the permission table of web.auth; the login page is not.
    app.include_router(console_admin.public)
    pages = APIRouter(dependencies=[Depends(console_access)])
    for router in console_routers():
        pages.include_router(router)
    app.include_router(pages)
    return app


def console_routers() -> list[APIRouter]:
    """The routers of the console's pages: each is served only behind web.auth.console_access."""
    from qunflow.web import (
        console,
        console_admin,
        console_at_risk,
        console_automation,
        console_experiments,
        console_gates,
        console_meetups,
        console_members,
        console_plan,
        console_polls,
        console_rewards,
        console_sends,
        console_setup,
    )

    return [console.router, console_automation.router, console_rewards.router, console_members.router,
            console_meetups.router, console_experiments.router, console_gates.router, console_admin.router,
            console_sends.router, console_setup.router, console_at_risk.router, console_plan.router,
            console_polls.router]
