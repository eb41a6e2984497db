"""Server-rendered pages: one Jinja2 environment, the language of each request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from qunflow.i18n import fmt_number, fmt_percent, negotiate, t
from qunflow.web.auth import page_rule

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@pass_context
def csrf_field(context: Any) -> Markup:
    """The hidden CSRF input every console form carries (the session's token)."""
    token = getattr(context["request"].state, "csrf", "")
    return Markup(f'<input type="hidden" name="csrf" value="{escape(token)}">')


@pass_context
def may_open(context: Any, path: str) -> bool:
    """Whether the logged-in user may open a console page (the navigation shows only those)."""
    principal = getattr(context["request"].state, "principal", None)
    if principal is None:
        return False
    permission, by_group = page_rule(path)
    if path == "/console":  # the dashboard link, for those who may see numbers (it sends the others on)
        permission = "metrics:read"
    return principal.can(permission) and (principal.groups is None or by_group)


templates.env.globals.update(t=t, fmt_number=fmt_number, fmt_percent=fmt_percent, csrf_field=csrf_field,
                             may_open=may_open)


def lang_of(request: Request) -> str:
    ws = request.app.state.workspace
    return negotiate(request.headers.get("accept-language"), ws.settings.language,
                     request.query_params.get("lang"))


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("lang", lang_of(request))
    context.setdefault("principal", getattr(request.state, "principal", None))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def message_page(request: Request, title_key: str, text_key: str | None = None, *, status_code: int = 200,
                 action_key: str | None = None) -> HTMLResponse:
    lang = lang_of(request)
    return page(request, "message.html", status_code, lang=lang, title=t(title_key, lang),
                text=t(text_key, lang) if text_key else "", action=t(action_key, lang) if action_key else "")
