"""Request-scoped helpers shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qunflow.services.tokens import check_token
from qunflow.workspace import Workspace

# Declares the API's security scheme in the OpenAPI schema (the /docs "Authorize" button); the checks and
# their messages are check_token's, so auto_error is off.
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token from `qunflow token create NAME` (Authorization: Bearer <token>).")


def workspace_of(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """Check 'Authorization: Bearer <token>'; returns the token's name."""
    return check_token(workspace_of(request).engine, credentials.credentials if credentials else None)
