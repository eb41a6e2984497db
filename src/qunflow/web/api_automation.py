"""JSON API v1 for automation: the advisor inbox (scope inbox:use, narrowed to a token's groups), dead
letters, the CRM sync's deliveries and playbooks (scope automation:manage)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from qunflow.domain.access import Principal
from qunflow.domain.schedule import parse_utc_time
from qunflow.services import inbox as inbox_service
from qunflow.services import sync as sync_service
from qunflow.services.playbook_views import dead_letter_details, playbook_details, retry_dead_letter
from qunflow.web.auth import scope
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import API_ERRORS, Offset, RowId, UtcTime, errors

router = APIRouter(prefix="/api/v1", tags=["automation"], responses=API_ERRORS)
Inbox = Annotated[Principal, Depends(scope("inbox:use"))]
Manage = Annotated[Principal, Depends(scope("automation:manage"))]


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """Times as ISO text in UTC."""
    return {k: (v.isoformat() + "Z" if isinstance(v, datetime) else v) for k, v in row.items()}


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"assignee": "Wang Fang"}]})

    assignee: str | None = Field(max_length=inbox_service.MAX_ASSIGNEE, pattern=r"^[^\r\n\t]*$",
                                 description='An advisor\'s name, one line; null or "" unassigns.')


@router.get("/inbox", summary="Advisor inbox: follow-ups and alerts",
            description="Items playbooks created (Day-6 outreach, event follow-ups, keyword alerts), soonest due "
                        "first. status: open (default), done or all; kind: follow_up or alert; assignee: an "
                        "advisor's name (empty: unassigned); due_before: an ISO time (UTC). Times are UTC. "
                        "Paged with limit and offset; total is how many items the filter selects.")
async def get_inbox(request: Request, who: Inbox, status: Literal["open", "done", "all"] = "open",
                    kind: Literal["follow_up", "alert"] | None = None, assignee: str | None = None,
                    due_before: UtcTime = None,
                    limit: int = Query(500, ge=1, le=5000), offset: Offset = 0) -> dict[str, Any]:
    before = parse_utc_time(due_before, "due_before")  # stored times are naive UTC
    ws = workspace_of(request)
    rows = await run_in_threadpool(inbox_service.list_inbox, ws, status=status, kind=kind, assignee=assignee,
                                   due_before=before, limit=limit, offset=offset, groups=who.groups)
    total = await run_in_threadpool(inbox_service.count_inbox, ws, status=status, kind=kind, assignee=assignee,
                                    due_before=before, groups=who.groups)
    return {"items": [_item(r) for r in rows], "total": total, "limit": limit, "offset": offset}


@router.post("/inbox/{item_id}/done", summary="Mark an inbox item done", responses=errors(404))
async def post_done(request: Request, item_id: RowId, who: Inbox) -> dict[str, Any]:
    return _item(await run_in_threadpool(inbox_service.set_done, workspace_of(request), item_id, True, who.groups))


@router.post("/inbox/{item_id}/undone", summary="Open an inbox item again", responses=errors(404))
async def post_undone(request: Request, item_id: RowId, who: Inbox) -> dict[str, Any]:
    return _item(await run_in_threadpool(inbox_service.set_done, workspace_of(request), item_id, False,
                                         who.groups))


@router.post("/inbox/{item_id}/assign", summary="Assign an inbox item to an advisor",
             description='Body: {"assignee": "name"} (free text, at most 64 characters); null or "" unassigns.',
             responses=errors(404))
async def post_assign(request: Request, item_id: RowId, body: AssignBody, who: Inbox) -> dict[str, Any]:
    return _item(await run_in_threadpool(inbox_service.assign, workspace_of(request), item_id, body.assignee,
                                         who.groups))


@router.get("/automation/dead-letters", summary="Dead letters: steps and sends that could not be carried out",
            description="Newest first, with the playbook, the subject (member id or group:<key>), the failed step "
                        "and the error.")
async def get_dead_letters(request: Request, _who: Manage) -> dict[str, Any]:
    rows = await run_in_threadpool(dead_letter_details, workspace_of(request))
    return {"dead_letters": [_item(r) for r in rows]}


@router.post("/automation/dead-letters/{letter_id}/retry", summary="Retry a dead letter",
             description="Puts it back in line: the failed step (a numeric id) or send (an id `s<N>`) is tried "
                         "anew, or skipped with skip=true. 404 when it is not (or no longer) a dead letter.",
             responses=errors(404))
async def post_retry(request: Request, letter_id: str, _who: Manage, skip: bool = False) -> dict[str, Any]:
    row = await run_in_threadpool(retry_dead_letter, workspace_of(request), letter_id, skip_step=skip)
    return _item(row)


@router.get("/sync/deliveries", summary="Outbound sync: deliveries to the CRM (by default the dead letters)",
            description="Newest first: subscription (target), event id and type, status (pending, posting, sent, "
                        "dead), attempts, the receiver's last HTTP status and error; counts per subscription "
                        "and status. Times are UTC. See docs/sync.md.")
async def get_sync_deliveries(request: Request, _who: Manage,
                              status: Literal["dead", "pending", "posting", "sent", "all"] = "dead",
                              limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
    ws = workspace_of(request)
    rows = await run_in_threadpool(sync_service.list_deliveries, ws, None if status == "all" else status, None,
                                   limit)
    return {"deliveries": [_item(r) for r in rows], "counts": await run_in_threadpool(sync_service.counts, ws)}


@router.post("/sync/deliveries/{delivery_id}/retry", summary="Retry a sync dead letter",
             description="Puts it back in line with fresh attempts; the worker posts it in its next round. "
                         "404 when it is not (or no longer) a dead letter.", responses=errors(404))
async def post_sync_retry(request: Request, delivery_id: RowId, _who: Manage) -> dict[str, Any]:
    changed = await run_in_threadpool(sync_service.retry, workspace_of(request), [delivery_id])
    return {"id": delivery_id, "retried": changed == 1}


@router.get("/playbooks", summary="Playbooks, versions and where members are",
            description="Each playbook's current version, its version history (applied times, UTC), the active "
                        "enrollments waiting at each step, done/exited/dead counts and template previews with "
                        "sample values (lang: zh or en).")
async def get_playbooks(request: Request, _who: Manage, lang: Literal["zh", "en"] = "en") -> dict[str, Any]:
    rows = await run_in_threadpool(playbook_details, workspace_of(request), lang)
    for row in rows:
        row["versions"] = [_item(v) for v in row["versions"]]
    return {"playbooks": rows}
