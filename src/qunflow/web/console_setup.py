"""The console's set-up page (operators, config:write): create, edit, archive and list channels, campaigns,
entry points and groups without Python. Forms follow console_automation: CSRF token (web.auth), same-origin
check, 303 back to the page; bad input raises a QunflowError, which the app renders as a 4xx page and stores
nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qunflow.domain.entry import CHANNEL_KINDS, TIERS, UTM_KEYS
from qunflow.errors import InvalidInput, QunflowError
from qunflow.services import catalog
from qunflow.web.console_automation import _back, _form, _query_without_lang
from qunflow.web.deps import workspace_of
from qunflow.web.render import lang_of, page
from qunflow.workspace import Workspace

router = APIRouter(prefix="/console", include_in_schema=False)
KINDS = ("channel", "campaign", "entry", "group")


@router.get("/setup", response_class=HTMLResponse)
async def setup_page(request: Request) -> Response:
    return await _render(request, archived=request.query_params.get("archived") == "1",
                         notice=request.query_params.get("notice", "")[:200])


async def _render(request: Request, *, archived: bool, notice: str = "", error: str = "",
                  status_code: int = 200) -> Response:
    ws = workspace_of(request)

    def load() -> dict[str, Any]:
        return {"channels": catalog.list_channels(ws, include_archived=archived),
                "campaigns": catalog.list_campaigns(ws, include_archived=archived),
                "entries": catalog.list_entry_points(ws, include_archived=archived),
                "groups": catalog.list_groups(ws, include_archived=archived),
                "open_channels": [c["key"] for c in catalog.list_channels(ws)],
                "open_campaigns": [c["key"] for c in catalog.list_campaigns(ws)],
                "gates": sorted({"seed", *catalog.list_gates(ws)}), "platforms": ws.connected_platforms()}

    data = await run_in_threadpool(load)
    return page(request, "console_setup.html", status_code, **data, archived=archived, kinds=CHANNEL_KINDS,
                tiers=TIERS, utm_keys=UTM_KEYS, base=ws.settings.public_url.rstrip("/"), notice=notice, error=error,
                query_without_lang=_query_without_lang(request))


async def _act(request: Request, kind: str, done: str, action: Callable[[dict[str, str]], str]) -> Response:
    """Run a form's action; a refusal re-renders the page with its message and the error's 4xx status."""
    form = await _form(request)
    try:
        key = await run_in_threadpool(action, form)
    except QunflowError as exc:
        return await _render(request, archived=form.get("archived") == "1", error=exc.text(lang_of(request)),
                             status_code=exc.http_status)
    return _back("/console/setup", {**form, "notice": f"{kind}:{key}:{done}"}, "notice", "archived")


FIELDS_ZH = {"key": "标识", "code": "入口代码", "channel": "渠道", "kind": "类型", "tier": "层级", "name": "名称",
             "capacity": "容量", "platform": "平台", "external_id": "平台群 ID"}


def _field(form: dict[str, str], name: str, *, required: bool = False) -> str | None:
    value = form.get(name, "").strip()
    if required and not value:
        raise InvalidInput(f"{name} is required", zh=f"请填写 {FIELDS_ZH.get(name, name)}")
    return value or None


def _capacity(form: dict[str, str], *, required: bool) -> int | None:
    value = _field(form, "capacity", required=required)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"capacity must be a whole number, not {value[:20]!r}",
                           zh=f"容量必须是整数，而不是 {value[:20]!r}") from None


def _utm(form: dict[str, str]) -> dict[str, str]:
    return {key: form.get(key, "").strip()[:200] for key in UTM_KEYS if key in form}


def _builtin_gate(ws: Workspace, gate: str | None) -> None:
    if gate == "seed":
        from qunflow.services.gates import ensure_seed

        ensure_seed(ws)  # the shipped gate document is applied on first use, as `entry add` does


def _add(ws: Workspace, kind: str, form: dict[str, str]) -> str:
    name = _field(form, "name")
    if kind == "channel":
        key = _field(form, "key", required=True) or ""
        catalog.add_channel(ws, key, _field(form, "kind", required=True) or "", name)
    elif kind == "campaign":
        key = _field(form, "key", required=True) or ""
        catalog.add_campaign(ws, key, _field(form, "channel", required=True) or "", name)
    elif kind == "group":
        key = _field(form, "key", required=True) or ""
        catalog.add_group(ws, key, _field(form, "tier", required=True) or "", _capacity(form, required=True) or 0,
                          platform=_field(form, "platform") or "sandbox", external_id=_field(form, "external_id"),
                          name=name)
    else:
        key = _field(form, "code", required=True) or ""
        gate = _field(form, "gate")
        _builtin_gate(ws, gate)
        catalog.add_entry_point(ws, key, _field(form, "channel", required=True) or "",
                                target_tier=_field(form, "tier") or "newbie", gate=gate,
                                campaign=_field(form, "campaign"), platform=_field(form, "platform") or "sandbox",
                                utm={k: v for k, v in _utm(form).items() if v}, name=name)
    return key


def _edit(ws: Workspace, kind: str, key: str, form: dict[str, str]) -> str:
    name = _field(form, "name")
    if kind == "channel":
        catalog.edit_channel(ws, key, name=name, kind=_field(form, "kind"))
    elif kind == "campaign":
        catalog.edit_campaign(ws, key, name=name)
    elif kind == "group":
        catalog.edit_group(ws, key, name=name, capacity=_capacity(form, required=False), tier=_field(form, "tier"))
    else:
        gate = _field(form, "gate")
        _builtin_gate(ws, gate)
        catalog.edit_entry_point(ws, key, name=name, channel=_field(form, "channel"),
                                 target_tier=_field(form, "tier"),
                                 campaign=(_field(form, "campaign") or catalog.UNSET) if "campaign" in form else None,
                                 gate=(gate or catalog.UNSET) if "gate" in form else None, utm=_utm(form))
    return key


def _archive(ws: Workspace, kind: str, key: str) -> str:
    ARCHIVE[kind](ws, key)
    return key


def _restore(ws: Workspace, kind: str, key: str) -> str:
    catalog.restore(ws, kind, key)
    return key


ARCHIVE: dict[str, Callable[[Workspace, str], Any]] = {
    "channel": catalog.archive_channel, "campaign": catalog.archive_campaign,
    "entry": catalog.archive_entry_point, "group": catalog.archive_group}


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown set-up record {kind!r} (channel, campaign, entry, group)",
                           zh=f"未知的设置项 {kind!r}（渠道、活动、入口、群）")
    return kind


@router.post("/setup/{kind}/add")
async def add_record(request: Request, kind: str) -> Response:
    ws = workspace_of(request)
    return await _act(request, kind, "added", lambda form: _add(ws, _kind(kind), form))


@router.post("/setup/{kind}/{key}/edit")
async def edit_record(request: Request, kind: str, key: str) -> Response:
    ws = workspace_of(request)
    return await _act(request, kind, "changed", lambda form: _edit(ws, _kind(kind), key, form))


@router.post("/setup/{kind}/{key}/archive")
async def archive_record(request: Request, kind: str, key: str) -> Response:
    ws = workspace_of(request)
    return await _act(request, kind, "archived", lambda _form: _archive(ws, _kind(kind), key))


@router.post("/setup/{kind}/{key}/restore")
async def restore_record(request: Request, kind: str, key: str) -> Response:
    ws = workspace_of(request)
    return await _act(request, kind, "restored", lambda _form: _restore(ws, _kind(kind), key))
