"""The console's group polls in headless Chromium (zh and en, 1366 and 390 px): a poll posted from the form
reaches the sandbox group, replies there are counted on the page, and nothing scrolls sideways; the CRM
sync section of the dead-letters page too."""

from __future__ import annotations

import pytest

from qunflow.domain.sync import SyncTarget
from qunflow.services.ingest import ingest_batch
from qunflow.services.sync import sync_round
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.integration.test_automation import join
from tests.integration.test_group_polls import chat_of
from tests.integration.test_join_flow import setup_community
from tests.webhook import Webhook

WIDE = "{ const e = document.scrollingElement; return e.scrollWidth <= innerWidth; }"
QUESTION = "下周的线下分享会，大家更方便哪一天参加？请回复数字，我们按票数定时间和场地"


@pytest.mark.parametrize(("width", "lang"), [(1366, "zh"), (390, "zh"), (390, "en")])
def test_post_a_poll_and_see_its_votes(workspace: Workspace, width: int, lang: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    setup_community(workspace, core_capacity=10)
    people = [f"u{i}" for i in range(3)]
    for i, user in enumerate(people):
        join(workspace, f"v{i}", user)
    monkeypatch.setenv("QUNFLOW_BROWSER_CRM_SECRET", "s")
    with Webhook([500]) as hook, LiveServer(workspace) as server:
        target = SyncTarget(url=hook.url, events=["level_changed"], secret_env="QUNFLOW_BROWSER_CRM_SECRET",
                            attempts=1)
        workspace.settings = workspace.settings.model_copy(update={"sync": {"crm-warehouse": target}})
        ingest_batch(workspace.engine, [{"event_id": "lv-long-" + "x" * 60, "type": "level_changed",
                                         "member_id": "m_1", "ts": "2026-03-02T09:00:00+08:00"}])
        sync_round(workspace)
        with browser_page(log_in_to=(server.url, workspace), locale="zh-CN" if lang == "zh" else "en-US",
                          viewport={"width": width, "height": 900}) as page:
            page.goto(f"{server.url}/console/meetups?lang={lang}")
            page.click("#polls-link")
            page.select_option("#poll-group", "core-1")
            page.fill("#poll-question", QUESTION)
            page.fill("#poll-options", "sat=周六下午 Saturday afternoon\nsun=周日上午 Sunday morning\nnone=都不方便")
            page.click("#post-poll")
            page.wait_for_selector("#notice")
            [poll] = page.locator(".poll").all()
            key = poll.get_attribute("id").removeprefix("poll-")  # type: ignore[union-attr]
            chat = chat_of(workspace, "core-1")
            for user, reply in zip(people, ("1", "2", "2"), strict=True):
                workspace.sandbox.say(user, reply, chat)
            page.reload()
            votes = page.locator(f"#poll-{key} .votes").all_inner_texts()
            assert votes == ["1", "2", "0"]
            assert ("合计 3" if lang == "zh" else "Total 3") in page.locator(f"#poll-{key} .total").inner_text()
            assert page.evaluate(f"() => {WIDE}"), f"/console/polls scrolls sideways at {width} px"
            page.goto(f"{server.url}/console/automation/dead?lang={lang}")
            assert page.locator(".sync-dead-letter").count() == 1
            assert page.evaluate(f"() => {WIDE}"), f"the dead letters page scrolls sideways at {width} px"
