"""Logging in to the console from tests: users made through the service, logins through the real form."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from qunflow.errors import Conflict
from qunflow.services.users import add_user
from qunflow.workspace import Workspace

PASSWORD = "a-test-password-42"


def ensure_user(ws: Workspace, name: str = "owner", role: str = "owner", groups: list[str] | None = None) -> str:
    with contextlib.suppress(Conflict):  # made by an earlier login of the same test
        add_user(ws.engine, name, role, PASSWORD, groups)
    return name


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: Any, ws: Workspace, name: str = "owner", role: str = "owner",
           groups: list[str] | None = None) -> str:
    """Log an httpx (or Starlette test) client in through the login form; returns the session's CSRF token."""
    ensure_user(ws, name, role, groups)
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text), "name": name, "password": PASSWORD,
                                                 "next": "/console/login"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/console", follow_redirects=True).text)  # every role lands on a page with forms


def browser_log_in(page: Any, base_url: str, ws: Workspace, name: str = "owner", role: str = "owner",
                   groups: list[str] | None = None) -> None:
    """Log a Playwright page in through the login form."""
    ensure_user(ws, name, role, groups)
    page.goto(f"{base_url}/console/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_load_state()
    assert "/console/login" not in page.url, page.content()[:500]
