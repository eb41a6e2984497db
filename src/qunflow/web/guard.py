"""The gate's guard on the web side (issue 11): the client's IP, 429 pages, and the challenge on a gate post.

The rules are in domain/gate_guard.py and the shared counting in services/gate_guard.py; this module reads
the request (peer, X-Forwarded-For from trusted proxies only, cookies, user agent) and renders refusals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.gate_guard import client_address, retry_header
from qunflow.i18n import t
from qunflow.services.fraud import RawSignals, hash_signals
from qunflow.services.gate_guard import check_pass, check_view, spend_solution
from qunflow.settings import Settings
from qunflow.web.deps import workspace_of
from qunflow.web.render import lang_of, page

log = logging.getLogger("qunflow.gate")
VISITOR_COOKIE = "qf_vid"
DEVICE_COOKIE = "qf_dev"  # a device id for the fraud checks (kept only as a keyed hash), set after consent
CHALLENGE_FIELD = "qf_pow"  # the solved challenge, put in the form by web/static/gate-pow.js
_warned_proxy = False


def client_ip(request: Request, settings: Settings) -> str | None:
    """The client's IP: the socket's peer, or what X-Forwarded-For says when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and not settings.trusted_proxies and not settings.trust_proxy:
        _warn_untrusted_proxy()
    return client_address(peer, forwarded, settings.trusted_proxies, trust_any=settings.trust_proxy)


def _warn_untrusted_proxy() -> None:
    global _warned_proxy
    if not _warned_proxy:  # once per process: behind an unlisted proxy every client shares one IP's limits
        _warned_proxy = True
        log.warning("requests carry X-Forwarded-For but no trusted_proxies are set: the header is ignored. "
                    "Behind a reverse proxy, list it in trusted_proxies (qunflow.toml) so each client "
                    "gets its own rate limits.")


def _cookie(request: Request, name: str) -> str | None:
    value = request.cookies.get(name, "")
    return value if 8 <= len(value) <= 64 and value.isalnum() else None


def _hashed_ip(request: Request) -> str | None:
    ws = workspace_of(request)
    return hash_signals(ws, RawSignals(ip=client_ip(request, ws.settings))).ip


def _hashed_devices(request: Request) -> list[str]:
    """Keyed hashes of the id cookies the request carries (visitor, device), as the fraud checks hash them."""
    ws = workspace_of(request)
    found = (_cookie(request, VISITOR_COOKIE), _cookie(request, DEVICE_COOKIE))
    return [h for h in (hash_signals(ws, RawSignals(device=c)).device for c in found if c) if h]


def too_many(request: Request, seconds: float) -> HTMLResponse:
    """The 429 page, in the visitor's language, with Retry-After."""
    lang = lang_of(request)
    response = page(request, "message.html", 429, lang=lang, title=t("too_many_title", lang),
                    text=t("too_many_body", lang, minutes=max(1, math.ceil(seconds / 60))), action="")
    response.headers["Retry-After"] = retry_header(seconds)
    return response


async def view_refusal(request: Request) -> Response | None:
    """None when a public page may be served to this client, else the 429 page."""
    ws = workspace_of(request)
    wait = await run_in_threadpool(check_view, ws, _hashed_ip(request))
    return too_many(request, wait) if wait > 0 else None


async def unless_refused(request: Request, render: Callable[..., Response], *args: object) -> Response:
    """A public page: the 429 page for a client over its view limit, else `render(*args)` in a thread."""
    refused = await view_refusal(request)
    return refused if refused is not None else await run_in_threadpool(render, *args)


async def pass_refusal(request: Request, form: dict[str, str],
                       challenge_page: Callable[[], Response]) -> Response | None:
    """None when a gate post may go on; else the 429 page (too many), or `challenge_page` (a 403 asking to
    pass the proof-of-work) when the post looks automated and carries no fresh solution."""
    ws = workspace_of(request)
    check = await run_in_threadpool(check_pass, ws, _hashed_ip(request), _hashed_devices(request),
                                    has_visitor_cookie=_cookie(request, VISITOR_COOKIE) is not None,
                                    user_agent=request.headers.get("user-agent"))
    if check.refused:
        return too_many(request, check.retry_after)
    if not check.challenge:
        return None
    solved = await run_in_threadpool(spend_solution, ws, form.get(CHALLENGE_FIELD))
    if solved.ok:
        return None
    log.info("gate post refused: challenge %s (%s)", solved.problem, ",".join(check.why))
    return challenge_page()
