"""Server-rendered pages: one Jinja2 environment, the language of each request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from qunflow.i18n import fmt_number, fmt_percent, negotiate, t

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals.update(t=t, fmt_number=fmt_number, fmt_percent=fmt_percent)


def lang_of(request: Request) -> str:
    ws = request.app.state.workspace
    return negotiate(request.headers.get("accept-language"), ws.settings.language,
                     request.query_params.get("lang"))


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("lang", lang_of(request))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def message_page(request: Request, title_key: str, text_key: str | None = None, *, status_code: int = 200,
                 action_key: str | None = None) -> HTMLResponse:
    lang = lang_of(request)
    return page(request, "message.html", status_code, lang=lang, title=t(title_key, lang),
                text=t(text_key, lang) if text_key else "", action=t(action_key, lang) if action_key else "")
