"""An operator works the rewards review queue and reads the referral leaderboard in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from qunflow.services import audit
from qunflow.store.tables import coupons, rewards
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.integration.test_referral_stats import build_community


@pytest.fixture
def world(workspace: Workspace, tmp_path: Path) -> Iterator[tuple[Workspace, LiveServer]]:
    build_community(workspace, tmp_path)  # bob's two rewards wait in review, flagged high
    with LiveServer(workspace) as server:
        yield workspace, server


def reward_row(ws: Workspace, rule: str) -> tuple[int, str, int | None]:
    with ws.engine.connect() as conn:
        row = conn.execute(select(rewards.c.id, rewards.c.status, rewards.c.coupon_id)
                           .where(rewards.c.member_id == "bob", rewards.c.rule == rule)).one()
    return row.id, row.status, row.coupon_id


def test_review_queue_shows_reasons_and_approve_pays(world: tuple[Workspace, LiveServer]) -> None:
    ws, server = world
    reward_id, status, _ = reward_row(ws, "invite_1")
    assert status == "review"
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console?lang=en")
        page.click("nav >> text=Rewards")
        page.wait_for_url("**/console/rewards?lang=en")
        assert page.locator("#count-review .value").inner_text() == "2"
        assert page.locator("#count-paid .value").inner_text() == "4"
        card = page.locator(f"#reward-{reward_id}")
        assert "¥20.00" in card.locator(".value").inner_text() and card.locator(".member").inner_text() == "bob"
        assert card.locator(".rule").inner_text() == "spring/invite_1"
        assert card.locator(".fraud").inner_text() == "high risk"
        assert card.locator(".reasons li").all_inner_texts() == [
            "The invitee joined on the inviter's device.",
            "A disposable e-mail domain or virtual phone number at the gate."]
        assert "¥12.00" in page.locator("#program-spring tr[data-rule=invite_1] .cost").inner_text()
        with page.expect_navigation():
            card.locator("button.approve").click()
        assert "paid" in page.locator("#notice").inner_text()
        assert page.locator(f"#reward-{reward_id}").count() == 0  # left the queue
        assert page.locator("#count-review .value").inner_text() == "1"
        assert "lang=en" in page.url and "status=review" in page.url
    _, status, coupon_id = reward_row(ws, "invite_1")
    assert status == "paid" and coupon_id is not None
    with ws.engine.connect() as conn:
        coupon = conn.execute(select(coupons).where(coupons.c.id == coupon_id)).one()
    assert (coupon.member_id, coupon.value, coupon.status) == ("bob", 20, "issued")
    other, _, _ = reward_row(ws, "first_order")
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN", viewport={"width": 390, "height": 844},
                      is_mobile=True) as page:
        page.goto(f"{server.url}/console/rewards")
        assert page.locator("h1").inner_text() == "奖励"
        card = page.locator(f"#reward-{other}")
        assert "高风险" in card.inner_text() and "被邀请人使用邀请人的设备入群" in card.inner_text()
        card.locator("input[name=note]").fill("设备农场")
        with page.expect_navigation():
            card.locator("button.reject").click()
        assert page.locator("#rewards-empty").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.goto(f"{server.url}/console/rewards?status=paid")
        assert coupon.code in page.locator(f"#reward-{reward_id} .coupon").inner_text()
    assert reward_row(ws, "first_order")[1] == "rejected"


def test_only_a_logged_in_operator_with_the_form_token_can_pay_a_flagged_reward(
        world: tuple[Workspace, LiveServer]) -> None:
    ws, server = world
    reward_id, _, _ = reward_row(ws, "invite_1")
    path = f"/console/rewards/{reward_id}/approve"
    anonymous = httpx.post(server.url + path, data={"lang": "en"}, headers={"Origin": server.url})
    assert anonymous.status_code == 401  # the finding: an anonymous POST paid a fraud-flagged reward
    with httpx.Client(base_url=server.url, headers={"Origin": server.url}) as analyst:
        csrf = log_in(analyst, ws, "ana", "analyst")
        refused = analyst.post(path, data={"lang": "en", "csrf": csrf})
        assert refused.status_code == 403 and "needs rewards:decide" in refused.json()["error"]
    with httpx.Client(base_url=server.url) as operator:
        csrf = log_in(operator, ws, "olga", "operator")
        foreign = operator.post(path, data={"lang": "en", "csrf": csrf}, headers={"Origin": "https://evil.example"})
        no_token = operator.post(path, data={"lang": "en"}, headers={"Origin": server.url})
        assert foreign.status_code == no_token.status_code == 403
        assert reward_row(ws, "invite_1")[1] == "review"
        paid = operator.post(path, data={"lang": "en", "csrf": csrf}, headers={"Origin": server.url})
        assert paid.status_code == 303
    assert reward_row(ws, "invite_1")[1] == "paid"
    [row] = [r for r in audit.entries(ws.engine, action="POST /console/rewards") if r["outcome"] == "ok"]
    assert (row["actor"], row["target"], row["detail"]) == (
        "user:olga", f"reward_id={reward_id} action=approve", {"before": "review", "after": "paid"})


def test_leaderboard_in_chinese_and_english_with_switch_and_period(world: tuple[Workspace, LiveServer]) -> None:
    ws, server = world
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN", viewport={"width": 390, "height": 844},
                      is_mobile=True) as page:
        page.goto(f"{server.url}/console/referrals")
        assert page.locator("h1").inner_text() == "邀请排行榜"
        assert page.locator("table.leaderboard td.key").all_inner_texts() == ["carol", "alice", "bob"]
        assert page.locator("tr[data-key=alice] .invites").inner_text() == "3"
        assert "合格" in page.locator("table.leaderboard").inner_text()
        page.select_option("#f-by", "channel")
        with page.expect_navigation():
            page.click("form.filters button")
        # wechat's extra qualified invitee is high risk: it does not lift wechat above poster, and it is badged.
        assert page.locator("table.leaderboard td.key").all_inner_texts() == ["poster", "wechat"]
        assert page.locator("tr[data-key=wechat] .risk .risk-high").inner_text() == "1 个高风险"
        assert page.locator("tr[data-key=poster] .risk .tag").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    with browser_page(log_in_to=(server.url, ws), locale="en-US") as page:
        page.goto(f"{server.url}/console/referrals?lang=en")
        assert page.locator("h1").inner_text() == "Referral leaderboard"
        page.fill("#f-from", "2026-03-02")
        page.fill("#f-to", "2026-03-02")
        with page.expect_navigation():
            page.click("form.filters button")
        assert page.locator("table.leaderboard td.key").all_inner_texts() == ["alice", "bob"]
        assert page.locator("tr[data-key=bob] .joined").inner_text() == "1"
        assert page.locator("tr[data-key=bob] .review").inner_text() == "2"
        assert page.locator("tr[data-key=bob] .risk").inner_text() == "1 high-risk"
        assert "Qualified" in page.locator("table.leaderboard").inner_text()
