"""Request-scoped helpers shared by the routers (who the caller is: web.auth)."""

from __future__ import annotations

from fastapi import Request

from qunflow.workspace import Workspace


def workspace_of(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]
