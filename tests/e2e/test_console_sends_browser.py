"""The outbox in the console (/console/sends), in a real browser: every send with its state in the workspace's
time zone, filters, and a WeCom staff-confirmed task's results; at desktop and phone widths."""

from __future__ import annotations

from datetime import UTC

import httpx

from qunflow.engine import outbox
from qunflow.services.sends import list_sends
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.e2e.test_wecom_chain import connected, contact_way_of, wecom  # noqa: F401 - fixtures
from tests.fakes.wecom_server import FakeWeCom


def two_sends(ws: Workspace, server: LiveServer, fake: FakeWeCom) -> str:
    """A welcome through a welcome code (goes out at once) and a playbook DM (a task staff confirm)."""
    httpx.get(f"{server.url}/j/wc-ads")
    fake.add_contact("wmEXT042", "Zhou", contact_way_of(fake, "wc-ads"))
    sent = outbox.send(ws, outbox.Message(key="pb:t:42", kind="playbook", platform="wecom", target="wmEXT042",
                                          text="第2天:来看看这周的活动", private=True))
    assert sent.status == "sent"
    return sent.message_id or ""


def test_sends_page_lists_filters_and_follows_a_staff_confirmed_task(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom) -> None:  # noqa: F811
    ws, server, _chat = connected
    task = two_sends(ws, server, wecom)
    rows = {r["kind"]: r for r in list_sends(ws)}
    assert {"welcome_dm", "playbook"} <= set(rows)
    local = rows["playbook"]["created_at"].replace(tzinfo=UTC).astimezone(ws.settings.zone)
    with browser_page(log_in_to=(server.url, ws), locale="en-US", viewport={"width": 1366, "height": 900}) as page:
        page.goto(f"{server.url}/console?lang=en")
        page.click("nav >> text=Sends")
        page.wait_for_url("**/console/sends?lang=en")
        assert "Asia/Shanghai" in page.inner_text("body")
        playbook = page.locator(f"#send-{rows['playbook']['id']}")
        assert "wmEXT042" in playbook.inner_text() and "sent" in playbook.inner_text()
        assert local.strftime("%Y-%m-%d %H:%M:%S") in playbook.inner_text()  # the workspace's zone, not UTC
        assert "第2天" not in page.content()  # never the text
        welcome = page.locator(f"#send-{rows['welcome_dm']['id']}")
        assert welcome.locator("a.results").count() == 0  # a welcome went out at once: no task to follow

        page.select_option("#f-kind", "playbook")
        page.click("#sends-filter button")
        page.wait_for_url("**kind=playbook**")
        assert page.locator("tr.send-row").count() == 1
        page.select_option("#f-status", "dead")
        page.click("#sends-filter button")
        page.wait_for_url("**status=dead**")
        assert page.locator("#no-sends").is_visible()

        page.goto(f"{server.url}/console/sends?lang=en&kind=playbook")
        page.click(f"#send-{rows['playbook']['id']} a.results")
        page.wait_for_url(f"**/console/sends/{rows['playbook']['id']}/results?lang=en")
        assert page.inner_text("#count-pending").endswith("1") and page.inner_text("#count-sent").endswith("0")
        wecom.confirm_template(task)
        page.reload()
        assert page.inner_text("#count-sent").endswith("1") and page.inner_text("#count-pending").endswith("0")
        assert "wmEXT042" in page.inner_text("#task-results")


def test_sends_page_fits_a_phone_in_chinese(connected: tuple[Workspace, LiveServer, str],  # noqa: F811
                                            wecom: FakeWeCom) -> None:  # noqa: F811
    ws, server, _chat = connected
    two_sends(ws, server, wecom)
    with browser_page(log_in_to=(server.url, ws), locale="zh-CN", viewport={"width": 390, "height": 844},
                      is_mobile=True) as page:
        page.goto(f"{server.url}/console/sends?lang=zh")
        assert page.locator("h1").inner_text() == "发送记录"
        assert page.locator("tr.send-row").count() == 2
        assert "已发送" in page.inner_text("#sends")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_sends_need_automation_rights_and_refuse_bad_filters(
        connected: tuple[Workspace, LiveServer, str], wecom: FakeWeCom) -> None:  # noqa: F811
    ws, server, _chat = connected
    with httpx.Client(base_url=server.url) as analyst:
        log_in(analyst, ws, "ana", "analyst")
        assert analyst.get("/console/sends").status_code == 403  # people's platform ids are not for analysts
        assert "/console/sends" not in analyst.get("/console?lang=en", follow_redirects=True).text
    with httpx.Client(base_url=server.url) as operator:
        log_in(operator, ws, "op", "operator")
        assert operator.get("/console/sends?lang=en").status_code == 200
        bad = operator.get("/console/sends?status=lost")
        assert bad.status_code == 400 and "status must be one of" in bad.text
        assert operator.get("/console/sends?kind=DROP%20TABLE").status_code == 400
        missing = operator.get("/console/sends/999/results")
        assert missing.status_code == 404 and "no send 999" in missing.text
