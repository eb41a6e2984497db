"""A person runs automation from the console in a real browser: playbooks, the advisor inbox, dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from qunflow.services.automation import work_once
from qunflow.services.inbox import list_inbox
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.store.tables import enrollments, inbox
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.integration.test_automation import Clock, join, local, run_until
from tests.integration.test_inbox_views import TOO_LONG, write
from tests.integration.test_join_flow import setup_community


@pytest.fixture
def world(workspace: Workspace, tmp_path: Path) -> Iterator[tuple[Workspace, Clock, LiveServer, dict[str, str]]]:
    """The shipped playbooks plus one whose message is too long; a member reaches Day 6, another just joined."""
    ws = workspace
    clock = Clock(local("2026-03-02T09:00:00"))
    ws.clock = clock
    setup_community(ws)
    apply_playbooks(ws, [*shipped_files(), write(tmp_path, "long.yaml", TOO_LONG)])
    clock.now = local("2026-03-02T10:00:00")
    early = join(ws, "v1", "u1")
    work_once(ws, worker="t")
    run_until(ws, clock, local("2026-03-08T10:00:00"), step=timedelta(hours=1))
    late = join(ws, "v2", "u2")
    for _ in range(2):  # the Day-0 coupon is sent; the next round meets the wait for Day 1
        work_once(ws, worker="t")
    with LiveServer(ws) as server:
        yield ws, clock, server, {"early": early, "late": late}


def status_of(ws: Workspace, key: str, subject: str) -> str:
    with ws.engine.connect() as conn:
        return str(conn.execute(select(enrollments.c.status).where(
            enrollments.c.playbook_key == key, enrollments.c.subject == subject)).scalar())


def test_playbooks_page_shows_versions_members_per_step_and_previews(world) -> None:  # type: ignore[no-untyped-def]
    ws, _clock, server, members = world
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console?lang=en")
        page.click("nav >> text=Playbooks")
        page.wait_for_url("**/console/playbooks?lang=en")
        card = page.locator("#pb-s2_warmup")
        assert "7-day warm-up for new members" in card.locator("h2").inner_text()
        assert card.locator(".version").inner_text() == "v1"
        assert "member_joined" in card.inner_text() and "enabled" in card.inner_text()
        waiting = [card.locator(f"table.steps tr[data-index='{i}'] td.num").inner_text() for i in range(4)]
        assert waiting == ["0", "0", "0", "1"]  # the member who joined today waits for Day 1 (step day1)
        assert "day1" in card.locator("table.steps tr[data-index='3']").inner_text()
        assert card.locator(".statuses .done").inner_text() == "1"  # the Day-0 joiner finished Day 6
        assert card.locator(".statuses .dead").inner_text() == "0"
        assert "Welcome, Alex! Here is your new-member coupon WELCOME8K2P" in card.locator(
            ".preview[data-template=day0_coupon]").inner_text()
        card.locator("details.versions summary").click()
        assert "2026-03-02 09:00" in card.locator("details.versions").inner_text()  # applied 09:00 Shanghai, shown so
        assert page.locator("#pb-too_long .statuses .dead").inner_text() == "2"
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN", viewport={"width": 390, "height": 844},
                      is_mobile=True) as page:
        page.goto(f"{server.url}/console/playbooks")
        assert page.locator("h1").inner_text() == "自动化剧本"
        card = page.locator("#pb-s2_warmup")
        assert "新人 7 天暖场" in card.locator("h2").inner_text() and "已启用" in card.inner_text()
        assert "小明,欢迎加入!送你一张新人券 WELCOME8K2P" in card.locator(
            ".preview[data-template=day0_coupon]").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_inbox_marks_a_day6_follow_up_done_and_assigns_it(world) -> None:  # type: ignore[no-untyped-def]
    ws, clock, server, members = world
    [item] = [i for i in list_inbox(ws) if i["member_id"] == members["early"]]
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN") as page:
        page.goto(f"{server.url}/console/inbox")
        assert page.locator("h1").inner_text() == "顾问待办"
        row = page.locator(f"#item-{item['id']}")
        assert "新人第 6 天一对一沟通" in row.inner_text() and "未分配" in row.inner_text()
        assert "2026-03-09 10:00" in row.inner_text()  # due 24 h after Day 6 10:00 Shanghai, shown in its zone
        row.locator("form.assign input[name=assignee]").fill("王芳")
        with page.expect_navigation():
            row.locator("form.assign button").click()
        assert page.locator(f"#item-{item['id']} .assignee").inner_text() == "王芳"
        with page.expect_navigation():
            page.locator(f"#item-{item['id']} button.done").click()
        assert page.locator(f"#item-{item['id']}").count() == 0
        assert "lang=zh" in page.url
    with ws.engine.connect() as conn:
        done_at, assignee = conn.execute(select(inbox.c.done_at, inbox.c.assignee)
                                         .where(inbox.c.id == item["id"])).one()
    assert (done_at, assignee) == (clock.now, "王芳")
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console/inbox?lang=en&status=done")
        row = page.locator(f"#item-{item['id']}")
        assert "Day-6 one-to-one with a new member" in row.inner_text() and "done 2026-03-08 10:00" in row.inner_text()
        row.locator("button.undone").click()
        page.wait_for_url("**status=done**")
        assert page.locator(f"#item-{item['id']}").count() == 0
    assert [i["id"] for i in list_inbox(ws, assignee="王芳")] == [item["id"]]  # open again


def test_dead_letters_retry_then_skip_through_the_console(world) -> None:  # type: ignore[no-untyped-def]
    ws, clock, server, members = world
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console/automation/dead?lang=en")
        letters = page.locator(".dead-letter")
        assert letters.count() == 2
        mine = page.locator(".dead-letter", has_text=members["late"])
        assert "too_long" in mine.inner_text() and "longer than 4096 characters" in mine.inner_text()
        mine.locator("button.retry").click()
        page.wait_for_url("**notice=retried**")
        assert "Back in line" in page.locator(".notice").inner_text()
        assert page.locator(".dead-letter").count() == 1
        assert status_of(ws, "too_long", members["late"]) == "active"

        clock.now += timedelta(minutes=1)
        work_once(ws, worker="t")  # still too long: dead again
        page.reload()
        assert page.locator(".dead-letter").count() == 2
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN") as page:
        page.goto(f"{server.url}/console/automation/dead")
        assert page.locator("h1").inner_text() == "死信"
        mine = page.locator(".dead-letter", has_text=members["late"])
        mine.locator("button.skip").click()
        page.wait_for_url("**notice=skipped**")
        assert "已跳过失败的步骤" in page.locator(".notice").inner_text()
    work_once(ws, worker="t")
    work_once(ws, worker="t")
    assert status_of(ws, "too_long", members["late"]) == "done"
    assert status_of(ws, "too_long", members["early"]) == "dead"


@pytest.mark.parametrize("headers", [{}, {"origin": "https://evil.example"}, {"origin": "null"},
                                     {"referer": "https://evil.example/console/inbox"}])
def test_console_forms_from_another_site_are_refused(world, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    ws, _clock, server, _members = world
    item = list_inbox(ws)[0]
    with ws.engine.connect() as conn:
        dead = conn.execute(select(enrollments.c.id).where(enrollments.c.status == "dead")).scalars().first()
    with httpx.Client(base_url=server.url) as client:
        csrf = log_in(client, ws)
        for path in (f"/console/inbox/{item['id']}/done", f"/console/automation/dead/{dead}/retry"):
            anonymous = httpx.post(server.url + path, data={"lang": "en"}, headers=headers)
            assert anonymous.status_code == 401 and "log in first" in anonymous.json()["error"]
            # a page on another site can make the browser send the cookie, but it cannot read the token
            forged = client.post(path, data={"lang": "en"}, headers={"origin": server.url, **headers})
            assert forged.status_code == 403 and "CSRF token" in forged.json()["error"]
            foreign = client.post(path, data={"lang": "en", "csrf": csrf}, headers=headers)
            assert foreign.status_code == 403 and "sent from the console itself" in foreign.json()["error"]
        assert list_inbox(ws)[0] == item
        with ws.engine.connect() as conn:
            assert conn.execute(select(enrollments.c.status).where(enrollments.c.id == dead)).scalar() == "dead"
        same = client.post(f"/console/inbox/{item['id']}/done", data={"lang": "en", "csrf": csrf},
                           headers={"origin": server.url})
        assert same.status_code == 303 and same.headers["location"] == "/console/inbox?lang=en"
        bad = client.post(f"/console/inbox/{item['id']}/archive", data={"csrf": csrf}, headers={"origin": server.url})
        assert bad.status_code == 400 and "unknown inbox action" in bad.json()["error"]
