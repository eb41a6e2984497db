"""Request-scoped helpers shared by the routers."""

from __future__ import annotations

from fastapi import Request

from qunflow.services.tokens import check_token
from qunflow.workspace import Workspace


def workspace_of(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]


def require_token(request: Request) -> str:
    """Check 'Authorization: Bearer <token>'; returns the token's name."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return check_token(workspace_of(request).engine,
                       token.strip() if scheme.lower() == "bearer" else None)
