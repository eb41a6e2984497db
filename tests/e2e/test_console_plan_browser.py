"""The funnel plan and the pitfall doctor in the console, in a real browser at desktop and phone widths: the
measured funnel with intervals, a typed what-if, the doctor's findings and the dashboard's alerts."""

from __future__ import annotations

import re
from datetime import timedelta

from qunflow.domain.plan import Measured, measured_plan
from qunflow.i18n import fmt_number
from qunflow.services.ingest import ingest_batch
from qunflow.services.plan import measured
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.e2e.test_cli_plan import cohort
from tests.e2e.test_pages_layout_browser import check_page


def test_plan_page_shows_the_measured_funnel_and_a_what_if(workspace: Workspace, live_server: LiveServer) -> None:
    start = workspace.clock().replace(hour=0, minute=0, second=0, microsecond=0)
    result = ingest_batch(workspace.engine, cohort(200, 80, 20, start - timedelta(days=50), "ads", "a"))
    assert not result.errors
    stats, _scope = measured(workspace)
    assert stats == Measured(days=56, joined=200, task_eligible=200, task_done=80, mature=200, converted=20)
    expected = measured_plan(stats, task_rate=0.6)["orders_per_day"]
    with browser_page(log_in_to=(live_server.url, workspace), locale="en-US",
                      viewport={"width": 1366, "height": 900}) as page:
        page.goto(f"{live_server.url}/console?lang=en")
        page.click("nav >> text=Plan")
        page.wait_for_url("**/console/plan?lang=en")
        assert "80 of 200" in page.inner_text("#stage-task") and "40.0%" in page.inner_text("#stage-task")
        assert "25.0%" in page.inner_text("#stage-order")  # M5 10% / M9 40%
        assert page.inner_text("#orders-measured") == fmt_number(200 / 56 * 0.1, "en", 2)
        page.fill("#plan-task", "60")
        page.click("#plan-show")
        page.wait_for_url("**task=60**")
        assert page.inner_text("#orders-what-if").startswith(fmt_number(expected["value"], "en", 2))
        assert page.inner_text("#what-if-interval") == (f"{fmt_number(expected['ci_low'], 'en', 2)} – "
                                                        f"{fmt_number(expected['ci_high'], 'en', 2)}")
        problems: list[str] = []
        check_page(page, "plan 1366 en", problems)
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(f"{live_server.url}/console/plan?lang=zh&task=60")
        assert "日订单" in page.inner_text("body") and "200 人中 80 人" in page.inner_text("#stage-task")
        check_page(page, "plan 390 zh", problems)
        page.goto(f"{live_server.url}/console/plan?lang=en&task=160")
        assert "between 0 and 1" in page.inner_text("body") or "0-100" in page.inner_text("body")
        assert problems == []


def test_doctor_page_and_dashboard_alerts_link_to_the_fix(workspace: Workspace, live_server: LiveServer) -> None:
    with browser_page(log_in_to=(live_server.url, workspace), locale="en-US",
                      viewport={"width": 1366, "height": 900}) as page:
        page.goto(f"{live_server.url}/console?lang=en")
        alerts = page.locator(".alert.pitfall")
        assert alerts.count() == 2  # an empty workspace: no welcome, no keyword rules (the owner exists: logged in)
        assert "Pitfall P3" in alerts.first.inner_text() and "qunflow apply --shipped" in alerts.first.inner_text()
        alerts.first.locator("text=All findings").click()
        page.wait_for_url("**/console/doctor?lang=en")
        rows = page.locator("tr.finding")
        assert [rows.nth(i).get_attribute("data-check") for i in range(rows.count())] == [
            "welcome_not_applied", "no_keyword_rules"]
        problems: list[str] = []
        check_page(page, "doctor 1366 en", problems)
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(f"{live_server.url}/console/doctor?lang=zh")
        assert "未应用欢迎文案" in page.inner_text("#findings") and re.search(r"错误", page.inner_text("#findings"))
        check_page(page, "doctor 390 zh", problems)
        assert problems == []
