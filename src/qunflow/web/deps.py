"""Request-scoped helpers shared by the routers (who the caller is: web.auth)."""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPBearer

from qunflow.workspace import Workspace

# Declares the API's security scheme in the OpenAPI schema (the /docs "Authorize" button); the checks and
# their messages are check_token's, so auto_error is off.
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token from `qunflow token create NAME` (Authorization: Bearer <token>).")


def workspace_of(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]
