"""`qunflow meetup`: an S4 event created with its date from the command line, its numbers listed and shown;
bad input is one line with exit code 2 and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.meetups import find
from qunflow.workspace import open_workspace

runner = CliRunner()


def invoke(ws: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws)])


def test_add_list_and_show_an_event(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    added = invoke(ws, "meetup", "add", "dec_live", "--date", "2099-12-12 20:00", "--title", "线上分享会",
                   "--title-en", "Live session", "--keyword", "到场", "--coupon-value", "30", "--capacity", "50")
    assert added.exit_code == 0, added.output
    assert "2099-12-12 20:00" in added.stdout and "/e/dec_live" in added.stdout
    assert "warning: no applied playbook" in added.stdout  # nothing would announce it yet
    assert invoke(ws, "apply", "--shipped").exit_code == 0
    second = invoke(ws, "meetup", "add", "jan_live", "--date", "2099-01-12 20:00", "--title", "一月")
    assert second.exit_code == 0 and "warning" not in second.stdout
    workspace = open_workspace(ws)
    try:
        meetup = find(workspace, "dec_live")
    finally:
        workspace.close()
    assert meetup.starts_at.isoformat() == "2099-12-12T12:00:00"  # 20:00 in Shanghai, stored in UTC
    listed = json.loads(invoke(ws, "meetup", "list", "--format", "json").stdout)
    assert [(r["key"], r["signups"], r["attended"], r["orders"]) for r in listed] == [
        ("jan_live", 0, 0, 0), ("dec_live", 0, 0, 0)]
    shown = invoke(ws, "meetup", "show", "dec_live")
    assert shown.exit_code == 0 and "2099-12-12 20:00" in shown.stdout and "到场" in shown.stdout


def test_bad_event_input_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws)])
    cases = [("add", "x1", "--date", "tomorrow", "--title", "t"),
             ("add", "x2", "--date", "2001-01-01 10:00", "--title", "t"),
             ("add", "Bad Key", "--date", "2099-01-01 10:00", "--title", "t"),
             ("add", "x3", "--date", "2099-01-01 10:00", "--title", "t", "--coupon-value", "abc"),
             ("add", "x4", "--date", "2099-01-01 10:00", "--title", "t", "--duration", "0"),
             ("show", "nope"), ("checkin", "nope", "m_1"), ("list", "--format", "xml")]
    for args in cases:
        result = invoke(ws, "meetup", *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    assert json.loads(invoke(ws, "meetup", "list", "--format", "json").stdout) == []
    assert invoke(ws, "meetup", "add", "x5", "--date", "2099-01-01 10:00", "--title", "t").exit_code == 0
    assert invoke(ws, "meetup", "add", "x5", "--date", "2099-01-02 10:00", "--title", "t").exit_code == 2
