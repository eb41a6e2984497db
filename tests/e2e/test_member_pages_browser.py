"""The member record and the member search in a real browser (issue 13), in Chinese and English, at 1366 and
390 px: search by phone finds the member, the link opens their record with profile, keys, inbox item and
the timeline with a message count (never the text); the inbox item names the member, group and tier and
links to the record; nothing overflows the width."""

from __future__ import annotations

from typing import Any

from qunflow.workspace import Workspace
from tests.e2e.browser import browser_page
from tests.integration.test_member_record import populated


def fits(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_member_search_and_record_in_both_languages_and_widths(workspace: Workspace, live_server: Any) -> None:
    ws = workspace
    member = populated(ws)
    base = live_server.url
    for width in (1366, 390):
        for lang, count_text in (("zh", "2 条消息"), ("en", "2 messages")):
            with browser_page(log_in_to=(base, ws), viewport={"width": width, "height": 900},
                              locale="en-US") as page:
                page.goto(f"{base}/console/members?lang={lang}")
                fits(page, width)
                page.fill("#q", "+86 138 0013 8000")
                page.click("#member-search button")
                page.wait_for_selector("#members-found")
                fits(page, width)
                assert member in page.inner_text("#members-found") and "王小明" in page.inner_text("#members-found")
                page.click(f"#members-found a[href^='/console/members/{member}']")
                page.wait_for_selector("#timeline")
                fits(page, width)
                record = page.inner_text("#record")
                assert "王小明" in record and "shop-77" in record and "Call back" in record
                assert count_text in page.inner_text("#timeline") and "秘密内容" not in page.content()
                assert page.is_visible("#erase") and page.is_visible("#export")  # the privacy actions stay
                page.goto(f"{base}/console/members?lang={lang}&q=nobody-like-this")
                assert page.is_visible("#no-members")
                page.goto(f"{base}/console/inbox?lang={lang}")  # the item names the member, group and tier
                fits(page, width)
                item = page.inner_text(".inbox-item")
                assert "王小明" in item and "newbie-1" in item and ("新人群" if lang == "zh" else "newbie") in item
                page.click(".inbox-item a.member-link")
                page.wait_for_selector("#timeline")
