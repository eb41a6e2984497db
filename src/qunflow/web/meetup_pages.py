"""S4 event pages for members: the public page of an event (`/e/<key>`), the member's own sign-up page
(`/m/<token>/event/<key>`) and check-in page (`.../checkin`, which gives the day-of coupon).

A GET never signs up or checks in (chat apps open links to preview them); the POSTs do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from qunflow.errors import Conflict, NotFound
from qunflow.i18n import t
from qunflow.services import meetups
from qunflow.services.privacy import member_from_token, member_link_token
from qunflow.web.deps import workspace_of
from qunflow.web.guard import VISITOR_COOKIE, unless_refused
from qunflow.web.render import lang_of, message_page, page
from qunflow.web.tasks_pages import local_time

router = APIRouter(include_in_schema=False)


def _page(request: Request, meetup: meetups.Meetup, mode: str, status: int = 200, **extra: Any) -> Response:
    ws = workspace_of(request)
    coupon = extra.get("coupon")
    if coupon is not None:
        extra.update(coupon_value=format(coupon.value.normalize(), "f"),
                     coupon_expires=local_time(coupon.expires_at, ws.settings.zone))
    return page(request, "meetup.html", status, meetup=meetup, mode=mode,
                when=local_time(meetup.starts_at, ws.settings.zone), **extra)


def _public(request: Request, key: str) -> Response:
    ws = workspace_of(request)
    try:
        meetup = meetups.find(ws, key)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    visitor = request.cookies.get(VISITOR_COOKIE, "")
    member_id = meetups.member_of_visitor(ws, visitor) if 8 <= len(visitor) <= 64 and visitor.isalnum() else None
    if member_id is not None:  # the browser that passed the gate: straight to the member's own page
        return RedirectResponse(f"/m/{member_link_token(ws, member_id)}/event/{key}", status_code=303)
    return _page(request, meetup, "public")


def _signup(request: Request, token: str, key: str, act: bool) -> Response:
    ws = workspace_of(request)
    member_id = member_from_token(ws, token)
    try:
        meetup = meetups.find(ws, key)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    lang = lang_of(request)
    now = ws.clock()
    error, status = "", 200
    if act:
        try:
            meetups.sign_up(ws, key, member_id)
        except Conflict:
            error, status = t("event_closed", lang), 409
    signed_up, _attended = meetups.member_status(ws, key, member_id)
    is_open = not meetup.archived and now <= meetup.ends_at
    return _page(request, meetup, "signup", status, signed_up=signed_up, open=is_open, error=error)


def _checkin(request: Request, token: str, key: str, act: bool) -> Response:
    ws = workspace_of(request)
    member_id = member_from_token(ws, token)
    try:
        meetup = meetups.find(ws, key)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    if act:
        try:
            meetups.check_in(ws, key, member_id, via="link")
        except Conflict:
            return _page(request, meetup, "checkin", 409, open=False)
    coupon = meetups.day_of_coupon(ws, key, member_id)
    return _page(request, meetup, "checkin", open=not meetup.archived and meetup.checkin_open(ws.clock()),
                 coupon=coupon)


@router.get("/e/{key}", response_class=HTMLResponse)
async def event_public(key: str, request: Request) -> Response:
    return await unless_refused(request, _public, request, key)


@router.get("/m/{token}/event/{key}", response_class=HTMLResponse)
async def event_page(token: str, key: str, request: Request) -> Response:
    return await unless_refused(request, _signup, request, token, key, False)


@router.post("/m/{token}/event/{key}", response_class=HTMLResponse)
async def event_sign_up(token: str, key: str, request: Request) -> Response:
    return await unless_refused(request, _signup, request, token, key, True)


@router.get("/m/{token}/event/{key}/checkin", response_class=HTMLResponse)
async def event_checkin_page(token: str, key: str, request: Request) -> Response:
    return await unless_refused(request, _checkin, request, token, key, False)


@router.post("/m/{token}/event/{key}/checkin", response_class=HTMLResponse)
async def event_check_in(token: str, key: str, request: Request) -> Response:
    return await unless_refused(request, _checkin, request, token, key, True)
