"""Server-rendered pages: one Jinja2 environment, the language of each request."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from qunflow.i18n import fmt_number, fmt_percent, negotiate, role_name, t, tier_name, word
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


def to_zone(value: datetime | str, zone: Any) -> datetime:
    """A stored time (naive means UTC, as the store keeps it; ISO text is parsed) in the given zone."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


@pass_context
def local_time(context: Any, value: datetime | date | str | None, seconds: bool = False) -> Markup:
    """A time as people read it: in the workspace's reporting zone, to the minute (or second), never with
    microseconds; a <time> element carries the exact UTC instant and the zone's name."""
    if value is None or value == "":
        return Markup("—")
    if isinstance(value, date) and not isinstance(value, datetime):
        return Markup(f'<time datetime="{value.isoformat()}">{value.isoformat()}</time>')
    zone = context["request"].app.state.workspace.settings.zone
    moment = to_zone(value, zone)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    exact = moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return Markup(f'<time datetime="{exact}" title="{escape(str(zone))}">{shown}</time>')


templates.env.globals.update(t=t, fmt_number=fmt_number, fmt_percent=fmt_percent, csrf_field=csrf_field,
                             may_open=may_open, tier_name=tier_name, role_name=role_name, word=word)
templates.env.filters["local_time"] = local_time


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
