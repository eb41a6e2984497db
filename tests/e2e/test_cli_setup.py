"""Set-up commands: channels, groups, entry points, QR files, sandbox inspection."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qunflow.cli.main import app

runner = CliRunner()


def invoke(ws: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws)])


def test_set_up_a_community_and_write_its_qr_code(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    assert invoke(ws, "channel", "add", "xhs", "--kind", "content").exit_code == 0
    assert invoke(ws, "group", "add", "core-1", "--tier", "core", "--capacity", "50").exit_code == 0
    assert invoke(ws, "entry", "add", "note-7", "--channel", "xhs", "--gate", "seed").exit_code == 0
    listed = invoke(ws, "entry", "list")
    assert "note-7" in listed.stdout and "/j/note-7" in listed.stdout
    out = tmp_path / "note.png"
    qr = runner.invoke(app, ["entry", "qr", "note-7", "-o", str(out), "--workspace", str(ws)],
                       env={"QUNFLOW_PUBLIC_URL": "https://join.example.com"})  # a QR for phones needs it set
    assert qr.exit_code == 0, qr.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
    groups = invoke(ws, "sandbox", "groups")
    assert "chat-core-1" in groups.stdout


def test_bad_set_up_input_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner.invoke(app, ["init", str(ws)])
    assert invoke(ws, "channel", "add", "Bad Key", "--kind", "ad").exit_code == 2
    assert invoke(ws, "channel", "add", "ok", "--kind", "tv").exit_code == 2
    assert invoke(ws, "group", "add", "g", "--tier", "vip").exit_code == 2
    assert invoke(ws, "entry", "add", "e1", "--channel", "missing").exit_code == 2
    assert invoke(ws, "entry", "qr", "e1", "-o", str(tmp_path / "x.gif")).exit_code == 2
    assert invoke(ws, "channel", "add", "ok", "--kind", "ad").exit_code == 0
    assert invoke(ws, "channel", "add", "ok", "--kind", "ad").exit_code == 2  # exists already
    assert "e1" not in invoke(ws, "entry", "list").stdout  # the refused entry point was not stored


def test_commands_outside_a_workspace_say_so(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nowhere", "events", "count")
    assert result.exit_code == 2


def test_every_command_has_help() -> None:
    import click
    import typer.main

    def walk(command, path):  # type: ignore[no-untyped-def]
        yield path
        if hasattr(command, "list_commands"):  # groups are built on use: list, then get
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name])

    paths = list(walk(typer.main.get_command(app), []))
    assert len(paths) > 20
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
