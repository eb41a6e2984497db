"""Public pages (C1-C3): landing and gate per entry point, QR codes, personal task links (the platforms'
webhooks are web/hooks.py)."""

from __future__ import annotations

import base64
import io
import re
import uuid

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.gate import CONSENT_TEXT_VERSION, ORDER_FIELD, GateErrors
from qunflow.errors import InvalidInput, NotFound
from qunflow.services.catalog import EntryClosed, EntryInfo, entry_info
from qunflow.services.fraud import RawSignals
from qunflow.services.gate_guard import new_challenge
from qunflow.services.invites import referral_offer
from qunflow.services.join import NoRoom, Waitlisted, entry_invite, join_message, record_landing, submit_gate
from qunflow.services.page_texts import texts_for
from qunflow.services.privacy import member_from_token
from qunflow.services.referrals import landing_path
from qunflow.settings import Settings
from qunflow.web.deps import workspace_of
from qunflow.web.guard import DEVICE_COOKIE, VISITOR_COOKIE, client_ip, pass_refusal, view_refusal
from qunflow.web.render import lang_of, message_page, page

router = APIRouter(include_in_schema=False)
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


def device_id(request: Request) -> tuple[str, bool]:
    """The device cookie, or the id this request will set (True when it must be set)."""
    current = request.cookies.get(DEVICE_COOKIE, "")
    if 16 <= len(current) <= 64 and current.isalnum():
        return current, False
    new: str | None = getattr(request.state, "qf_new_device", None)
    if new is None:  # one id per request: the signals and the cookie must agree
        new = request.state.qf_new_device = uuid.uuid4().hex
    return new, True


