"""The basic commands as a user runs them: init, token create, events import / count, help and errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.fileimport import import_event_file
from qunflow.services.tokens import check_token
from qunflow.workspace import Workspace, open_workspace

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]
runner = CliRunner()
COLUMNS = ["event_id", "type", "ts", "member_id", "channel", "amount", "properties"]


def rows(count: int, prefix: str = "e") -> list[dict[str, Any]]:
    kinds = ["joined", "message", "order"]
    return [{"event_id": f"{prefix}{n}", "type": kinds[n % 3], "ts": "2026-03-01T08:00:00+08:00",
             "member_id": f"m{n % 5}", "channel": "ads", **({"amount": "19.9"} if n % 3 == 2 else {})}
            for n in range(count)]


def write_jsonl(path: Path, items: list[Any]) -> Path:
    path.write_text("".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items),
                    encoding="utf-8")
    return path


def write_csv(path: Path, items: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(items)
    return path


def qunflow(ws: Workspace | Path, *args: str):  # type: ignore[no-untyped-def]
    home = ws if isinstance(ws, Path) else ws.home
    return runner.invoke(app, [*args, "--workspace", str(home)])


def count(ws: Workspace, *args: str) -> int:
    result = qunflow(ws, "events", "count", *args)
    assert result.exit_code == 0, result.stderr
    return int(result.stdout)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QUNFLOW_HOME", "QUNFLOW_DATABASE_URL")}
    return subprocess.run([*QUNFLOW, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


# ---- real processes --------------------------------------------------------------------------------

def test_init_then_token_then_import_in_a_real_process(tmp_path: Path) -> None:
    created = run("init", "community", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    home = tmp_path / "community"
    assert (home / "qunflow.toml").is_file() and (home / "qunflow.db").is_file()

    scopeless = run("token", "create", "shop", cwd=home)  # a token must say what it may do
    assert scopeless.returncode == 2 and "--scope" in scopeless.stderr
    token = run("token", "create", "shop", "--scope", "events:write", cwd=home)  # the workspace is the cwd
    assert token.returncode == 0 and len(token.stdout.strip().splitlines()) == 1
    ws = open_workspace(home)
    try:
        caller = check_token(ws.engine, token.stdout.strip())
        assert caller.name == "shop" and caller.permissions == {"events:write"}
    finally:
        ws.close()

    imported = run("events", "import", str(write_jsonl(tmp_path / "e.jsonl", rows(30))), cwd=home)
    assert imported.returncode == 0, imported.stderr
    assert "30 stored, 0 already present, 0 rejected (of 30 rows)" in imported.stdout
    assert run("events", "count", "--type", "order", cwd=home).stdout.strip() == "10"


def test_a_rejected_row_exits_2_with_one_error_line_in_a_real_process(tmp_path: Path) -> None:
    assert run("init", "ws", cwd=tmp_path).returncode == 0
    path = write_jsonl(tmp_path / "e.jsonl", [*rows(2), "{broken"])
    result = run("events", "import", str(path), cwd=tmp_path / "ws")
    assert result.returncode == 2
    assert "line 3: not valid JSON" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "1 row(s) rejected" in result.stderr


# ---- in-process (CliRunner) --------------------------------------------------------------------------

def test_jsonl_and_csv_files_import_the_same_events(workspace: Workspace, tmp_path: Path) -> None:
    items = [{**row, "properties": json.dumps({"sku": "课程-A"})} for row in rows(12)]
    assert qunflow(workspace, "events", "import", str(write_csv(tmp_path / "e.csv", items))).exit_code == 0
    as_jsonl = [{**row, "properties": {"sku": "课程-A"}} for row in rows(12)]
    again = qunflow(workspace, "events", "import", str(write_jsonl(tmp_path / "e.jsonl", as_jsonl)))
    assert again.exit_code == 0
    assert "0 stored, 12 already present" in again.stdout  # the same event_ids, whatever the format
    assert count(workspace) == 12


def test_reimporting_a_file_stores_nothing_twice(workspace: Workspace, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "e.csv", rows(20))
    first = qunflow(workspace, "events", "import", str(path))
    write_csv(path, rows(25))  # the shop's export grew by five rows
    second = qunflow(workspace, "events", "import", str(path))
    assert "20 stored, 0 already present" in first.stdout
    assert "5 stored, 20 already present" in second.stdout
    assert count(workspace) == 25


def test_bad_lines_are_reported_by_line_number_and_the_rest_is_stored(workspace: Workspace,
                                                                      tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [rows(1)[0], "", '{"event_id": "x"', "[1, 2]", '"text"',
                                               {**rows(2)[1], "ts": "2026-03-01 08:00"}, rows(3)[2]])
    result = qunflow(workspace, "events", "import", str(path))
    assert result.exit_code == 2
    assert "2 stored, 0 already present, 4 rejected (of 6 rows)" in result.stdout  # the blank line is skipped
    reported = dict(line.strip().split(": ", 1) for line in result.stdout.splitlines() if "line " in line)
    assert list(reported) == ["line 3", "line 4", "line 5", "line 6"]
    assert "not valid JSON" in reported["line 3"] and "has no UTC offset" in reported["line 6"]
    assert reported["line 4"] == reported["line 5"] == "an event must be a JSON object"
    assert result.stderr.count("\n") == 1 and "4 row(s) rejected" in result.stderr
    assert count(workspace) == 2


def test_csv_rows_with_bad_cells_are_reported_by_line(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("event_id,type,ts,member_id,properties\n"
                    "a,order,2026-03-01T08:00:00Z,m1,\n"
                    "b,order,2026-03-01T08:00:00Z,m1,not json\n"
                    "c,order,2026-03-01T08:00:00Z,m1,{},extra\n"
                    "d,Order,2026-03-01T08:00:00Z,m1,\n", encoding="utf-8")
    result = qunflow(workspace, "events", "import", str(path))
    assert result.exit_code == 2
    assert "line 3: properties is not a JSON object" in result.stdout
    assert "line 4: more cells than header columns" in result.stdout
    assert "line 5: type is required" in result.stdout
    assert count(workspace) == 1


@pytest.mark.parametrize("name, content, message", [
    ("e.txt", "event_id\n", "unknown format"),
    ("e.csv", "id,kind\n1,x\n", "no header row with event_id"),
    ("e.jsonl", None, "is not UTF-8 text"),
])
def test_a_file_that_cannot_be_read_exits_2_with_one_line(workspace: Workspace, tmp_path: Path, name: str,
                                                          content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is None:
        path.write_bytes(json.dumps(rows(1)[0]).encode() + b"\n\xff\xfe{}\n")
    else:
        path.write_text(content, encoding="utf-8")
    result = qunflow(workspace, "events", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_import_reports_progress_up_to_the_whole_file(workspace: Workspace, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", rows(2_400))  # more than two chunks of 1,000
    seen: list[int] = []
    result = import_event_file(workspace.engine, path, on_progress=seen.append, chunk=1_000)
    assert result.stored == 2_400
    assert len(seen) >= 3 and seen == sorted(set(seen)) and seen[-1] == path.stat().st_size


def test_rows_per_commit_commits_in_that_many_rows_and_refuses_zero(workspace: Workspace, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", rows(10))
    refused = qunflow(workspace, "events", "import", str(path), "--rows-per-commit", "0")
    assert refused.exit_code == 2 and "--rows-per-commit" in refused.stderr and count(workspace) == 0
    assert qunflow(workspace, "events", "import", str(path), "--rows-per-commit", "3").exit_code == 0
    assert count(workspace) == 10


def test_the_import_help_names_the_default_chunk() -> None:
    from qunflow.services.eventfiles import CHUNK

    result = runner.invoke(app, ["events", "import", "--help"], terminal_width=200)
    assert f"default {CHUNK:,}" in " ".join(result.stdout.split())


def test_events_count_by_type(workspace: Workspace, tmp_path: Path) -> None:
    qunflow(workspace, "events", "import", str(write_jsonl(tmp_path / "e.jsonl", rows(10))))
    assert count(workspace) == 10
    assert (count(workspace, "--type", "joined"), count(workspace, "--type", "order")) == (4, 3)
    assert count(workspace, "--type", "refund") == 0


def test_token_names_are_unique(workspace: Workspace) -> None:
    assert qunflow(workspace, "token", "create", "shop", "--scope", "metrics:read").exit_code == 0
    again = qunflow(workspace, "token", "create", "shop", "--scope", "metrics:read")
    assert again.exit_code == 2 and "exists already" in again.stderr and again.stderr.count("\n") == 1


def test_commands_outside_a_workspace_exit_2(tmp_path: Path) -> None:
    result = qunflow(tmp_path / "nowhere", "events", "count")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


def command_paths() -> list[list[str]]:
    """Every command and group, as a user reaches them (groups are built on use: list, then get)."""
    import click

    def walk(command: Any, path: list[str]) -> Any:
        yield path
        if hasattr(command, "list_commands"):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), [*path, name])
    return list(walk(typer.main.get_command(app), []))


def test_help_loads_neither_the_database_layer_nor_a_connector() -> None:
    """`qunflow metrics --help` builds one command: no SQLAlchemy, no workspace, no connector (issue 15)."""
    probe = ("import sys; sys.argv = ['qunflow', 'metrics', '--help']\n"
             "from qunflow.cli.main import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "heavy = ('sqlalchemy', 'qunflow.workspace', 'qunflow.connectors', 'qunflow.services', 'duckdb')\n"
             "print('LOADED', sorted({m.split('.')[0] if m.startswith(('sqlalchemy', 'duckdb')) else m\n"
             "                       for m in sys.modules if m.startswith(heavy)}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout
    assert "Usage" in out and out.splitlines()[-1] == "LOADED []", out[-500:]


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "qunflow")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout


@pytest.mark.parametrize("args", [["nope"], ["events", "count", "--typo"], ["events", "import"],
                                  ["token", "create"], ["serve", "--port", "abc"], ["--bogus"],
                                  ["events", "import", "x.csv", "--rows-per-commit", "0"]], ids=" ".join)
def test_usage_errors_are_one_line_on_stderr_and_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and "--help`" in result.stderr
    assert "╭" not in result.stderr + result.stdout  # not click's boxed usage panel


def test_usage_error_says_what_is_wrong_and_where_to_look() -> None:
    result = runner.invoke(app, ["events", "count", "--typo"], prog_name="qunflow")
    assert result.stderr.strip() == ("error: No such option: --typo (Possible options: --type) "
                                     "(see `qunflow events count --help`)")
    result = runner.invoke(app, ["serve", "--port", "abc"])
    assert "Invalid value for '--port'" in result.stderr


def test_a_group_without_a_command_still_shows_its_help() -> None:
    result = runner.invoke(app, ["events"])
    assert result.exit_code == 2 and "import" in result.stdout and "count" in result.stdout


def test_init_where_no_folder_can_be_made_exits_2_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["init", str(blocker / "ws")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "cannot create the workspace" in result.stderr and blocker.read_text() == ""
