"""Console pages for gates (P2, issue 12): the list, the form builder that writes a `kind: gate` document
(a new version on each save, with the history and diffs), and the page texts (group rules, landing copy).

Builder buttons post the whole form with `op` (add/remove a field, question, option or route) and get the
form back; `op=save` checks the document exactly as `qunflow gate apply` does (422 with every problem, and
nothing stored) and applies it. Forms carry the session's CSRF token (web.auth.console_access).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.entry import TIERS
from qunflow.domain.gate_files import gate_yaml
from qunflow.domain.gate_form import (
    apply_op,
    draft_from_form,
    draft_from_gate,
    empty_draft,
    format_answers,
    gate_of_draft,
)
from qunflow.errors import InvalidInput, NotFound
from qunflow.services import gates as gate_service
from qunflow.services.catalog import list_entry_points
from qunflow.services.page_texts import KEYS as TEXT_KEYS
from qunflow.services.page_texts import LANGS, list_texts, set_text
from qunflow.services.waitlist import waitlist_overview
from qunflow.web.console_automation import _form, _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.render import lang_of, page

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/gates", response_class=HTMLResponse)
async def gates_page(request: Request) -> Response:
    ws = workspace_of(request)
    items = await run_in_threadpool(gate_service.list_gates, ws)
    waiting = await run_in_threadpool(waitlist_overview, ws)
    return page(request, "console_gates.html", gates=items, waitlist=waiting, fallback=ws.settings.tier_fallback,
                query_without_lang=_query_without_lang(request))


def _builder(request: Request, key: str | None, draft: dict[str, Any], status: int = 200,
             problems: list[str] | None = None, saved: str = "") -> Response:
    ws = workspace_of(request)
    history = gate_service.version_history(ws, key) if key else []
    return page(request, "console_gate_edit.html", status, key=key, draft=draft, tiers=TIERS, history=history,
                problems=problems or [], saved=saved, format_answers=format_answers,
                document=gate_yaml(gate_of_draft(draft), draft["title"]) if draft["key"] else "",
                query_without_lang=_query_without_lang(request))


@router.get("/gates/new", response_class=HTMLResponse)
async def new_gate(request: Request) -> Response:
    return _builder(request, None, empty_draft())


@router.get("/gates/{key}", response_class=HTMLResponse)
async def edit_gate(request: Request, key: str) -> Response:
    view = await run_in_threadpool(gate_service.gate_view, workspace_of(request), key)
    return await run_in_threadpool(_builder, request, key, draft_from_gate(view.gate, view.title), 200, None,
                                   request.query_params.get("saved", ""))


@router.post("/gates/{key}", response_class=HTMLResponse)
async def save_gate(request: Request, key: str) -> Response:
    """`key` is the gate being edited, or `new`. The document's own key decides what is stored: editing
    under another key makes a new gate (a copy)."""
    ws = workspace_of(request)
    form = await _form(request)
    current = None if key == "new" else key
    if current is not None:
        await run_in_threadpool(gate_service.gate_view, ws, current)  # 404 for an unknown gate
    draft = draft_from_form(form)
    op = form.get("op", "save")
    if op != "save":
        return await run_in_threadpool(_builder, request, current, apply_op(draft, op))
    if not draft["key"]:
        return await run_in_threadpool(_builder, request, current, draft, 422, ["key: give the gate a key"])
    text = gate_yaml(gate_of_draft(draft), draft["title"])
    try:
        changes = await run_in_threadpool(gate_service.apply_text, ws, text, "console")
    except InvalidInput as exc:
        said = exc.text(lang_of(request))
        problems = said.splitlines()[1:] or [said]
        return await run_in_threadpool(_builder, request, current, draft, 422, problems)
    change = changes[0]
    lang = form.get("lang") if form.get("lang") in LANGS else ""
    return RedirectResponse(f"/console/gates/{quote(change.key)}?saved={change.status}"
                            + (f"&lang={lang}" if lang else ""), status_code=303)


@router.get("/texts", response_class=HTMLResponse)
async def texts_page(request: Request) -> Response:
    ws = workspace_of(request)
    scope = request.query_params.get("entry") or ""
    entries = [e["code"] for e in await run_in_threadpool(list_entry_points, ws)]
    if scope and scope not in entries:
        raise NotFound(f"no entry point {scope!r}", zh=f"找不到入口 {scope!r}")
    stored = {(r["key"], r["lang"]): r["body"] for r in await run_in_threadpool(list_texts, ws, scope or None)
              if r["scope"] == scope}
    return page(request, "console_texts.html", scope=scope, entries=entries, keys=list(TEXT_KEYS), langs=LANGS,
                stored=stored, saved=request.query_params.get("saved", ""),
                query_without_lang=_query_without_lang(request))


@router.post("/texts", response_class=HTMLResponse)
async def save_texts(request: Request) -> Response:
    """Every text of one scope at once; an empty box removes that text (the built-in one applies again)."""
    ws = workspace_of(request)
    form = await _form(request)
    scope = form.get("entry", "")

    def save() -> None:
        for key in TEXT_KEYS:  # all checked first: one bad text changes nothing
            for lang in LANGS:
                body = form.get(f"{key}_{lang}", "")
                if len(body.strip()) > gate_service_max(key):
                    raise InvalidInput(f"{key} ({lang}) is too long", zh=f"{key}({lang})太长")
        for key in TEXT_KEYS:
            for lang in LANGS:
                set_text(ws, key, lang, form.get(f"{key}_{lang}", ""), scope or None)

    await run_in_threadpool(save)
    lang = form.get("lang") if form.get("lang") in LANGS else ""
    query = "saved=1" + (f"&entry={quote(scope)}" if scope else "") + (f"&lang={lang}" if lang else "")
    return RedirectResponse(f"/console/texts?{query}", status_code=303)


def gate_service_max(key: str) -> int:
    from qunflow.services.page_texts import MAX_CHARS

    return MAX_CHARS[key]
