"""Public pages (C1-C3): landing and gate per entry point, QR codes, personal task links, webhooks."""

from __future__ import annotations

import base64
import io
import re
import uuid

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.gate import CONSENT_TEXT_VERSION, GateErrors
from qunflow.errors import NotFound
from qunflow.services.catalog import entry_info
from qunflow.services.fraud import RawSignals
from qunflow.services.inbound import receive
from qunflow.services.join import NoRoom, entry_invite, record_landing, submit_gate
from qunflow.services.privacy import member_from_token
from qunflow.services.referrals import landing_path
from qunflow.services.welcome import complete_task
from qunflow.web.deps import workspace_of
from qunflow.web.render import lang_of, message_page, page

router = APIRouter(include_in_schema=False)
VISITOR_COOKIE = "qf_vid"
ONE_YEAR = 365 * 24 * 3600


def visitor_id(request: Request) -> tuple[str, bool]:
    """The visitor cookie, or a new id (True when it must be set)."""
    current = request.cookies.get(VISITOR_COOKIE, "")
    if 8 <= len(current) <= 64 and current.isalnum():
        return current, False
    return uuid.uuid4().hex, True


def _set_visitor(response: Response, vid: str, new: bool, request: Request | None = None) -> Response:
    if new:
        response.set_cookie(VISITOR_COOKIE, vid, max_age=ONE_YEAR, httponly=True, samesite="lax")
    if request is not None:
        device, new_device = device_id(request)
        if new_device:
            response.set_cookie(DEVICE_COOKIE, device, max_age=5 * ONE_YEAR, httponly=True, samesite="lax")
    return response


DEVICE_COOKIE = "qf_dev"  # a device id for the fraud checks (kept only as a keyed hash), set after consent


def device_id(request: Request) -> tuple[str, bool]:
    """The device cookie, or the id this request will set (True when it must be set)."""
    current = request.cookies.get(DEVICE_COOKIE, "")
    if 16 <= len(current) <= 64 and current.isalnum():
        return current, False
    new: str | None = getattr(request.state, "qf_new_device", None)
    if new is None:  # one id per request: the signals and the cookie must agree
        new = request.state.qf_new_device = uuid.uuid4().hex
    return new, True


def client_ip(request: Request, trust_proxy: bool) -> str | None:
    """The client's IP: the first X-Forwarded-For hop when trust_proxy is on, else the peer as uvicorn sees
    it (uvicorn already takes X-Forwarded-For from a proxy on 127.0.0.1, its forwarded_allow_ips)."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if trust_proxy and forwarded.strip():
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else None


def join_signals_of(request: Request, form: dict[str, str], trust_proxy: bool) -> RawSignals:
    """What the gate sees of a visitor, for the fraud checks (hashed before it is stored)."""
    return RawSignals(device=device_id(request)[0], ip=client_ip(request, trust_proxy),
                      user_agent=request.headers.get("user-agent"),
                      phone=form.get("phone") or form.get("mobile"), email=form.get("email"))


REFERRER = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def referrer_of(request: Request) -> str | None:
    """The `ref` of a referral link: a member id, or nothing when it is not one."""
    ref = request.query_params.get("ref", "")
    return ref if REFERRER.match(ref) else None


def qr_image(data: str, kind: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind=kind, scale=8, border=2)
    return buffer.getvalue()


@router.get("/j/{code}", response_class=HTMLResponse)
def landing(code: str, request: Request) -> Response:
    ws = workspace_of(request)
    vid, new = visitor_id(request)
    try:
        entry = record_landing(ws, code, vid, dict(request.query_params), referrer_of(request))
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    if entry.gate is None:  # no gate: the entry point's own tracked link, straight away
        return _set_visitor(_entry_link_page(request, code), vid, new)
    response = page(request, "landing.html", entry=entry, form={}, errors={},
                    ref=referrer_of(request), consent_version=CONSENT_TEXT_VERSION)
    return _set_visitor(response, vid, new)  # the device cookie waits for the gate's consent


def _entry_link_page(request: Request, code: str) -> Response:
    try:
        entry, group, link = entry_invite(workspace_of(request), code)
    except NoRoom:
        return message_page(request, "full_title", "full_body", status_code=409)
    qr = base64.b64encode(qr_image(link.qr_url or link.url, "svg")).decode()
    return page(request, "entry_link.html", entry=entry, group=group, link=link, qr=qr)


@router.post("/j/{code}", response_class=HTMLResponse)
async def gate_submit(code: str, request: Request) -> Response:
    ws = workspace_of(request)
    vid, new = visitor_id(request)
    form = {k: str(v)[:500] for k, v in (await request.form()).items()}
    ref = referrer_of(request)
    try:
        ticket = await run_in_threadpool(submit_gate, ws, code, vid, form, locale=lang_of(request), referrer_id=ref,
                                         signals=join_signals_of(request, form, ws.settings.trust_proxy))
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    except GateErrors as exc:
        with ws.engine.connect() as conn:
            entry = entry_info(conn, code)
        return page(request, "landing.html", 422, entry=entry, form=form, errors=exc.errors, ref=ref,
                    consent_version=CONSENT_TEXT_VERSION)
    except NoRoom:
        return message_page(request, "full_title", "full_body", status_code=409)
    qr = base64.b64encode(qr_image(ticket.invite_url, "svg")).decode()
    return _set_visitor(page(request, "ticket.html", ticket=ticket, qr=qr), vid, new, request)


@router.get("/j/{code}/qr.{ext}")
def entry_qr(code: str, ext: str, request: Request) -> Response:
    """The entry point's QR code (SVG or PNG) pointing at its landing page."""
    ws = workspace_of(request)
    if ext not in ("svg", "png"):
        raise NotFound("QR codes come as .svg or .png")
    with ws.engine.connect() as conn:
        entry_info(conn, code)
    url = f"{ws.settings.public_url.rstrip('/')}/j/{code}"
    media = "image/svg+xml" if ext == "svg" else "image/png"
    return Response(qr_image(url, ext), media_type=media)


