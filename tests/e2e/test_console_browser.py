"""A person opens the console in a real browser and sees the chain's numbers and charts."""

from __future__ import annotations

from pathlib import Path

import pytest

from qunflow.sim.demo import Simulation
from tests.access import log_in
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from qunflow.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("console") / "ws")
    Simulation(ws, days=14, seed=3).run()
    with LiveServer(ws) as server:
        yield ws, server
    ws.close()


def test_dashboard_shows_kpis_funnel_and_retention_in_english(demo_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, server = demo_server
    with browser_page(log_in_to=(server.url, ws), locale="en-US", viewport={"width": 1280, "height": 900}) as page:
        page.goto(f"{server.url}/console?lang=en")
        assert page.locator("h1").inner_text() == "Community dashboard"
        kpis = page.locator("#kpis .kpi")
        assert kpis.count() == 12  # M1 ... M9, M3, K-factor, revenue, LTV and CPA
        assert "M1 join conversion" in page.locator("#kpis").inner_text()
        assert page.locator("#funnel svg rect").count() >= 8
        assert page.locator("#retention svg text").count() > 4
        rows = page.locator("#channels tr")
        assert rows.count() >= 5  # header + four paid/organic channels
        page.screenshot(path=str(tmp_path / "console.png"), full_page=True)


def test_dashboard_reads_well_on_a_phone_in_chinese(demo_server) -> None:  # type: ignore[no-untyped-def]
    ws, server = demo_server
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN", viewport={"width": 390, "height": 844},
                      is_mobile=True) as page:
        page.goto(f"{server.url}/console")
        assert page.locator("h1").inner_text() == "社群看板"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing forces sideways scrolling of the page


def test_bad_dates_get_a_clear_400(demo_server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    ws, server = demo_server
    with httpx.Client(base_url=server.url, timeout=30) as client:
        log_in(client, ws)
        response = client.get("/console", params={"from": "yesterday"})
    assert response.status_code == 400 and "from must be a date" in response.json()["error"]


def test_sandbox_page_lists_chats_and_welcome_dms(demo_server) -> None:  # type: ignore[no-untyped-def]
    ws, server = demo_server
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console/sandbox?lang=en")
        assert page.locator("#chats tr").count() >= 8
        assert "new-member coupon" in page.content() or "新人券" in page.content()



def test_filtering_the_dashboard_by_channel(demo_server) -> None:  # type: ignore[no-untyped-def]
    ws, server = demo_server
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console?lang=en")
        everyone = page.locator("#kpis .kpi").nth(2).locator(".value").inner_text()
        page.select_option("#f-channel", "website")
        page.click("form[method=get] button[type=submit]")
        page.wait_for_url("**channel=website**")
        rows = page.locator("#channels tr")
        assert rows.count() == 2 and "website" in rows.nth(1).inner_text()
        narrowed = page.locator("#kpis .kpi").nth(2).locator(".value").inner_text()
        assert int(narrowed.replace(",", "")) < int(everyone.replace(",", ""))
