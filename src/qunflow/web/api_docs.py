"""The API's documentation page, served from this machine: Swagger UI at /docs, its script and style from
the fastapi-offline package (no CDN, so it works offline and tells no one of the visit), and no inline
script (it starts from static/swagger-init.js). No ReDoc: its page loads its logo from a CDN."""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/static-docs"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    spec = escape(f"{root}{request.app.openapi_url}")
    return HTMLResponse(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(request.app.title)} API</title>
<link rel="stylesheet" href="{root}{ASSETS_URL}/swagger-ui.css">
<link rel="icon" href="{root}{ASSETS_URL}/favicon.png"></head>
<body><div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{root}{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="{root}/static/swagger-init.js"></script></body></html>""")


def install(app: FastAPI) -> None:
    """Serve /docs (create the app with docs_url=None and redoc_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS)), name="docs-assets")
    app.include_router(router)
