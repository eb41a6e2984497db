"""Logins, roles, group limits, CSRF, the Host check, security headers, token scopes and the audit log,
over real HTTP on loopback (and a real browser where a browser is what protects)."""

from __future__ import annotations

import http.server
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from qunflow.services import audit
from qunflow.services.inbox import list_inbox
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.tokens import create_token
from qunflow.store.eventlog import utcnow
from qunflow.store.tables import inbox, members
from qunflow.web.app import console_routers
from qunflow.workspace import Workspace
from tests.access import PASSWORD, browser_log_in, csrf_of, ensure_user, log_in
from tests.conftest import LiveServer, free_port
from tests.e2e.browser import browser_page
from tests.e2e.test_cli_basics import QUNFLOW
from tests.integration.test_automation import join
from tests.integration.test_join_flow import setup_community


@pytest.fixture
def world(workspace: Workspace) -> Iterator[tuple[Workspace, LiveServer, dict[str, str]]]:
    """Two members in two groups (core-1 and newbie-1), each with an open inbox item."""
    ws = workspace
    setup_community(ws, core_capacity=1)
    apply_playbooks(ws, shipped_files())
    first, second = join(ws, "v1", "u1"), join(ws, "v2", "u2")
    with ws.engine.begin() as conn:
        for member_id in (first, second):
            conn.execute(inbox.insert().values(kind="follow_up", cause=f"test:{member_id}", member_id=member_id,
                                               title=f"call {member_id}", created_at=utcnow()))
        groups = dict(conn.execute(select(members.c.id, members.c.group_id)).all())
    assert groups[first] != groups[second]
    with LiveServer(ws) as server:
        yield ws, server, {"core": first, "newbie": second}


