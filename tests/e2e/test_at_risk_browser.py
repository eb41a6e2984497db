"""The at-risk list in headless Chromium: members who became slipping this week are listed (zh and en, 1366
and 390 px, no sideways scrolling), and one click opens an advisor task or starts a playbook for them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from qunflow.services.ingest import ingest_batch
from qunflow.services.levels import compute_levels
from qunflow.services.playbooks import apply_playbooks
from qunflow.store.tables import enrollments, inbox
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.integration.test_automation import join
from tests.integration.test_join_flow import setup_community

ZONE = ZoneInfo("Asia/Shanghai")
PLAYBOOK = """
kind: playbook
key: win_back
title: {zh: 挽回, en: Win back}
trigger: {on: level_changed, to: [slipping]}
steps:
  - add_tag: win_back
"""


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE).astimezone(UTC).replace(tzinfo=None)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def community(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, dict[str, str]]:
    """Three members who joined on 03-02: `lapsed` wrote on 03-03 only, `busy` on 03-09, `silent` never.
    Levels computed every day to 03-12: lapsed slips on 03-10, silent on 03-09, busy stays active."""
    ws = workspace
    clock = Clock(local("2026-03-02T10:00:00"))
    ws.clock = clock
    setup_community(ws)
    path = tmp_path / "win_back.yaml"
    path.write_text(PLAYBOOK)
    apply_playbooks(ws, [path])
    ids = {name: join(ws, f"v-{name}", f"u-{name}") for name in ("lapsed", "busy", "silent")}
    for name, day in (("lapsed", "03"), ("busy", "09")):
        ingest_batch(ws.engine, [{"event_id": f"msg-{name}", "type": "message", "member_id": ids[name],
                                  "ts": f"2026-03-{day}T12:00:00+08:00"}])
    for day in range(2, 13):
        clock.now = local(f"2026-03-{day:02d}T22:00:00")
        compute_levels(ws)
    return ws, ids


def test_the_at_risk_list_in_a_browser(community: tuple[Workspace, dict[str, str]]) -> None:
    ws, ids = community
    with LiveServer(ws) as server:
        for lang, width in (("zh", 1366), ("zh", 390), ("en", 1366), ("en", 390)):
            with browser_page(log_in_to=(server.url, ws), locale="zh-CN" if lang == "zh" else "en-US",
                              viewport={"width": width, "height": 900}) as page:
                page.goto(f"{server.url}/console/at-risk?lang={lang}")
                rows = page.locator("#at-risk tbody tr")
                assert [rows.nth(i).get_attribute("id") for i in range(rows.count())] == \
                    [f"risk-{ids['lapsed']}", f"risk-{ids['silent']}"]  # newest spell first; busy is active
                assert page.locator(f"#risk-{ids['lapsed']} td").nth(1).inner_text() == "2026-03-10"
                link = page.locator(f"#risk-{ids['lapsed']} a").get_attribute("href")
                assert link == f"/console/members/{ids['lapsed']}?lang={lang}"
                heading = page.locator("h1").inner_text()
                assert heading == ("流失预警" if lang == "zh" else "At risk")
                wide = page.evaluate("() => document.scrollingElement.scrollWidth - innerWidth")
                assert wide <= 0, f"{lang} at {width} px scrolls sideways by {wide} px"

        with browser_page(log_in_to=(server.url, ws), locale="en-US", viewport={"width": 390, "height": 900}) as page:
            page.goto(f"{server.url}/console/at-risk?lang=en")
            page.locator(f"#risk-{ids['lapsed']} button.open-task").click()
            page.wait_for_selector("#notice")
            assert page.locator("#notice").inner_text() == "Advisor task opened in the inbox."
            assert page.locator(f"#risk-{ids['lapsed']} .task-open").count() == 1
            page.locator(f"#risk-{ids['silent']} select").select_option("win_back")
            page.locator(f"#risk-{ids['silent']} button.enroll").click()
            page.wait_for_selector("#notice")
            assert page.locator("#notice").inner_text() == "Playbook started for the member."
            page.goto(f"{server.url}/console?lang=en")  # the dashboard's counts per group and channel
            cells = page.locator("#levels-channels tr[data-key=xhs] td.num")  # the gate routed all three to core
            assert [cells.nth(i).inner_text() for i in range(5)] == ["0", "1", "0", "2", "0"]
            assert "Repeat-order rate within 30 days" in page.locator("#pool-repurchase").inner_text()
            rows = page.locator("#levels-groups tr[data-key]")
            assert sorted(rows.nth(i).get_attribute("data-key") or "" for i in range(rows.count())) == \
                ["core-1", "core-2"]
    with ws.engine.connect() as conn:
        assert list(conn.execute(select(inbox.c.member_id).where(inbox.c.cause.like("at_risk:%"))).scalars()) \
            == [ids["lapsed"]]
        started = conn.execute(select(enrollments.c.subject, enrollments.c.occurrence)
                               .where(enrollments.c.playbook_key == "win_back")).all()
    assert (ids["silent"], "at_risk:2026-03-09") in [tuple(r) for r in started]
