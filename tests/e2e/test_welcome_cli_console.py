"""The S1 welcome as an operator changes it: `qunflow apply`, `qunflow playbooks list/preview`, the console page."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.playbooks import shipped_files
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page
from tests.integration.test_welcome_playbook import CHANGED, write

runner = CliRunner()
SHIPPED = next(p for p in shipped_files() if p.name == "s1_welcome.yaml")


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws.home)], env={"COLUMNS": "200"})


def welcome_row(ws: Workspace) -> list[str]:
    listed = invoke(ws, "playbooks", "list")
    assert listed.exit_code == 0, listed.output
    [line] = [line for line in listed.output.splitlines() if "s1_welcome" in line]
    return [cell.strip() for cell in line.strip("│┃ ").split("│")]


def test_apply_dry_run_list_and_preview_the_welcome(workspace: Workspace, tmp_path: Path) -> None:
    assert welcome_row(workspace)[:4] == ["s1_welcome", "built-in", "member_joined (join path)", "yes"]
    dry = invoke(workspace, "apply", str(SHIPPED), "--dry-run")
    assert dry.exit_code == 0 and "welcome s1_welcome: new, version 1" in dry.output and "dry run" in dry.output
    assert welcome_row(workspace)[1] == "built-in"
    assert "welcome s1_welcome: new, version 1" in invoke(workspace, "apply", "--shipped").output
    assert welcome_row(workspace)[1] == "1"
    assert invoke(workspace, "playbooks", "preview", "s1_welcome", "dm", "--lang", "en").output.startswith(
        "Welcome, Alex! I'm the group assistant.")

    changed = write(tmp_path, "welcome.yaml", CHANGED)
    dry = invoke(workspace, "apply", str(changed), "--dry-run")
    assert "welcome s1_welcome: changed, version 2" in dry.output
    assert "\n-menu_batch_seconds: 60\n" in dry.output and "\n+menu_batch_seconds: 600\n" in dry.output
    assert welcome_row(workspace)[1] == "1"
    assert invoke(workspace, "apply", str(changed)).exit_code == 0
    assert welcome_row(workspace)[1] == "2"
    poster = invoke(workspace, "playbooks", "preview", "s1_welcome", "dm:poster")
    assert poster.exit_code == 0 and poster.output == "海报来的 小明,欢迎!\n"
    missing = invoke(workspace, "playbooks", "preview", "s1_welcome", "dm:vip")
    assert missing.exit_code == 2 and "the welcome has no text 'dm:vip' (texts: dm, menu, dm:poster)" in missing.output


def test_a_bad_welcome_file_exits_2_naming_the_place(workspace: Workspace, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", CHANGED.replace("menu_batch_seconds: 600", "menu_batch_seconds: -1"))
    result = invoke(workspace, "apply", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:7: menu_batch_seconds: Input should be greater than or equal to 1" in result.output
    assert welcome_row(workspace)[1] == "built-in"


def test_console_playbooks_page_shows_the_welcome_and_its_versions(workspace: Workspace, live_server: LiveServer,
                                                                    tmp_path: Path) -> None:
    ws = workspace  # the one live_server serves
    with browser_page(log_in_to=(live_server.url, ws), locale="zh-CN") as page:
        page.goto(f"{live_server.url}/console/playbooks?lang=zh")
        card = page.locator("#pb-s1_welcome")
        assert "内置默认" in card.locator(".version").inner_text()
        assert card.locator("table.tasks tr[data-task]").count() == 3
        assert card.locator(".preview[data-template='dm'] .bubble").inner_text().startswith("欢迎你,小明!我是群助手。")

        invoke(ws, "apply", str(SHIPPED))
        invoke(ws, "apply", str(write(tmp_path, "welcome.yaml", CHANGED)))
        page.goto(f"{live_server.url}/console/playbooks?lang=en")
        card = page.locator("#pb-s1_welcome")
        assert card.locator(".version").inner_text() == "v2"
        assert "Spring welcome" in card.locator("h2").inner_text()
        assert [card.locator("table.tasks tr[data-task] td").nth(i).inner_text() for i in (0, 1, 2)] == [
            "checkin", "Check in", "12"]
        assert "xhs-note-1" in card.locator("[data-variant='poster']").inner_text()
        card.locator("details.versions summary").click()
        assert card.locator("details.versions tr").count() == 3  # header + v2 + v1
        assert card.locator(".preview[data-template='dm:poster'] .bubble").inner_text() == (
            "Welcome, Alex, from the poster (ads-1)!")
