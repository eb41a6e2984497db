"""A completed tier move on the member's console page (issue 13), in Chinese and English, at 1366 and 390 px:
the "Tier moves" section names the old and the new group and the status, and the timeline names the new
events in the page's language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from qunflow.services.tier_moves import evaluate
from qunflow.workspace import Workspace
from tests.e2e.browser import browser_page
from tests.e2e.test_member_pages_browser import fits
from tests.integration.test_day1_tasks import walk_in_member
from tests.integration.test_join_flow import setup_community
from tests.integration.test_tier_moves import apply_rules, link_in_dm, order


def test_a_completed_move_shows_on_the_member_page(workspace: Workspace, live_server: Any, tmp_path: Path) -> None:
    ws = workspace
    setup_community(ws)
    member = walk_in_member(ws)
    apply_rules(ws, tmp_path)
    order(ws, member, datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1), n=3)
    assert evaluate(ws).offered == 1
    assert ws.sandbox.join("w1", "Walker", link_in_dm(ws, "w1")) == "joined"
    base = live_server.url
    for width in (1366, 390):
        for lang, status, event in (("zh", "已完成", "完成分层迁移"), ("en", "completed", "moved tier")):
            with browser_page(log_in_to=(base, ws), viewport={"width": width, "height": 900},
                              locale="en-US") as page:
                page.goto(f"{base}/console/members/{member}?lang={lang}")
                page.wait_for_selector("#tier-moves")
                fits(page, width)
                moves = page.inner_text("#tier-moves")
                assert "newbie-1 → core-1" in moves and status in moves and "default/buyers" in moves
                timeline = page.inner_text("#timeline")
                assert "tier_moved" in timeline and event in timeline
