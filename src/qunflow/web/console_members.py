"""Console pages for one member (P8): their record and consents, the JSON export, the erasure.

Staff alerts link here instead of naming the member. Behind the login (members:read; the erasure needs
members:erase); a user limited to groups sees only members of those groups.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from qunflow.errors import Forbidden, InvalidInput
from qunflow.i18n import role_name
from qunflow.services.erasure import erase_member
from qunflow.services.member_records import check_in_groups, find_member, member_record, plain, search_members
from qunflow.store.consents import consent_records
from qunflow.store.tables import groups, members
from qunflow.web.auth import principal_of
from qunflow.web.console_automation import _form
from qunflow.web.deps import workspace_of
from qunflow.web.render import page

router = APIRouter(prefix="/console/members", include_in_schema=False)


def _summary(request: Request, member_id: str) -> dict[str, Any]:
    """What the page shows: the member record (services/member_records.member_record); the profile only for
    a role holding members:read (the page itself needs it)."""
    ws = workspace_of(request)
    who = principal_of(request)
    found = check_in_groups(ws, find_member(ws, member_id), who.groups)
    record = member_record(ws, found, with_profile=who.can("members:read"))
    with ws.engine.connect() as conn:
        row = conn.execute(select(members.c.id, members.c.tier, members.c.locale, members.c.created_at,
                                  members.c.joined_at, groups.c.key.label("group"))
                           .outerjoin(groups, groups.c.id == members.c.group_id).where(members.c.id == found)).one()
        return {"member": dict(row._mapping), "consents": consent_records(conn, found), "record": record}


@router.get("", response_class=HTMLResponse)
async def search_page(request: Request, q: str = "") -> Response:
    """Search by name, phone number, external id or coupon code."""
    ws, who = workspace_of(request), principal_of(request)
    found = await run_in_threadpool(lambda: search_members(ws, q, who.groups)) if q.strip() else None
    return page(request, "console_members.html", q=q, found=found)


@router.get("/merges", response_class=HTMLResponse)
async def merges_page(request: Request, status: str = "candidate", done: str | None = None) -> Response:
    """Pairs that may be one person, with merge / reject buttons; merged ones with undo."""
    from qunflow.services.merges import find_candidates, list_merges

    if status not in ("candidate", "merged", "rejected", "undone"):
        raise InvalidInput("status is candidate, merged, rejected or undone",
                           zh="状态须为 candidate、merged、rejected 或 undone")
    ws = workspace_of(request)

    def rows() -> list[dict[str, Any]]:
        find_candidates(ws)
        return list_merges(ws, status)
    return page(request, "console_merges.html", rows=await run_in_threadpool(rows), status=status, done=done)


@router.post("/merges/{merge_id}/{action}", response_class=HTMLResponse)
async def merge_action(request: Request, merge_id: int, action: str) -> Response:
    from qunflow.services.merges import list_merges, merge, reject, undo

    form = await _form(request)
    ws, who = workspace_of(request), principal_of(request)
    if not who.can("config:write"):
        raise Forbidden(f"your role ({who.role}) may not merge members (it needs config:write)",
                        zh=f"你的角色({role_name(who.role or '无', 'zh')})无权合并成员(需要 config:write 权限)")
    if action not in ("merge", "reject", "undo"):
        raise InvalidInput("the action is merge, reject or undo", zh="操作须为 merge、reject 或 undo")

    def run() -> str:
        if action == "reject":
            reject(ws, merge_id, actor=who.actor)
            return "candidate"
        if action == "undo":
            undo(ws, merge_id, actor=who.actor)
            return "undone"
        pair = next((r for r in list_merges(ws, "candidate") if r["id"] == merge_id), None)
        if pair is None:
            raise InvalidInput(f"merge candidate #{merge_id} is not open for review",
                               zh=f"合并候选 #{merge_id} 不在待审状态")
        merge(ws, pair["keep_id"], pair["merged_id"], actor=who.actor)
        return "merged"
    status = await run_in_threadpool(run)
    lang = form.get("lang", "zh")
    return RedirectResponse(f"/console/members/merges?lang={lang}&status={status}&done={action}", status_code=303)


@router.get("/{member_id}", response_class=HTMLResponse)
async def member_page(request: Request, member_id: str) -> Response:
    summary = await run_in_threadpool(_summary, request, member_id)
    return page(request, "console_member.html", **summary, report=None)


@router.get("/{member_id}/export")
async def member_export(request: Request, member_id: str) -> Response:
    from qunflow.services.member_records import export_member

    ws = workspace_of(request)
    groups_seen = principal_of(request).groups
    document = await run_in_threadpool(
        lambda: export_member(ws, check_in_groups(ws, find_member(ws, member_id), groups_seen)))
    body = json.dumps(plain(document), ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers={
        "content-disposition": f'attachment; filename="{document["member"]["id"]}.json"',
        "cache-control": "no-store"})


@router.post("/{member_id}/erase", response_class=HTMLResponse)
async def member_erase(request: Request, member_id: str) -> Response:
    form = await _form(request)
    ws, who = workspace_of(request), principal_of(request)
    if not who.can("members:erase"):
        raise Forbidden(f"your role ({who.role}) may not erase members (it needs members:erase)",
                        zh=f"你的角色({role_name(who.role or '无', 'zh')})无权删除成员(需要 members:erase 权限)")
    found = await run_in_threadpool(lambda: check_in_groups(ws, find_member(ws, member_id), who.groups))
    if form.get("confirm", "").strip() != found:
        raise InvalidInput(f"type the member id {found} into the box to confirm the erasure",
                           zh=f"请在输入框中输入成员 ID {found} 以确认删除")
    report = await run_in_threadpool(erase_member, ws, found, who.actor)
    return page(request, "console_member.html", member={"id": found}, consents=[], report=report, record=None)
