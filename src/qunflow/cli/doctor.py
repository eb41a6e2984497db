"""`qunflow doctor`: what the workspace is missing against the seed's pitfalls P1-P8, in set-up order."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, workspace

FORMATS = ("table", "json")


def doctor(format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
           workspace_dir: WorkspaceOption = None) -> None:
    """Audit the workspace against the pitfalls P1-P8 and the seed's 4-week set-up order; each finding says
    how to fix it (a command or a console page). Changes nothing."""
    from qunflow.services.doctor import doctor_report

    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}")
    ws = workspace(workspace_dir)
    report = doctor_report(ws)
    if format_ == "json":
        print(json.dumps({"findings": report["findings"]}, ensure_ascii=False, indent=2))
        return
    if not report["findings"]:
        console.print("No pitfall found: the workspace follows the seed's set-up (P1-P8).", highlight=False)
        return
    table = Table("week", "pitfall", "severity", "finding", "fix", title="pitfall doctor")
    for f in report["findings"]:
        table.add_row(str(f["week"]), f["pitfall"], f["severity"], f["message"], f["fix"])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
