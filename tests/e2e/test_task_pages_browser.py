"""A member on a phone (390 px) does the Day-1 tasks in a real browser: the profile form prefilled and saved,
the coupon from the ledger claimed, the poll answered; nothing wider than the screen."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from qunflow.services.coupons import issue_manual
from qunflow.services.playbooks import apply_playbooks
from qunflow.services.privacy import member_link_token
from qunflow.store.tables import events
from qunflow.workspace import Workspace
from tests.e2e.browser import browser_page
from tests.integration.test_day1_tasks import WELCOME_WITH_POLL, gated_member, walk_in_member
from tests.integration.test_join_flow import setup_community

PHONE = {"viewport": {"width": 390, "height": 844}, "locale": "en-US"}


def fits(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def completed(ws: Workspace) -> list[str]:
    with ws.engine.connect() as conn:
        return sorted(p["task"] for p in conn.execute(select(events.c.properties).where(
            events.c.type == "task_completed")).scalars())


def test_day1_tasks_on_a_phone(workspace: Workspace, live_server: Any, tmp_path: Path) -> None:
    ws = workspace
    setup_community(ws)
    path = tmp_path / "welcome.yaml"
    path.write_text(WELCOME_WITH_POLL, encoding="utf-8")
    apply_playbooks(ws, [path])
    walker = walk_in_member(ws)
    gated = gated_member(ws)
    issued, _ = issue_manual(ws, member_id=gated, name="welcome", value=Decimal(20), valid_days=7, cause="t1",
                             actor="test")
    base = live_server.url
    with browser_page(**PHONE) as page:
        page.goto(f"{base}/m/{member_link_token(ws, walker)}/task/profile?lang=en")
        fits(page)
        assert page.input_value("#f-name") == "" and page.is_visible("#consent")
        page.fill("#f-name", "Han Mei")
        page.fill("#f-need", "leads")
        page.fill("#f-interest", "seo")
        page.click("button[type=submit]")  # without the consent: refused, kept, nothing done
        page.wait_for_selector(".error")
        assert page.input_value("#f-name") == "Han Mei" and completed(ws) == []
        assert "agree to the privacy notice" in page.inner_text("#profile-form")
        page.check("#consent")
        page.click("button[type=submit]")
        page.wait_for_selector("#task-done")
        fits(page)
        assert completed(ws) == ["profile"]

        page.goto(f"{base}/m/{member_link_token(ws, gated)}/task/profile?lang=en")
        assert page.input_value("#f-name") == "Li Lei" and page.input_value("#f-need") == "more leads"

        page.goto(f"{base}/m/{member_link_token(ws, gated)}/task/claim_coupon?lang=en")
        fits(page)
        assert page.inner_text("#coupon-code") == issued.code and "20 off" in page.inner_text("#coupon-value")
        assert completed(ws) == ["profile"]  # seeing it is not claiming it
        page.click("#claim")
        page.wait_for_selector("#task-done")
        assert page.inner_text("#coupon-code") == issued.code and completed(ws) == ["claim_coupon", "profile"]

        page.goto(f"{base}/m/{member_link_token(ws, gated)}/task/vote?lang=zh")
        fits(page)
        assert "下次分享选哪个主题" in page.inner_text("#task")
        page.check("input[name=option][value=ads]")
        page.click("button[type=submit]")
        page.wait_for_selector("#voted")
        assert "投放" in page.inner_text("#voted") and completed(ws) == ["claim_coupon", "profile", "vote"]
        fits(page)
