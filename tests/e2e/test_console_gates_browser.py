"""The gate form builder and the page texts in a real browser (issue 12): an operator builds a gate, edits it
into a second version with its diff, is told what is wrong with a bad one, and sets the group rules."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from qunflow.services import catalog
from qunflow.services.gates import gate_view
from qunflow.store.tables import gate_versions
from qunflow.workspace import Workspace
from tests.access import browser_log_in, log_in
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page


@pytest.fixture
def server(workspace: Workspace) -> Iterator[LiveServer]:
    catalog.add_channel(workspace, "xhs", "content")
    catalog.add_group(workspace, "newbie-1", "newbie", 50)
    catalog.add_entry_point(workspace, "note-1", "xhs")
    with LiveServer(workspace) as live:
        yield live


def versions(ws: Workspace, key: str) -> int:
    with ws.engine.connect() as conn:
        return len(conn.execute(select(gate_versions.c.version).where(gate_versions.c.key == key)).all())


def test_an_operator_builds_a_gate_and_edits_it_into_a_second_version(workspace: Workspace,
                                                                        server: LiveServer) -> None:
    ws = workspace
    with browser_page(locale="en-US") as page:
        browser_log_in(page, server.url, ws, "olivia", "operator")
        page.goto(f"{server.url}/console?lang=en")
        page.click("nav >> text=Gates")
        page.wait_for_url("**/console/gates?lang=en")
        page.click("#new-gate")
        page.fill("#gate-key", "vip")
        page.fill("input[name=title_zh]", "会员问卷")
        page.fill("input[name=title_en]", "Members")
        page.fill("input[name=q0_key]", "budget")
        page.fill("input[name=q0_text_zh]", "预算?")
        page.fill("input[name=q0_text_en]", "Budget?")
        for j, (key, zh, en, tier) in enumerate([("high", "高", "High", "core"), ("low", "低", "Low", "newbie")]):
            page.fill(f"input[name=q0_o{j}_key]", key)
            page.fill(f"input[name=q0_o{j}_label_zh]", zh)
            page.fill(f"input[name=q0_o{j}_label_en]", en)
            page.fill(f"input[name=q0_o{j}_pts_{tier}]", "2")
        with page.expect_navigation():
            page.click("#add-route")  # the form comes back with an empty route, the answers kept
        assert page.input_value("input[name=q0_o1_label_en]") == "Low"
        page.select_option("select[name=r0_tier]", "interest")
        page.fill("input[name=r0_answers]", "budget=low")
        with page.expect_navigation():
            page.click("#add-field")
        page.fill("input[name=f0_key]", "name")
        page.fill("input[name=f0_label_zh]", "称呼")
        page.fill("input[name=f0_label_en]", "Name")
        with page.expect_navigation():
            page.click("#save-gate")
        assert "/console/gates/vip?saved=new" in page.url
        assert "Saved as a new gate" in page.locator("#saved").inner_text()

        page.fill("input[name=q0_o1_label_en]", "Small budget")
        page.select_option("#fo-mode", "ask")
        with page.expect_navigation():
            page.click("#save-gate")
        assert "saved=changed" in page.url
        latest = page.locator("#history details[data-version='2']")
        assert "+      - {key: \"low\", label: {zh: \"低\", en: \"Small budget\"}" in latest.inner_text()
        assert "first_order" in latest.inner_text()

        page.fill("input[name=q0_o1_label_zh]", "")  # a bad document: told what, nothing stored
        with page.expect_navigation():
            page.click("#save-gate")
        assert "questions[0].options[1].label.zh" in page.locator("#problems").inner_text()
        page.set_viewport_size({"width": 390, "height": 844})
        wide = page.evaluate("""Array.from(document.querySelectorAll('*')).filter(
            e => e.getBoundingClientRect().right > 391).map(e => e.tagName + '.' + e.className).slice(0, 5)""")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
    view = gate_view(ws, "vip")
    assert versions(ws, "vip") == 2 and view.version == 2
    assert view.gate.routes[0].tier == "interest" and view.gate.routes[0].answers == {"budget": ("low",)}
    assert view.gate.first_order is not None and view.gate.fields[0].key == "name"
    assert view.gate.questions[0].options[1].label == {"zh": "低", "en": "Small budget"}


def test_builder_buttons_remove_questions_and_options(workspace: Workspace, server: LiveServer) -> None:
    with browser_page(locale="zh-CN") as page:
        browser_log_in(page, server.url, workspace, "olivia", "operator")
        page.goto(f"{server.url}/console/gates/new")
        with page.expect_navigation():
            page.click("#add-question")
        assert page.locator("fieldset[data-question]").count() == 2
        with page.expect_navigation():
            page.click("fieldset[data-question='1'] button[value='add_option:1']")
        assert page.locator("fieldset[data-question='1'] [data-option]").count() == 3
        with page.expect_navigation():
            page.click("button[value='del_option:1:0']")
        assert page.locator("fieldset[data-question='1'] [data-option]").count() == 2
        with page.expect_navigation():
            page.click("button[value='del_question:0']")
        assert page.locator("fieldset[data-question]").count() == 1
    assert versions(workspace, "") == 0


def test_page_texts_form_sets_the_rules_and_only_operators_may(workspace: Workspace, server: LiveServer) -> None:
    with browser_page(locale="zh-CN") as page:
        browser_log_in(page, server.url, workspace, "olivia", "operator")
        page.goto(f"{server.url}/console/texts?entry=note-1")
        page.fill("#t-rules-zh", "1. 友善交流\n2. 禁止广告")
        page.fill("#t-landing_title-zh", "读者专属群")
        with page.expect_navigation():
            page.click("#save-texts")
        assert "saved=1" in page.url and page.input_value("#t-landing_title-zh") == "读者专属群"
        page.goto(f"{server.url}/rules?e=note-1")
        assert "2. 禁止广告" in page.inner_text("body")
        page.goto(f"{server.url}/j/note-1")
        assert page.inner_text("h1") == "读者专属群"
    with httpx.Client(base_url=server.url) as client:
        csrf = log_in(client, workspace, "ann", "analyst")
        assert client.get("/console/gates").status_code == 403
        assert client.post("/console/texts", data={"csrf": csrf, "rules_zh": "x"},
                           headers={"origin": server.url}).status_code == 403
