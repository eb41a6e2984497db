"""The member record and the member search in a real browser (issue 13), in Chinese and English, at 1366 and
390 px: search by phone finds the member, the link opens their record with profile, keys, inbox item and
the timeline with a message count (never the text); the inbox item names the member, group and tier and
links to the record; nothing overflows the width."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from qunflow.services.ingest import ingest_batch
from qunflow.services.merges import list_merges
from qunflow.store.tables import events, join_signals, member_merges
from qunflow.workspace import Workspace
from tests.e2e.browser import browser_page
from tests.integration.test_member_merge import log
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


def test_merge_candidates_are_merged_and_undone_from_the_console(workspace: Workspace, live_server: Any) -> None:
    ws = workspace
    assert not ingest_batch(ws.engine, log()).errors
    with ws.engine.begin() as conn:
        conn.execute(insert(join_signals), [{"member_id": m, "phone": "h" * 64, "disposable": False,
                                             "recorded_at": ws.clock()} for m in ("m_a", "m_b")])
    base = live_server.url
    for width, lang in ((1366, "en"), (390, "zh")):
        with browser_page(log_in_to=(base, ws), viewport={"width": width, "height": 900}, locale="en-US") as page:
            page.goto(f"{base}/console/members?lang={lang}")
            page.click("#merges-link")
            page.wait_for_selector("#merges")
            fits(page, width)
            page.click("#merges button.merge")
            page.wait_for_selector("#notice")
            fits(page, width)
            assert [m["merged_id"] for m in list_merges(ws, "merged")] == ["m_b"]
            with ws.engine.connect() as conn:
                assert conn.execute(select(events.c.member_id).where(events.c.event_id == "ob")).scalar() == "m_a"
            page.click("#merges button.undo")
            page.wait_for_selector("#notice")
            with ws.engine.connect() as conn:
                assert conn.execute(select(events.c.member_id).where(events.c.event_id == "ob")).scalar() == "m_b"
        with ws.engine.begin() as conn:  # the same pair is a candidate again for the next round
            conn.execute(member_merges.update().values(status="candidate", moved=None))
