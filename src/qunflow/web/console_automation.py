"""Console pages for automation: playbooks, dead letters (retry / skip; the CRM sync's too), the advisor inbox.

Forms that change state are POSTs answered with a redirect back (303). Each carries the session's CSRF
token (checked by web.auth.console_access); a same-origin check (Origin or Referer must name this host)
stays as a second line.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.errors import Forbidden, InvalidInput
from qunflow.i18n import LANGUAGES
from qunflow.services import inbox as inbox_service
from qunflow.services import sync as sync_service
from qunflow.services.member_records import member_labels
from qunflow.services.playbook_views import dead_letter_details, playbook_details, retry_dead_letter
from qunflow.services.welcome_docs import welcome_overview
from qunflow.web.auth import principal_of
from qunflow.web.deps import workspace_of
from qunflow.web.openapi import OFFSET_MAX, RowId
from qunflow.web.render import lang_of, page

router = APIRouter(prefix="/console", include_in_schema=False)
MAX_FORM = 16 * 1024


def check_same_origin(request: Request) -> None:
    """Refuse a state-changing request that a page on another site could have sent."""
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    if not host or source == "null" or urlsplit(source).netloc != host:
        raise Forbidden("this form must be sent from the console itself (the Origin or Referer header must "
                        "name this host)", zh="此表单必须从控制台本身提交(Origin 或 Referer 请求头须指向本站)")


async def _form(request: Request) -> dict[str, str]:
    check_same_origin(request)
    body = await request.body()
    if len(body) > MAX_FORM:
        raise InvalidInput("the form is too large", zh="表单太大")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8", zh="表单不是 UTF-8 编码") from None
    return {k: v[-1] for k, v in fields.items()}


def _back(path: str, form: dict[str, str], *keep: str) -> RedirectResponse:
    """Redirect to a fixed console page, keeping the language and the named filters."""
    query = {k: form[k] for k in keep if form.get(k)}
    if form.get("lang") in LANGUAGES:
        query["lang"] = form["lang"]
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


def _query_without_lang(request: Request) -> str:
    return urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "lang"])


@router.get("/playbooks", response_class=HTMLResponse)
async def playbooks_page(request: Request) -> Response:
    lang = lang_of(request)
    items = await run_in_threadpool(playbook_details, workspace_of(request), lang)
    welcome = await run_in_threadpool(welcome_overview, workspace_of(request), lang)
    return page(request, "console_playbooks.html", playbooks=items, welcome=welcome,
                query_without_lang=_query_without_lang(request))


@router.get("/automation/dead", response_class=HTMLResponse)
async def dead_page(request: Request) -> Response:
    ws = workspace_of(request)
    rows = await run_in_threadpool(dead_letter_details, ws)
    sync_rows = await run_in_threadpool(sync_service.list_deliveries, ws, "dead", None, 100)
    sync_counts = await run_in_threadpool(sync_service.counts, ws)
    return page(request, "console_dead.html", rows=rows, query_without_lang=_query_without_lang(request),
                notice=request.query_params.get("notice", ""), sync_rows=sync_rows, sync_counts=sync_counts)


@router.post("/automation/dead/{letter_id}/retry")
async def dead_retry(request: Request, letter_id: str) -> Response:
    form = await _form(request)
    skip = form.get("skip") == "1"
    await run_in_threadpool(retry_dead_letter, workspace_of(request), letter_id, skip_step=skip)
    return _back("/console/automation/dead", {**form, "notice": "skipped" if skip else "retried"}, "notice")


@router.post("/automation/sync/{delivery_id}/retry")
async def sync_retry(request: Request, delivery_id: RowId) -> Response:
    """A CRM sync dead letter back in line (docs/sync.md)."""
    form = await _form(request)
    await run_in_threadpool(sync_service.retry, workspace_of(request), [delivery_id])
    return _back("/console/automation/dead", {**form, "notice": "retried"}, "notice")


INBOX_PAGE = 50  # items per console page


@router.get("/inbox", response_class=HTMLResponse)
async def inbox_page(request: Request) -> Response:
    status = request.query_params.get("status") or "open"
    kind = request.query_params.get("kind") or None
    assignee = request.query_params.get("assignee")
    raw_offset = request.query_params.get("offset") or "0"
    if not (raw_offset.isascii() and raw_offset.isdigit() and int(raw_offset) <= OFFSET_MAX):
        raise InvalidInput(f"offset must be a whole number up to {OFFSET_MAX}, got {raw_offset[:20]!r}",
                           zh=f"offset 须为不超过 {OFFSET_MAX} 的整数,收到的是 {raw_offset[:20]!r}")
    offset, ws = int(raw_offset), workspace_of(request)
    groups = principal_of(request).groups
    rows = await run_in_threadpool(inbox_service.list_inbox, ws, status=status, kind=kind,
                                   assignee=assignee or None, limit=INBOX_PAGE, offset=offset, groups=groups)
    total = await run_in_threadpool(inbox_service.count_inbox, ws, status=status, kind=kind,
                                    assignee=assignee or None, groups=groups)

    def at(start: int) -> str:  # the same filters, another page
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
        return "?" + urlencode([*kept, ("offset", str(start))])

    pages = {"first": offset + 1 if rows else 0, "last": offset + len(rows), "total": total,
             "prev": at(max(0, offset - INBOX_PAGE)) if offset > 0 else None,
             "next": at(offset + INBOX_PAGE) if offset + INBOX_PAGE < total else None}
    who = principal_of(request)
    labels = await run_in_threadpool(lambda: member_labels(ws, [r["member_id"] for r in rows],
                                                           with_name=who.can("members:read")))
    return page(request, "console_inbox.html", rows=rows, status=status, kind=kind or "", assignee=assignee or "",
                pages=pages, query_without_lang=_query_without_lang(request), now=ws.clock(), labels=labels)


@router.post("/inbox/{item_id}/{action}")
async def inbox_action(request: Request, item_id: RowId, action: str) -> Response:
    form = await _form(request)
    ws, groups = workspace_of(request), principal_of(request).groups
    if action in ("done", "undone"):
        await run_in_threadpool(inbox_service.set_done, ws, item_id, action == "done", groups)
    elif action == "assign":
        await run_in_threadpool(inbox_service.assign, ws, item_id, form.get("assignee", ""), groups)
    else:
        raise InvalidInput(f"unknown inbox action {action!r} (done, undone, assign)",
                           zh=f"未知的待办操作 {action!r}(done、undone、assign)")
    return _back("/console/inbox", form, "status", "kind")