def console_paths() -> list[tuple[str, str]]:
    """Every console route with its path parameters filled in, but the login and logout."""
    found = []
    for route in (r for router in console_routers() for r in router.routes):
        path = getattr(route, "path", "")
        if not path.startswith("/console") or path in ("/console/login", "/console/logout"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in sorted(getattr(route, "methods", set()) - {"HEAD"}):
            found.append((method, concrete))
    return found


def test_no_console_page_is_served_to_an_anonymous_caller(world) -> None:  # type: ignore[no-untyped-def]
    _ws, server, _members = world
    paths = console_paths()
    assert len(paths) >= 12  # dashboard, entry points, playbooks, inbox, dead letters, rewards, audit, ...
    for method, path in paths:
        answer = httpx.request(method, server.url + path, headers={"origin": server.url})
        if method == "GET":
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/console/login?next="), path
        else:
            assert answer.status_code == 401, (method, path)
    login = httpx.get(server.url + "/console/login")
    assert login.status_code == 200 and 'name="password"' in login.text


def test_each_role_opens_only_its_pages(world) -> None:  # type: ignore[no-untyped-def]
    ws, server, _members = world
    expected = {  # page -> roles that may open it
        "/console": {"owner", "operator", "analyst"},
        "/console/entry-points": {"owner", "operator", "analyst"},
        "/console/referrals": {"owner", "operator", "analyst"},
        "/console/plan": {"owner", "operator", "analyst"},
        "/console/doctor": {"owner", "operator"},
        "/console/inbox": {"owner", "operator", "advisor"},
        "/console/at-risk": {"owner", "operator", "advisor"},
        "/console/rewards": {"owner", "operator"},
        "/console/playbooks": {"owner", "operator"},
        "/console/meetups": {"owner", "operator"},
        "/console/experiments": {"owner", "operator", "analyst"},
        "/console/automation/dead": {"owner", "operator"},
        "/console/sends": {"owner", "operator"},
        "/console/sandbox": {"owner", "operator"},
        "/console/setup": {"owner", "operator"},
        "/console/gates": {"owner", "operator"},
        "/console/audit": {"owner"},
    }
    extra = {"/console/texts": {"owner", "operator"}, "/console/gates/new": {"owner", "operator"},  # not in the nav
             "/console/polls": {"owner", "operator"}}
    for role in ("owner", "operator", "advisor", "analyst"):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            log_in(client, ws, f"{role}-1", role)
            for path, roles in {**expected, **extra}.items():
                answer = client.get(path, params={"lang": "en"})
                if role == "advisor" and path == "/console":
                    assert answer.status_code == 303 and answer.headers["location"] == "/console/inbox"
                    continue
                assert (answer.status_code == 200) == (role in roles), (role, path, answer.status_code)
                if answer.status_code == 200:  # the navigation offers only what the role may open
                    nav = answer.text.split("</nav>")[0]
                    links = set(re.findall(r'<a href="(/console[^"?]*)\?lang=', nav)) - {"/console"}
                    assert links == {p for p, r in expected.items() if role in r} - {"/console"}, (role, path)
                    assert ("Dashboard</a>" in answer.text) == (role in expected["/console"]), (role, path)


def test_an_advisor_sees_and_changes_only_their_groups_inbox_in_a_browser(world) -> None:  # type: ignore[no-untyped-def]
    ws, server, ids = world
    with browser_page(locale="en-US") as page:
        browser_log_in(page, server.url, ws, "amy", "advisor", ["core-1"])
        page.goto(f"{server.url}/console?lang=en")
        page.wait_for_url("**/console/inbox")
        text = page.locator("main.wide").inner_text()
        assert f"call {ids['core']}" in text and f"call {ids['newbie']}" not in text
        assert page.locator("#whoami").inner_text() == "amy · advisor"
    other = next(i for i in list_inbox(ws) if i["member_id"] == ids["newbie"])
    with httpx.Client(base_url=server.url, timeout=30, headers={"origin": server.url}) as client:
        csrf = log_in(client, ws, "amy", "advisor", ["core-1"])
        refused = client.post(f"/console/inbox/{other['id']}/done", data={"csrf": csrf})
        assert refused.status_code == 404
        assert client.get("/console/rewards").status_code == 403
    assert next(i for i in list_inbox(ws) if i["member_id"] == ids["newbie"])["done_at"] is None


def test_an_analyst_sees_no_personal_data_in_a_browser(world) -> None:  # type: ignore[no-untyped-def]
    ws, server, _ids = world
    personal = ["Li Lei", "User u1", "User u2"]  # the gate name and the platform names of the two members
    with browser_page(locale="en-US") as page:
        browser_log_in(page, server.url, ws, "ann", "analyst")
        page.goto(f"{server.url}/console?lang=en")
        pages = {page.url.split("?")[0]}
        for link in page.locator("nav a").all():
            href = link.get_attribute("href") or ""
            if href.startswith("/console"):
                pages.add(server.url + href.split("?")[0])
        assert len(pages) >= 3
        for url in sorted(pages):
            page.goto(url)
            text = page.content()
            assert not any(name in text for name in personal), url
        page.goto(f"{server.url}/console/sandbox")  # the sandbox shows names: not for analysts
        assert "403" in page.locator("h1").inner_text()
    with httpx.Client(base_url=server.url) as owner:
        log_in(owner, ws)
        assert "Li Lei" in owner.get("/console/sandbox").text  # the welcome DM: the check above can fail


def test_a_foreign_host_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    _ws, server, _ids = world
    rebound = httpx.get(server.url + "/console/login", headers={"host": "attacker.example"})
    assert rebound.status_code == 400 and "does not answer for the host 'attacker.example'" in rebound.text
    assert httpx.get(server.url + "/console/login").status_code == 200
    assert httpx.get(f"http://localhost:{server.port}/healthz").status_code == 200


def test_security_headers_and_a_framed_console_is_refused_by_the_browser(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _ws, server, _ids = world
    answer = httpx.get(server.url + "/console/login")
    csp = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp and "unsafe-inline" not in csp.split(
        "script-src")[1].split(";")[0]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    (tmp_path / "frame.html").write_text(f'<iframe id="f" src="{server.url}/console/login"></iframe>')
    port = free_port()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        with browser_page() as page:
            page.goto(f"http://127.0.0.1:{port}/frame.html")
            page.wait_for_timeout(1000)
            framed = [f for f in page.frames if f != page.main_frame]
            assert framed and "Log in" not in framed[0].content() and "登录" not in framed[0].content()
    finally:
        site.shutdown()


def test_login_is_throttled_and_sessions_end_at_logout(world) -> None:  # type: ignore[no-untyped-def]
    ws, server, _ids = world
    ensure_user(ws, "olga", "operator")
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept-language": "en"}) as client:
        for _ in range(10):
            form = client.get("/console/login")
            wrong = client.post("/console/login", data={"csrf": csrf_of(form.text), "name": "olga",
                                                        "password": "not-the-password"})
            assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        form = client.get("/console/login")
        blocked = client.post("/console/login", data={"csrf": csrf_of(form.text), "name": "olga", "password": PASSWORD})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 60
    with httpx.Client(base_url=server.url, timeout=30, headers={"origin": server.url}) as client:
        form = client.get("/console/login")
        no_token = client.post("/console/login", data={"name": "owner", "password": PASSWORD})
        assert no_token.status_code == 403  # the login form carries its own CSRF token
        csrf = log_in(client, ws)
        session = client.cookies.get("qf_session")
        assert session and client.get("/console/audit").status_code == 200
        out = client.post("/console/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
    again = httpx.get(server.url + "/console/audit", cookies={"qf_session": session})
    assert again.status_code == 303  # the old cookie no longer opens anything
    logins = [(r["actor"], r["outcome"]) for r in audit.entries(ws.engine, action="login")]
    assert ("user:olga", "refused") in logins and ("user:owner", "ok") in logins


def test_token_scopes_groups_revocation_and_expiry(world) -> None:  # type: ignore[no-untyped-def]
    ws, server, _ids = world
    shop = create_token(ws.engine, "shop", ["events:write", "coupons:redeem"])
    bi = create_token(ws.engine, "bi", ["metrics:read"], groups=["core-1"])

    def get(token: str, path: str, **params: str) -> httpx.Response:
        return httpx.get(server.url + path, params=params, headers={"authorization": f"Bearer {token}"})

    refused = httpx.post(server.url + "/api/v1/rewards/1/approve", headers={"authorization": f"Bearer {shop}"})
    assert refused.status_code == 403 and "lacks the scope rewards:decide" in refused.json()["error"]
    assert get(shop, "/api/v1/metrics").status_code == 403
    narrowed = get(bi, "/api/v1/metrics", by="group")
    assert narrowed.status_code == 200 and {r["group"] for r in narrowed.json()["rows"]} <= {"core-1"}
    assert get(bi, "/api/v1/metrics", group="newbie-1").status_code == 403
    assert get(bi, "/api/v1/inbox").status_code == 403
    cli = QUNFLOW
    listed = subprocess.run([*cli, "token", "list", "-w", str(ws.home)], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert "shop" in listed.stdout and "coupons:redeem events:write" in listed.stdout and shop not in listed.stdout
    revoked = subprocess.run([*cli, "token", "revoke", "bi", "-w", str(ws.home)], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    assert revoked.returncode == 0, revoked.stderr
    gone = get(bi, "/api/v1/metrics")
    assert gone.status_code == 401 and "was revoked" in gone.json()["error"]
    soon = create_token(ws.engine, "soon", ["metrics:read"], expires_at=utcnow() + timedelta(seconds=1))
    assert get(soon, "/api/v1/metrics").status_code == 200
    time.sleep(1.2)  # expiry is checked against the real clock
    assert get(soon, "/api/v1/metrics").status_code == 401
    actions = [(r["actor"], r["action"], r["outcome"]) for r in audit.entries(ws.engine)]
    assert ("token:shop", "POST /api/v1/rewards/{reward_id}/approve", "refused") in actions
    assert any(a[0].startswith("cli:") and a[1] == "token revoke" and a[2] == "ok" for a in actions)


def test_user_add_through_the_cli(workspace: Workspace) -> None:
    cli = QUNFLOW

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, "-w", str(workspace.home)], input=stdin, capture_output=True, text=True,
                              timeout=60)

    setup_community(workspace)
    made = run("user", "add", "wang", "--role", "advisor", "--groups", "core-1,core-2", "--password-stdin",
               stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert run("user", "add", "wang", "--role", "owner", "--password-stdin", stdin=PASSWORD + "\n").returncode == 2
    short = run("user", "add", "li", "--role", "owner", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    role = run("user", "add", "li", "--role", "boss", "--password-stdin", stdin=PASSWORD + "\n")
    assert role.returncode == 2 and "owner, operator, advisor, analyst" in role.stderr
    group = run("user", "add", "li", "--role", "advisor", "--groups", "nope", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert group.returncode == 2 and "unknown group 'nope'" in group.stderr
    listed = run("user", "list").stdout
    assert "wang" in listed and "core-1, core-2" in listed and "li " not in listed
    with LiveServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        log_in(client, workspace, "wang", "advisor")
        assert client.get("/console/inbox").status_code == 200
    [row] = audit.entries(workspace.engine, action="user add", limit=1)
    assert row["outcome"] == "refused" and PASSWORD not in str(row)  # the newest: the unknown group


def test_serve_on_a_public_address_needs_a_user(workspace: Workspace) -> None:
    cli = QUNFLOW
    refused = subprocess.run([*cli, "serve", "--host", "0.0.0.0", "--port", str(free_port()), "-w",
                              str(workspace.home)], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "no console user exists yet" in refused.stderr


def test_a_form_on_another_site_cannot_act_for_a_logged_in_browser(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, server, ids = world
    item = next(i for i in list_inbox(ws) if i["member_id"] == ids["core"])
    (tmp_path / "evil.html").write_text(
        f'<form id="f" method="post" action="{server.url}/console/inbox/{item["id"]}/done">'
        '<input name="lang" value="en"></form><script>document.getElementById("f").submit()</script>')
    port = free_port()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
            assert page.goto(f"{server.url}/console/inbox?lang=en").status == 200  # logged in
            with page.expect_navigation(url=f"{server.url}/console/inbox/{item['id']}/done"):
                page.goto(f"http://127.0.0.1:{port}/evil.html")
            body = page.content()
            assert "log in first" in body or "CSRF token" in body, body[:300]
    finally:
        site.shutdown()
    assert next(i for i in list_inbox(ws) if i["id"] == item["id"])["done_at"] is None


def test_a_user_limited_to_groups_sees_only_their_groups_on_the_dashboard(world) -> None:  # type: ignore[no-untyped-def]
    ws, server, _members = world
    with httpx.Client(base_url=server.url, timeout=30) as client:
        log_in(client, ws, "ann", "analyst", ["core-1"])
        board = client.get("/console", params={"lang": "en"})
        other = client.get("/console", params={"lang": "en", "group": "newbie-1"})
    assert board.status_code == 200
    assert re.findall(r'<tr data-group="([^"]+)"', board.text) == ["core-1"]  # no row (nor link) to newbie-1
    assert other.status_code == 403
