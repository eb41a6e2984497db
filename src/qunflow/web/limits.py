"""Request body caps, enforced before a route reads its body.

One ASGI middleware for every route: a declared Content-Length over the route's cap is refused with 413
before a byte of the body is read, and a body without one (chunked) is counted as it streams and cut off
at the cap. A route that answers without reading its body (a 404, a 401) closes the connection instead of
reading the rest. So a 300 MiB upload costs the server nothing but the bytes it reads up to the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

KIB = 1024
MIB = 1024 * KIB
FORM_CAP = 64 * KIB  # forms and small JSON bodies: the default
HOOK_CAP = 1 * MIB  # a chat platform's update is a few KiB
EVENTS_CAP = 32 * MIB  # /api/v1/events: up to 10,000 events a batch
# The first prefix that matches a path gives its cap; every other path has FORM_CAP.
CAPS: tuple[tuple[str, int], ...] = (("/hooks/", HOOK_CAP), ("/api/v1/events", EVENTS_CAP))

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]


def cap_for(path: str) -> int:
    """The largest body, in bytes, that a request to `path` may carry."""
    for prefix, cap in CAPS:
        if path == prefix.rstrip("/") or path.startswith(prefix):
            return cap
    return FORM_CAP


def size_text(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size // KIB} KiB"


def has_body(scope: Message) -> bool:
    """Whether the request announces a body (a Content-Length over 0, or a chunked one)."""
    for name, value in scope.get("headers", ()):
        if (name == b"content-length" and value not in (b"0", b"")) or name == b"transfer-encoding":
            return True
    return False


def declared_length(scope: Message) -> int | None:
    """The Content-Length header as a number, None when absent; -1 when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


class BodyLimit:
    """Refuses request bodies over their route's cap (413, `{"error": ...}`, and the connection closed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = cap_for(scope["path"])
        declared = declared_length(scope)
        if declared is not None and (declared < 0 or declared > cap):
            await _refuse(send, cap, declared < 0)
            return
        state = {"read": 0, "refused": False, "started": False, "whole": not has_body(scope)}

        async def counted_receive() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                state["whole"] = not message.get("more_body", False)
                if state["read"] > cap:
                    state["refused"] = True
                    if not state["started"]:
                        await _refuse(send, cap, False)
                    return {"type": "http.disconnect"}  # the route stops reading, as if the client left
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # the 413 is the answer; whatever the route makes of the cut body is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
                if not state["whole"]:  # answered without reading the body: close rather than read it to the end
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise


async def _refuse(send: Send, cap: int, malformed: bool) -> None:
    error = ("the Content-Length header is not a number" if malformed
             else f"the request body is larger than {size_text(cap)}, the limit for this address")
    body = orjson.dumps({"error": error})
    await send({"type": "http.response.start", "status": 400 if malformed else 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
