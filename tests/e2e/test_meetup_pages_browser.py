"""S4 event pages in a real browser at 390 px: a member signs up on their own page and checks in for the
day-of coupon; the console lists the event with its numbers and creates one with its date (1366 and 390 px)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from qunflow.services.meetups import add_meetup, find, meetup_stats
from qunflow.services.privacy import member_link_token
from qunflow.workspace import Workspace
from tests.e2e.browser import browser_page
from tests.integration.test_day1_tasks import gated_member
from tests.integration.test_join_flow import setup_community

PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "en-US"}


def fits(page: Any, width: int = 390) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_member_signs_up_and_checks_in_on_a_phone(workspace: Workspace, live_server: Any) -> None:
    ws = workspace
    setup_community(ws)
    member_id = gated_member(ws)
    start = ws.clock() + timedelta(minutes=10)  # check-in is open from 30 minutes before the start
    add_meetup(ws, "live", title_zh="线上分享会", title_en="Live session", starts_at=start, checkin_keyword="到场")
    token = member_link_token(ws, member_id)
    base = live_server.url
    with browser_page(**PHONE) as page:
        page.goto(f"{base}/e/live?lang=en")
        fits(page)
        assert "Live session" in page.inner_text("h1") and "sign up" in page.inner_text("#event")
        page.goto(f"{base}/m/{token}/event/live?lang=en")
        fits(page)
        assert meetup_stats(ws, "live")["signups"] == 0  # opening the page signs nobody up
        page.click("#signup")
        page.wait_for_selector("#signed-up")
        assert meetup_stats(ws, "live")["signups"] == 1
        page.goto(f"{base}/m/{token}/event/live/checkin?lang=zh")
        fits(page)
        assert meetup_stats(ws, "live")["attended"] == 0
        page.click("#checkin")
        page.wait_for_selector("#coupon-code")
        fits(page)
        code = page.inner_text("#coupon-code")
    stats = meetup_stats(ws, "live")
    assert stats["attended"] == 1 and stats["coupons_issued"] == 1 and len(code) == 12


def test_console_lists_and_creates_events(workspace: Workspace, live_server: Any) -> None:
    ws = workspace
    add_meetup(ws, "dec_live", title_zh="线上分享会", title_en="Live session",
               starts_at=ws.clock() + timedelta(days=3))
    for width in (1366, 390):
        with browser_page(log_in_to=(live_server.url, ws), viewport={"width": width, "height": 900},
                          locale="en-US") as page:
            page.goto(f"{live_server.url}/console/meetups?lang=en")
            fits(page, width)
            assert page.inner_text("#event-dec_live .signups") == "0"
            page.click("#event-dec_live a")
            page.wait_for_selector("#kpi-signups")
            fits(page, width)
            if width == 1366:
                page.goto(f"{live_server.url}/console/meetups?lang=en")
                page.fill("#ev-key", "jan_talk")
                page.fill("#ev-date", "2099-01-15T19:30")
                page.fill("#ev-title", "一月分享")
                page.click("#create-event")
                page.wait_for_selector("#notice")
                assert page.is_visible("#event-jan_talk")
    assert find(ws, "jan_talk").starts_at == datetime(2099, 1, 15, 11, 30)  # 19:30 Shanghai