@router.get("/m/{token}/task/{task}", response_class=HTMLResponse)
def task_page(token: str, task: str, request: Request) -> Response:
    member_from_token(workspace_of(request), token)
    return message_page(request, "task_title", action_key="task_confirm")


@router.post("/m/{token}/task/{task}", response_class=HTMLResponse)
def task_done(token: str, task: str, request: Request) -> Response:
    ws = workspace_of(request)
    complete_task(ws, member_from_token(ws, token), task)
    return message_page(request, "task_title", "task_done")


@router.get("/rules", response_class=HTMLResponse)
def rules(request: Request) -> Response:
    return message_page(request, "rules_title", "rules_body")


@router.api_route("/hooks/{platform}", methods=["GET", "POST"])
async def platform_hook(platform: str, request: Request) -> Response:
    """Inbound calls from a chat platform: verified and parsed by its connector (a bad signature or secret
    is a 401 and changes nothing), dispatched, and answered the way the platform expects."""
    ws = workspace_of(request)
    if platform not in ws.connectors and platform not in ws.connected_platforms():
        raise NotFound(f"{platform!r} is not connected in this workspace (see `qunflow connect --help`)")
    body = await request.body()  # at most limits.HOOK_CAP: the middleware cut off anything larger
    inbound = await run_in_threadpool(receive, ws, platform, request.method, dict(request.query_params),
                                      dict(request.headers), body)
    return Response(inbound.reply, media_type=inbound.media_type)


@router.get("/r/{code}")
def referral_redirect(code: str, request: Request) -> Response:
    """A member's referral link: on to the landing page with `?ref=<member>` (302), 404 page if unknown."""
    try:
        target = landing_path(workspace_of(request), code)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    lang = request.query_params.get("lang")
    return RedirectResponse(target + (f"&lang={lang}" if lang in ("zh", "en") else ""), status_code=302)


@router.get("/m/{token}/poster.png")
def own_poster(token: str, request: Request) -> Response:
    """A member's own referral poster, from their personal link (?lang=zh|en, default: their language)."""
    from qunflow.services.posters import render_poster

    ws = workspace_of(request)
    png = render_poster(ws, member_from_token(ws, token), request.query_params.get("lang") or None)
    return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=300"})
