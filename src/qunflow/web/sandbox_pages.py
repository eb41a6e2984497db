"""The sandbox platform's own pages: what a person sees when they open an invite link there."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from qunflow.connectors import sandbox_tables as t
from qunflow.errors import InvalidInput
from qunflow.web.deps import workspace_of
from qunflow.web.render import message_page, page

router = APIRouter(include_in_schema=False)
USER_COOKIE = "sandbox_uid"


def _chat_title(request: Request, token: str) -> str | None:
    world = workspace_of(request).sandbox
    with world.engine.connect() as conn:
        return conn.execute(select(t.sandbox_chats.c.title).join(t.sandbox_invites,
                                                                 t.sandbox_invites.c.chat_id == t.sandbox_chats.c.id)
                            .where(t.sandbox_invites.c.token == token)).scalar()


@router.get("/sandbox/invite/{token}", response_class=HTMLResponse)
def invite(token: str, request: Request) -> Response:
    title = _chat_title(request, token)
    if title is None:
        return message_page(request, "not_found", status_code=404)
    return page(request, "sandbox_invite.html", chat=title, joined=False)


@router.post("/sandbox/invite/{token}", response_class=HTMLResponse)
async def accept_invite(token: str, request: Request) -> Response:
    title = _chat_title(request, token)
    if title is None:
        return message_page(request, "not_found", status_code=404)
    name = str((await request.form()).get("name", "")).strip()[:60]
    if not name:
        raise InvalidInput("a display name is required", zh="请填写显示名称")
    user_id = request.cookies.get(USER_COOKIE) or "su" + uuid.uuid4().hex[:10]
    world = workspace_of(request).sandbox
    await run_in_threadpool(world.join, user_id, name, token)
    response = page(request, "sandbox_invite.html", chat=title, joined=True,
                    dms=list(reversed(world.messages(dm_user_id=user_id))))
    response.set_cookie(USER_COOKIE, user_id, httponly=True, samesite="lax")
    return response
