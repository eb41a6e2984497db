"""An operator sets up channels, campaigns, entry points and groups in the console, without Python: in a
real browser at desktop (1366 px) and phone (390 px) widths, and over HTTP for refusals."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qunflow.services import catalog
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page


@pytest.fixture
def server(workspace: Workspace) -> Iterator[LiveServer]:
    with LiveServer(workspace) as live:
        yield live


def submit(page, form: str) -> None:  # type: ignore[no-untyped-def]
    with page.expect_navigation():
        page.locator(f"{form} button[type=submit]").click()


def test_operator_creates_edits_and_archives_in_the_browser(workspace: Workspace, server: LiveServer) -> None:
    ws = workspace
    with browser_page(log_in_to=(server.url, ws), locale="en-US", viewport={"width": 1366, "height": 900}) as page:
        page.goto(f"{server.url}/console?lang=en")
        page.click("nav >> text=Set-up")
        page.wait_for_url("**/console/setup?lang=en")
        page.click("text=Add a channel")
        page.fill("#add-channel input[name=key]", "xhs")
        page.select_option("#add-channel select[name=kind]", "content")
        page.fill("#add-channel input[name=name]", "Xiaohongshu")
        submit(page, "#add-channel")
        assert page.locator("#notice").inner_text() == "Channel xhs added"
        page.click("text=Add a channel")
        page.fill("#add-channel input[name=key]", "Bad Key")
        submit(page, "#add-channel")
        assert "channel key" in page.locator("#error").inner_text()  # the page again, saying what to fix
        page.click("text=Add a group")
        page.fill("#add-group input[name=key]", "core-1")
        page.select_option("#add-group select[name=tier]", "core")
        page.fill("#add-group input[name=capacity]", "150")
        submit(page, "#add-group")
        page.click("text=Add an entry point")
        page.fill("#add-entry input[name=code]", "note-7")
        page.select_option("#add-entry select[name=channel]", "xhs")
        page.select_option("#add-entry select[name=tier]", "core")
        page.select_option("#add-entry select[name=gate]", "seed")
        page.fill("#add-entry input[name=utm_medium]", "poster")
        submit(page, "#add-entry")
        card = page.locator("#entry-note-7")
        assert "/j/note-7" in card.inner_text() and "utm_medium=poster" in card.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366

        card.locator("summary").click()
        card.locator("select[name=tier]").select_option("interest")
        card.locator("input[name=utm_content]").fill("spring")
        submit(page, "#entry-note-7 form.edit")
        assert page.locator("#notice").inner_text() == "Entry point note-7 changed"
        group = page.locator("#group-core-1")
        group.locator("summary").click()
        group.locator("input[name=capacity]").fill("120")
        submit(page, "#group-core-1 form.edit")
        assert page.locator("#group-core-1 .seats").inner_text() == "0/120"

        submit(page, "#entry-note-7 form.archive")
        assert page.locator("#notice").inner_text() == "Entry point note-7 archived"
        assert page.locator("#entry-note-7").count() == 0  # archived ones are hidden unless asked for
        page.click("text=Show archived")
        assert "closed" in page.locator("#entry-note-7").inner_text()
        submit(page, "#group-core-1 form.archive")  # the list still shows archived ones after an action
        submit(page, "#group-core-1 form.restore")
        assert page.locator("#notice").inner_text() == "Group core-1 restored"
    with ws.engine.connect() as conn:
        entry = catalog.entry_info(conn, "note-7", archived_ok=True)
    assert (entry.target_tier, entry.channel, entry.archived) == ("interest", "xhs", True)
    assert entry.utm == {"utm_source": "xhs", "utm_medium": "poster", "utm_content": "spring"}
    assert entry.gate is not None and entry.gate.key == "seed"
    assert httpx.get(f"{server.url}/j/note-7").status_code == 410


def test_set_up_page_fits_a_phone_with_every_form_open(workspace: Workspace, server: LiveServer) -> None:
    ws = workspace
    catalog.add_channel(ws, "douyin-ads-long-channel-name", "ad", "抖音信息流广告(很长的名字用来测试换行)")
    catalog.add_campaign(ws, "spring-2026-launch", "douyin-ads-long-channel-name")
    catalog.add_group(ws, "newbie-group-number-one", "newbie", 200)
    catalog.add_entry_point(ws, "douyin-spring-poster-01", "douyin-ads-long-channel-name",
                            campaign="spring-2026-launch", utm={"utm_medium": "feed", "utm_content": "x" * 60})
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN", viewport={"width": 390, "height": 844},
                      is_mobile=True) as page:
        page.goto(f"{server.url}/console/setup")
        assert page.locator("h1").inner_text().startswith("设置")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert "新人群" in page.locator("#group-newbie-group-number-one").inner_text()


def test_bad_input_is_a_4xx_with_a_message_and_stores_nothing(workspace: Workspace, server: LiveServer) -> None:
    ws = workspace
    catalog.add_channel(ws, "xhs", "content")
    catalog.add_group(ws, "core-1", "core", 100)
    # An English browser: the page, and so its refusals, are in English (a Chinese one gets them in Chinese).
    with httpx.Client(base_url=server.url, headers={"origin": server.url, "accept": "text/html",
                                                    "accept-language": "en"}) as client:
        csrf = log_in(client, ws, "op", "operator")

        def post(path: str, **data: str) -> httpx.Response:
            return client.post(path, data={**data, "csrf": csrf, "lang": "en"}, follow_redirects=False)

        bad_code = post("/console/setup/entry/add", code="BAD CODE", channel="xhs")
        assert bad_code.status_code == 400 and 'id="error"' in bad_code.text and "entry code" in bad_code.text
        assert post("/console/setup/entry/add", code="e1", channel="nope").status_code == 404
        assert post("/console/setup/channel/add", key="web", kind="tv").status_code == 400
        assert post("/console/setup/channel/add", key="xhs", kind="ad").status_code == 409
        capacity = post("/console/setup/group/core-1/edit", capacity="lots")
        assert capacity.status_code == 400 and "whole number" in capacity.text
        assert post("/console/setup/group/core-1/edit", tier="vip").status_code == 400
        assert post("/console/setup/thing/x/archive").status_code == 400
        assert post("/console/setup/group/nope/archive").status_code == 404
        no_csrf = client.post("/console/setup/channel/add", data={"key": "web", "kind": "ad"})
        assert no_csrf.status_code == 403
    assert [c["key"] for c in catalog.list_channels(ws)] == ["xhs"]
    assert catalog.list_entry_points(ws, include_archived=True) == []
    assert [(g["tier"], g["capacity"]) for g in catalog.list_groups(ws)] == [("core", 100)]
    with httpx.Client(base_url=server.url) as analyst:
        log_in(analyst, ws, "ann", "analyst")
        assert analyst.get("/console/setup").status_code == 403  # set-up needs config:write
