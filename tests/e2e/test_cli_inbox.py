"""`qunflow inbox` and `qunflow playbooks preview` as an advisor runs them (CliRunner, a real workspace)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.inbox import list_inbox
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.workspace import Workspace
from tests.integration.test_inbox_views import make_community

runner = CliRunner()


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws.home)], env={"COLUMNS": "200"})


def test_inbox_list_done_undone_and_assign(workspace: Workspace, tmp_path: Path) -> None:
    _clock, (first, _second) = make_community(workspace, tmp_path)
    listed = invoke(workspace, "inbox", "list")
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "Call back" in line or "First call" in line]
    assert len(lines) == 4 and "2026-03-02 05:00" in lines[0] and first in lines[0]
    assert listed.output.count("alert") == 2
    alerts = invoke(workspace, "inbox", "list", "--kind", "alert")
    assert alerts.output.count("New member m_") == 2 and "Call back" not in alerts.output

    item = list_inbox(workspace)[0]["id"]
    done = invoke(workspace, "inbox", "done", str(item))
    assert done.exit_code == 0 and done.output.strip() == f"{item} done: 回访 / Call back"
    assert item not in [i["id"] for i in list_inbox(workspace)]
    assert "Call back" in invoke(workspace, "inbox", "list", "--all").output
    assert invoke(workspace, "inbox", "list").output.count("Call back") == 1
    undone = invoke(workspace, "inbox", "undone", str(item))
    assert undone.exit_code == 0 and "open again" in undone.output
    assert list_inbox(workspace)[0]["id"] == item
    assigned = invoke(workspace, "inbox", "assign", str(item), "王芳")
    assert assigned.exit_code == 0 and "assigned to 王芳" in assigned.output
    assert "王芳" in invoke(workspace, "inbox", "list", "--assignee", "王芳").output


def test_bad_inbox_commands_fail_in_one_line_with_exit_2(workspace: Workspace, tmp_path: Path) -> None:
    make_community(workspace, tmp_path)
    before = list_inbox(workspace, status="all")
    for args, message in [(("inbox", "done", "999"), "no inbox item 999"),
                          (("inbox", "undone", "999"), "no inbox item 999"),
                          (("inbox", "list", "--kind", "todo"), "kind must be one of follow_up, alert"),
                          (("inbox", "assign", "1", "x" * 65), "at most 64 characters"),
                          (("inbox", "done", "first"), "Invalid value")]:
        result = invoke(workspace, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
    assert list_inbox(workspace, status="all") == before


def test_playbooks_preview_in_chinese_and_english(workspace: Workspace) -> None:
    apply_playbooks(workspace, shipped_files())
    zh = invoke(workspace, "playbooks", "preview", "s2_warmup", "day0_coupon")
    assert zh.exit_code == 0 and zh.output == "小明,欢迎加入!送你一张新人券 WELCOME8K2P(¥20),7 天内有效。\n"
    en = invoke(workspace, "playbooks", "preview", "s2_warmup", "day4_invite", "--lang", "en")
    assert en.output == ("Invite a friend to the group and get another 20-off coupon: WELCOME8K2P. "
                         "Your invite poster: http://127.0.0.1:8000/m/sample/poster.png\n")
    for args, message in [(("s2_warmup", "day9"), "has no template 'day9'"), (("nope", "x"), "no playbook 'nope'"),
                          (("s2_warmup", "day0_coupon", "--lang", "fr"), "lang must be zh or en")]:
        result = invoke(workspace, "playbooks", "preview", *args)
        assert result.exit_code == 2 and message in result.output
