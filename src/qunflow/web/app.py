"""The FastAPI application: public pages, JSON API and console, over one workspace."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qunflow import __version__
from qunflow.errors import QunflowError
from qunflow.web import api_docs
from qunflow.web.limits import BodyLimit
from qunflow.workspace import Workspace


def create_app(workspace: Workspace) -> FastAPI:
    app = FastAPI(title="qunflow", version=__version__, docs_url=None, redoc_url=None,
                  description="Community-distribution chain: entry points, joins, events, metrics.")
    app.state.workspace = workspace
    app.add_middleware(BodyLimit)  # bodies over their route's cap are refused before they are read

    @app.exception_handler(QunflowError)
    async def _qunflow_error(_request: Request, exc: QunflowError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.http_status)

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
        # The database refused a value the parameter checks let through (a NUL in text on PostgreSQL,
        # a number past a column's range): the caller's input, so a 400, never a 500.
        return JSONResponse({"error": "a value in the request cannot be stored or searched for (out of range, "
                                      "or a NUL character)"}, status_code=400)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    from fastapi.staticfiles import StaticFiles

    from qunflow.web import api, api_automation, api_metrics, console, console_automation, public, sandbox_pages

    api_docs.install(app)  # /docs and /redoc with their assets from this machine, not a CDN
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    for module in (api, api_metrics, api_automation, public, console, console_automation, sandbox_pages):
        app.include_router(module.router)
    from qunflow.web import api_referrals, api_rewards, console_rewards  # incentives (issue 5)

    for module in (api_rewards, console_rewards, api_referrals):
        app.include_router(module.router)
    return app
