"""Console pages for S4 events: the list with sign-ups, attendance and orders per event, a form that creates
an event with its date, and one event's page with who signed up and checked in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.errors import InvalidInput
from qunflow.services import meetups
from qunflow.web.console_automation import _back, _form, _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.render import page
from qunflow.workspace import Workspace

router = APIRouter(prefix="/console", include_in_schema=False)


def _local(ws: Workspace, iso: str | None) -> str:
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso.removesuffix("Z")).replace(tzinfo=UTC).astimezone(ws.settings.zone)
    return f"{moment:%Y-%m-%d %H:%M}"


@router.get("/meetups", response_class=HTMLResponse)
async def meetups_page(request: Request) -> Response:
    ws = workspace_of(request)
    rows = await run_in_threadpool(meetups.list_meetups, ws)
    return page(request, "console_meetups.html", rows=rows, local=lambda iso: _local(ws, iso),
                zone=ws.settings.timezone, notice=request.query_params.get("notice", ""),
                query_without_lang=_query_without_lang(request))


def _int(form: dict[str, str], name: str, default: int | None) -> int | None:
    value = form.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, got {value[:20]!r}",
                           zh=f"{name} 须为整数,收到的是 {value[:20]!r}") from None


@router.post("/meetups")
async def meetup_create(request: Request) -> Response:
    form = await _form(request)
    ws = workspace_of(request)
    try:
        local = datetime.fromisoformat(form.get("date", "").strip())
        value = Decimal(form.get("coupon_value", "").strip() or "20")
    except (ValueError, InvalidOperation):
        raise InvalidInput("give the start as a date and time, and the coupon value as a number",
                           zh="开始时间须为日期和时间,优惠券面额须为数字") from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ws.settings.zone)
    if not value.is_finite():
        raise InvalidInput("the coupon value must be a number", zh="优惠券面额须为数字")
    starts_at = local.astimezone(UTC).replace(tzinfo=None)
    await run_in_threadpool(lambda: meetups.add_meetup(
        ws, form.get("key", "").strip(), title_zh=form.get("title", ""),
        title_en=form.get("title_en", "").strip() or None,
        starts_at=starts_at, duration_minutes=_int(form, "duration", 60) or 60,
        checkin_keyword=form.get("keyword", "").strip() or None, coupon_value=value,
        coupon_hours=_int(form, "coupon_hours", 24) or 24, capacity=_int(form, "capacity", None)))
    return _back("/console/meetups", {**form, "notice": "created"}, "notice")


@router.get("/meetups/{key}", response_class=HTMLResponse)
async def meetup_page(request: Request, key: str) -> Response:
    ws = workspace_of(request)
    stats = await run_in_threadpool(meetups.meetup_stats, ws, key)
    people = await run_in_threadpool(meetups.signup_list, ws, key)
    return page(request, "console_meetup.html", m=stats, people=people, local=lambda iso: _local(ws, iso),
                zone=ws.settings.timezone, query_without_lang=_query_without_lang(request))
