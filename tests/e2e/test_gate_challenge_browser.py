"""A real browser passes the gate's proof-of-work by itself, under a CSP that allows no inline script."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from qunflow.store.tables import members, spent_challenges
from qunflow.workspace import Workspace
from tests.e2e.browser import browser_page
from tests.e2e.test_gate_guard import guarded
from tests.integration.test_join_flow import setup_community

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


def test_headless_chromium_solves_the_challenge_and_gets_its_ticket(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace)
    guarded(workspace)  # default challenge settings; a headless browser's user agent asks for the challenge
    posted: list[str] = []
    problems: list[str] = []
    with browser_page(locale="en-US") as page:
        def with_csp(route: Any) -> None:  # as the console will serve it: no inline script may run
            response = route.fetch()
            route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})

        page.route("**/j/**", with_csp)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: posted.append(r.post_data or "") if r.method == "POST" else None)
        page.goto(f"{live_server.url}/j/xhs-note-1?lang=en")
        assert "HeadlessChrome" in page.evaluate("navigator.userAgent")
        page.fill("#f-name", "Li Lei")
        page.fill("#f-need", "more leads")
        page.fill("#f-interest", "ads")
        page.check("input[name=stage][value=buying]")
        page.check("input[name=experience][value=yes]")
        page.check("#consent")
        page.click("button[type=submit]")
        page.wait_for_selector("#invite", timeout=20_000)
        assert "Your group is ready" in page.inner_text("h1")
    assert len(posted) == 1 and "qf_pow=" in posted[0] and "qf_pow=&" not in posted[0]
    assert not [p for p in problems if "Content Security Policy" in p]
    with workspace.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(spent_challenges)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(members)).scalar_one() == 1
