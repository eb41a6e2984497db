"""/hooks/{platform}: the calls a chat platform makes (GET and POST), answered by a plain ASGI middleware.

Platform calls are most of a live install's requests, and FastAPI's routing, request objects and
dependency solving cost more CPU per call than the handling of an update seen before
(bench/probe_hook_cost.py). So the app's router never sees them: this middleware sits inside SiteGuard
and BodyLimit (the Host check, the security headers and the body cap apply as to any route) and answers
errors as the app's exception handlers do (web/answers.py). It is not in the OpenAPI schema, as the route
it replaces was not.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import anyio
from starlette.datastructures import URL
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from qunflow.errors import NotFound
from qunflow.services.inbound import receive as handle
from qunflow.web.answers import error_answer
from qunflow.workspace import Workspace

PREFIX = "/hooks/"
METHODS = ("POST", "GET")
HOOK_THREADS = 8  # platform calls handled at once; the rest wait their turn in the event loop


class HookPath:
    """Each platform call is verified and parsed by its connector (a bad signature or secret is a 401 and
    changes nothing), dispatched, and answered the way the platform expects."""

    def __init__(self, app: ASGIApp, workspace: Workspace) -> None:
        self.app, self.workspace = app, workspace
        self._threads: anyio.CapacityLimiter | None = None

    def threads(self) -> anyio.CapacityLimiter:
        """The threads platform calls are handled in: a few, not the 40 the pages share. A burst of callbacks
        (WeCom sends them side by side) then queues cheaply instead of 40 threads trading the GIL and the
        SQLite write lock, which made each of them slow (bench/bench_connectors.py)."""
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(HOOK_THREADS)
        return self._threads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        platform = platform_of(scope)
        bare = platform.rstrip("/")
        if not bare or "/" in bare:
            await self.app(scope, receive, send)  # not a platform's address: on to the router (a 404 under /hooks)
            return
        if bare != platform:  # the router's redirect_slashes, as for any route
            answer: Response | None = RedirectResponse(str(URL(scope={**scope, "path": PREFIX + bare})))
        elif scope["method"] not in METHODS:
            answer = JSONResponse({"error": "Method Not Allowed"}, 405, headers={"Allow": ", ".join(METHODS)})
        else:
            try:
                answer = await self._handle(scope, receive, platform)
            except Exception as exc:
                answer = error_answer(exc)
                if answer is None:
                    raise
        if answer is not None:
            await answer(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, platform: str) -> Response | None:
        ws = self.workspace
        if platform not in ws.connectors and platform not in ws.connected_platforms():
            raise NotFound(f"{platform!r} is not connected in this workspace (see `qunflow connect --help`)",
                           zh=f"此工作区没有连接 {platform!r}(可用 `qunflow connect --help` 查看)")
        body = await read_body(receive)
        if body is None:
            return None  # the caller left, or BodyLimit cut the body off at limits.HOOK_CAP and answered 413
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # the first of a repeated header, as starlette's Headers give it
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        inbound = await anyio.to_thread.run_sync(handle, ws, platform, scope["method"], query, headers, body,
                                                 limiter=self.threads())
        return Response(inbound.reply, media_type=inbound.media_type)


def platform_of(scope: Scope) -> str:
    """What follows /hooks/ in an HTTP request's path; "" for any other request."""
    if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
        return ""
    return str(scope["path"][len(PREFIX):])


async def read_body(receive: Receive) -> bytes | None:
    """The request's whole body; None when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
