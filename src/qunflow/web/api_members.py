"""JSON API v1 for a member's privacy rights (P8): export, erase, and the marketing consent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from qunflow.domain.access import Principal
from qunflow.errors import InvalidInput
from qunflow.web.auth import scope
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import API_ERRORS, errors

router = APIRouter(prefix="/api/v1/members", tags=["members"], responses=API_ERRORS)
ERRORS = errors(404)  # no such member (or erased, or outside the token's groups)
Read = Annotated[Principal, Depends(scope("members:read"))]
Erase = Annotated[Principal, Depends(scope("members:erase"))]
Consent = Annotated[Principal, Depends(scope("members:consent"))]


@router.get("", summary="Search members", responses=errors(400),
            description="Members matching q as a member id, external id, phone number (matched by its keyed "
                        "hash), coupon code or part of a name: member_id, name, group, tier, matched_by.")
async def search(request: Request, who: Read, q: str = "") -> dict[str, Any]:
    from qunflow.services.member_records import search_members

    ws = workspace_of(request)
    found = await run_in_threadpool(lambda: search_members(ws, q, who.groups))
    return {"q": q, "members": found}


@router.get("/{member_id}", summary="One member's record", responses=ERRORS,
            description="Profile (decrypted: the caller holds members:read), identities, linked keys (a phone "
                        "only as '(hashed)'), consent history, timeline (messages as counts per day, no "
                        "content), group and tier, tier moves, referrer and invitees, open inbox items.")
async def record(member_id: str, request: Request, who: Read) -> dict[str, Any]:
    from qunflow.services.member_records import check_in_groups, find_member, member_record

    ws = workspace_of(request)
    return await run_in_threadpool(lambda: member_record(
        ws, check_in_groups(ws, find_member(ws, member_id), who.groups), with_profile=who.can("members:read")))


@router.get("/{member_id}/export", summary="Everything held about one member", responses=ERRORS,
            description="The member row with the decrypted profile, identities, consents, events, tasks, "
                        "coupons, rewards, referrals, inbox items, sends with their decrypted texts and the "
                        "sandbox's records of them. 404 for an unknown or erased member.")
async def export(member_id: str, request: Request, who: Read) -> dict[str, Any]:
    from qunflow.services.member_records import check_in_groups, export_member, find_member

    ws = workspace_of(request)
    return await run_in_threadpool(
        lambda: export_member(ws, check_in_groups(ws, find_member(ws, member_id), who.groups)))


@router.post("/{member_id}/erase", summary="Erase one member's personal data", responses=ERRORS,
             description="Removes or pseudonymises the member everywhere (state DB, analytics store, sandbox), "
                         "records the erasure (without personal data) and says what was kept for the metrics.")
async def erase(member_id: str, request: Request, who: Erase) -> dict[str, Any]:
    from qunflow.services.erasure import erase_member
    from qunflow.services.member_records import check_in_groups, find_member

    ws = workspace_of(request)

    def run() -> dict[str, Any]:
        found = check_in_groups(ws, find_member(ws, member_id), who.groups)
        return {"member_id": found, **erase_member(ws, found, actor=who.actor).as_json()}
    return await run_in_threadpool(run)


class ConsentChange(BaseModel):
    purpose: str = "marketing"
    granted: bool


@router.post("/{member_id}/consent", summary="Record a member's marketing consent", responses=ERRORS,
             description="For consent collected elsewhere (a shop's checkout): grants or withdraws the "
                         "marketing consent; returns the consents in force.")
async def consent(member_id: str, change: ConsentChange, request: Request, who: Consent) -> dict[str, bool]:
    from qunflow.services.consent import set_marketing

    if change.purpose != "marketing":
        raise InvalidInput("only the marketing consent can be changed here (the profile consent is the gate's)",
                           zh="这里只能修改营销消息的同意(资料的同意由入群问卷收集)")
    ws = workspace_of(request)
    return await run_in_threadpool(set_marketing, ws, member_id, change.granted, "api")