def join_signals_of(request: Request, form: dict[str, str], settings: Settings) -> RawSignals:
    """What the gate sees of a visitor, for the fraud checks (hashed before it is stored)."""
    return RawSignals(device=device_id(request)[0], ip=client_ip(request, settings),
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


def _stop_word(request: Request) -> str:
    from qunflow.services.consent import words

    return words(workspace_of(request), lang_of(request))["stop"]


def _gate_page(request: Request, entry: EntryInfo, status: int = 200, form: dict[str, str] | None = None,
               errors: dict[str, str] | None = None, challenge_failed: bool = False) -> Response:
    """The landing page's form, with a fresh proof-of-work for the page's solver (web/static/gate-pow.js)."""
    ws = workspace_of(request)
    ref = referrer_of(request)
    return page(request, "landing.html", status, entry=entry, form=form or {}, errors=errors or {},
                ref=ref, consent_version=CONSENT_TEXT_VERSION, texts=texts_for(ws, lang_of(request), entry.code),
                offer=referral_offer(ws, ref, entry.campaign), order_field=ORDER_FIELD,
                challenge=new_challenge(ws), challenge_failed=challenge_failed, stop_word=_stop_word(request))


@router.get("/j/{code}", response_class=HTMLResponse)
async def landing(code: str, request: Request) -> Response:
    refused = await view_refusal(request)
    if refused is not None:
        return refused
    return await run_in_threadpool(_landing, code, request)


def _landing(code: str, request: Request) -> Response:
    ws = workspace_of(request)
    vid, new = visitor_id(request)
    try:
        entry = record_landing(ws, code, vid, dict(request.query_params), referrer_of(request))
    except EntryClosed:
        return _closed_page(request)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    if entry.gate is None:  # no gate: the entry point's own tracked link, straight away
        return _set_visitor(_entry_link_page(request, code, entry), vid, new)
    return _set_visitor(_gate_page(request, entry), vid, new)  # the device cookie waits for the gate's consent


def _closed_page(request: Request) -> Response:
    """An archived entry point: 410, and words saying it is closed (not that it never existed)."""
    return message_page(request, "entry_closed_title", "entry_closed_body", status_code=410)


def _entry_link_page(request: Request, code: str, landing: EntryInfo) -> Response:
    ws = workspace_of(request)
    lang = lang_of(request)
    try:
        entry, group, link = entry_invite(ws, code)
    except EntryClosed:
        return _closed_page(request)
    except NoRoom:  # no group with room along the whole fallback order: truly full
        return message_page(request, "full_title", "full_body", status_code=409)
    qr = base64.b64encode(qr_image(link.qr_url or link.url, "svg")).decode()
    return page(request, "entry_link.html", entry=entry, group=group, link=link, qr=qr,
                join_message=join_message(ws, group.platform, link.label),
                texts=texts_for(ws, lang, code), offer=referral_offer(ws, referrer_of(request), landing.campaign))


@router.post("/j/{code}", response_class=HTMLResponse)
async def gate_submit(code: str, request: Request) -> Response:
    ws = workspace_of(request)
    vid, new = visitor_id(request)
    form = {k: str(v)[:500] for k, v in (await request.form()).items()}
    ref = referrer_of(request)

    def entry() -> EntryInfo:
        with ws.engine.connect() as conn:
            return entry_info(conn, code)

    def challenge_page() -> Response:
        try:
            return _gate_page(request, entry(), 403, form, challenge_failed=True)
        except EntryClosed:
            return _closed_page(request)
        except NotFound:
            return message_page(request, "not_found", status_code=404)

    refused = await pass_refusal(request, form, challenge_page)
    if refused is not None:
        return refused
    try:
        ticket = await run_in_threadpool(submit_gate, ws, code, vid, form, locale=lang_of(request), referrer_id=ref,
                                         signals=join_signals_of(request, form, ws.settings))
    except EntryClosed:
        return _closed_page(request)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    except GateErrors as exc:
        return _gate_page(request, entry(), 422, form, exc.texts(lang_of(request)))
    except Waitlisted as exc:  # every tier along the fallback order is full: the person keeps a place
        token = exc.link.rsplit("/", 1)[1]
        return _set_visitor(RedirectResponse(f"/w/{token}", status_code=303), vid, new, request)
    qr = base64.b64encode(qr_image(ticket.invite_url, "svg")).decode()
    return _set_visitor(page(request, "ticket.html", ticket=ticket, qr=qr), vid, new, request)


@router.get("/j/{code}/qr.{ext}")
def entry_qr(code: str, ext: str, request: Request) -> Response:
    """The entry point's QR code (SVG or PNG) pointing at its landing page."""
    ws = workspace_of(request)
    if ext not in ("svg", "png"):
        raise NotFound("QR codes come as .svg or .png", zh="二维码只有 .svg 和 .png 两种格式")
    with ws.engine.connect() as conn:
        entry_info(conn, code)
    url = f"{ws.settings.public_url.rstrip('/')}/j/{code}"
    media = "image/svg+xml" if ext == "svg" else "image/png"
    return Response(qr_image(url, ext), media_type=media)


def _consent_page(request: Request, token: str, purpose_page: str, done: bool) -> Response:
    """The personal consent pages: a question with one button (GET), the answer recorded (POST)."""
    from qunflow.i18n import t
    from qunflow.services.consent import set_marketing, words

    ws = workspace_of(request)
    member_id = member_from_token(ws, token)
    lang = lang_of(request)
    names = words(ws, lang)
    unsubscribe = purpose_page == "unsubscribe"
    title = t("unsubscribe_title" if unsubscribe else "consent_title", lang)
    if not done:
        return page(request, "message.html", title=title, action=t(
            "unsubscribe_confirm" if unsubscribe else "consent_agree", lang),
            text=t("unsubscribe_ask" if unsubscribe else "consent_ask", lang, **names))
    try:
        set_marketing(ws, member_id, not unsubscribe, "link")
    except NotFound:  # a link of a member since erased
        return message_page(request, "not_found", status_code=404)
    return page(request, "message.html", title=title,
                text=t("unsubscribe_done" if unsubscribe else "consent_done", lang, **names))


@router.get("/m/{token}/unsubscribe", response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request) -> Response:
    """The link in every marketing DM: asks once (a link preview must not unsubscribe), then withdraws."""
    return _consent_page(request, token, "unsubscribe", done=False)


@router.post("/m/{token}/unsubscribe", response_class=HTMLResponse)
def unsubscribe(token: str, request: Request) -> Response:
    return _consent_page(request, token, "unsubscribe", done=True)


@router.get("/m/{token}/consent", response_class=HTMLResponse)
def consent_page(token: str, request: Request) -> Response:
    """The consent ask of a welcome without a gate: agreeing grants the marketing consent."""
    return _consent_page(request, token, "consent", done=False)


@router.post("/m/{token}/consent", response_class=HTMLResponse)
def consent(token: str, request: Request) -> Response:
    return _consent_page(request, token, "consent", done=True)


@router.get("/rules", response_class=HTMLResponse)
def rules(request: Request) -> Response:
    """The group rules and privacy notice: the entry point's own (?e=CODE), else the workspace's, else built in."""
    from qunflow.i18n import t

    lang = lang_of(request)
    code = request.query_params.get("e") or None
    if code is not None and not re.fullmatch(r"[A-Za-z0-9_-]{2,32}", code):
        code = None
    body = texts_for(workspace_of(request), lang, code)["rules"]
    return page(request, "message.html", title=t("rules_title", lang), text=body, preformatted=True)


def _waitlist_page(request: Request, token: str, status: int = 200, error: str | None = None,
                   saved: bool = False) -> Response:
    from qunflow.services.waitlist import status_of

    state = status_of(workspace_of(request), token)
    qr = None
    if state.invite_url:
        qr = base64.b64encode(qr_image(state.qr_url or state.invite_url, "svg")).decode()
    return page(request, "waitlist.html", status, state=state, qr=qr, error=error, saved=saved, token=token)


@router.get("/w/{token}", response_class=HTMLResponse)
async def waitlist_page(token: str, request: Request) -> Response:
    """A waitlisted person's page: their place and a contact form, or their invite once a seat opened."""
    refused = await view_refusal(request)
    if refused is not None:
        return refused
    return await run_in_threadpool(_waitlist_page, request, token)


@router.post("/w/{token}", response_class=HTMLResponse)
async def waitlist_contact(token: str, request: Request) -> Response:
    """Keep a contact to tell them about a seat; the box must be ticked (the `waitlist` consent)."""
    from qunflow.services.waitlist import leave_contact

    refused = await view_refusal(request)
    if refused is not None:
        return refused
    form = await request.form()
    try:
        await run_in_threadpool(leave_contact, workspace_of(request), token, str(form.get("contact") or "")[:500],
                                str(form.get("agree") or "") in ("on", "1", "true", "yes"))
    except InvalidInput as exc:
        return await run_in_threadpool(_waitlist_page, request, token, 422, exc.text(lang_of(request)))
    return await run_in_threadpool(_waitlist_page, request, token, 200, None, True)


@router.get("/r/{code}")
async def referral_redirect(code: str, request: Request) -> Response:
    """A member's referral link: on to the landing page with `?ref=<member>` (302), 404 page if unknown."""
    refused = await view_refusal(request)
    if refused is not None:
        return refused
    try:
        target = await run_in_threadpool(landing_path, workspace_of(request), code)
    except NotFound:
        return message_page(request, "not_found", status_code=404)
    lang = request.query_params.get("lang")
    return RedirectResponse(target + (f"&lang={lang}" if lang in ("zh", "en") else ""), status_code=302)


@router.get("/m/{token}/poster.png")
async def own_poster(token: str, request: Request) -> Response:
    """A member's own referral poster, from their personal link (?lang=zh|en, default: their language)."""
    from qunflow.services.posters import render_poster

    refused = await view_refusal(request)
    if refused is not None:
        return refused
    ws = workspace_of(request)
    png = await run_in_threadpool(render_poster, ws, member_from_token(ws, token),
                                  request.query_params.get("lang") or None)
    return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=300"})
