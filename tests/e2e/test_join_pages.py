"""A person on a phone: landing page, gate form, invite link, welcome DM, over real HTTP."""

from __future__ import annotations

import re

import httpx
import segno  # noqa: F401  (QR encoder used by the app)
from sqlalchemy import select

from qunflow.store.tables import events
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, PHONE, setup_community


def test_landing_gate_and_join_over_http(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "en", **PHONE}) as client:
        page = client.get("/j/xhs-note-1", params={"utm_campaign": "spring", "utm_content": "note7"})
        assert page.status_code == 200 and "What do you want to learn?" in page.text
        vid = client.cookies["qf_vid"]
        ticket = client.post("/j/xhs-note-1", data=FORM)
        assert ticket.status_code == 200, ticket.text
        invite = re.search(r'id="invite" href="([^"]+)"', ticket.text)
        assert invite
        assert 'id="join-message"' not in ticket.text  # the link carries the entry (no joins_by_message)
        path = httpx.URL(invite.group(1)).path
        joined = client.post(path, data={"name": "Li Lei"})
        assert joined.status_code == 200 and "Li Lei" in joined.text and "coupon" in joined.text
    with workspace.engine.connect() as conn:
        landing = conn.execute(select(events).where(events.c.type == "landing_view")).one()
        join = conn.execute(select(events).where(events.c.type == "joined")).one()
    assert landing.visitor_id == join.visitor_id == vid
    assert landing.properties == {"utm_source": "xhs", "utm_campaign": "spring", "utm_content": "note7"}
    assert landing.channel == join.channel == "xhs"


def test_gate_errors_rerender_in_chinese_and_store_nothing(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    with httpx.Client(base_url=live_server.url, headers={"accept-language": "zh-CN", **PHONE}) as client:
        client.get("/j/xhs-note-1")
        response = client.post("/j/xhs-note-1", data={**FORM, "consent": ""})
    assert response.status_code == 422 and "请检查" in response.text
    with workspace.engine.connect() as conn:
        assert conn.execute(select(events).where(events.c.type == "joined")).first() is None


def test_unknown_entry_code_is_404_and_qr_codes_render(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get("/j/nope").status_code == 404
        assert client.get("/j/nope/qr.svg").status_code == 404
        assert client.get("/j/xhs-note-1/qr.gif").status_code == 404
        svg = client.get("/j/xhs-note-1/qr.svg")
        png = client.get("/j/xhs-note-1/qr.png")
    assert svg.headers["content-type"].startswith("image/svg") and b"<svg" in svg.content
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_forged_task_link_is_refused(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server.url) as client:
        assert client.post("/m/m_123.deadbeef/task/checkin").status_code == 401


def test_platform_hook_with_a_bad_signature_is_refused(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server.url) as client:
        forged = client.post("/hooks/sandbox", content=b'{"kind": "member_left"}',
                             headers={"x-sandbox-signature": "0" * 64})
        unconnected = client.post("/hooks/telegram", content=b"{}")
        unknown = client.post("/hooks/myspace", content=b"{}")
    assert forged.status_code == 401 and "bad signature" in forged.json()["error"]
    assert unconnected.status_code == 404 and "'telegram' is not connected" in unconnected.json()["error"]
    assert unknown.status_code == 404 and "not connected" in unknown.json()["error"]
    assert unknown.json()["error_zh"].startswith("此工作区没有连接")


def test_platform_hook_answers_as_the_app_routes_do(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    """/hooks/{platform} is answered before the app's router (web/hooks.py): the same refusals, redirect and
    headers as any route, and no entry in the API's schema."""
    with httpx.Client(base_url=live_server.url) as client:
        wrong_method = client.put("/hooks/sandbox", content=b"{}")
        slash = client.post("/hooks/sandbox/?x=1", content=b"{}")
        deeper = client.post("/hooks/sandbox/more", content=b"{}")
        foreign = client.post("/hooks/sandbox", content=b"{}", headers={"host": "evil.example"})
        schema = client.get("/openapi.json").json()
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "Method Not Allowed"}
    assert wrong_method.headers["allow"] == "POST, GET"
    assert wrong_method.headers["x-frame-options"] == "DENY" and "content-security-policy" in wrong_method.headers
    assert slash.status_code == 307 and slash.headers["location"] == f"{live_server.url}/hooks/sandbox?x=1"
    assert deeper.status_code == 404 and deeper.json() == {"error": "Not Found"}
    assert foreign.status_code == 400 and "evil.example" in foreign.text
    assert not [path for path in schema["paths"] if path.startswith("/hooks")]


def test_sandbox_invite_without_a_name_is_400_and_joins_nobody(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)

    token = workspace.sandbox.create_invite("chat-newbie-1", "walk-in", join_request=False)
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get("/sandbox/invite/nope").status_code == 404
        response = client.post(f"/sandbox/invite/{token}", data={"name": "  "})
    assert response.status_code == 400 and "display name" in response.json()["error"]
    assert workspace.sandbox.counts()["users"] == 0


def test_gate_post_for_unknown_entry_is_404(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server.url) as client:
        assert client.post("/j/nope", data=FORM).status_code == 404


def test_referral_links_carry_the_referrer_and_junk_refs_are_ignored(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    with httpx.Client(base_url=live_server.url, headers=PHONE) as client:
        assert client.get("/j/xhs-note-1", params={"ref": "m_abc123"}).status_code == 200
        assert client.get("/j/xhs-note-1", params={"ref": "x" * 500 + "<script>"}).status_code == 200
        ticket = client.post("/j/xhs-note-1?ref=m_abc123", data=FORM)
        assert ticket.status_code == 200
    with workspace.engine.connect() as conn:
        refs = list(conn.execute(select(events.c.referrer_id).where(events.c.type == "landing_view")
                                 .order_by(events.c.seq)).scalars())
    assert refs == ["m_abc123", None]
