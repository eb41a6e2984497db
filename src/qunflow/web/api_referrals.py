"""JSON API v1: members' referral links and posters (S3), for the shop or a mini-program."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from qunflow.domain.access import Principal
from qunflow.services.posters import render_poster
from qunflow.services.referrals import check_member, referral_link
from qunflow.web.auth import scope
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import API_ERRORS, errors

router = APIRouter(prefix="/api/v1", tags=["referrals"], responses={**API_ERRORS, **errors(404)})


@router.get("/members/{member_id}/referral", summary="A member's referral code and link",
            description="The code is created on first use; the same one comes back afterwards. "
            "`poster_url` is the member's personal poster link (no token needed).")
def member_referral(member_id: str, request: Request,
                    _who: Principal = Depends(scope("members:read"))) -> dict[str, Any]:
    ws = workspace_of(request)
    check_member(ws, member_id)
    link = referral_link(ws, member_id)
    return {"member_id": link.member_id, "code": link.code, "link": link.link, "poster_url": link.poster_url}


@router.get("/members/{member_id}/poster.png", summary="A member's referral poster (PNG)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def member_poster(member_id: str, request: Request,
                  lang: Annotated[str | None, Query(pattern="^(zh|en)$")] = None,
                  _who: Principal = Depends(scope("members:read"))) -> Response:
    return Response(render_poster(workspace_of(request), member_id, lang), media_type="image/png")
