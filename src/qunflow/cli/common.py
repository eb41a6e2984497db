"""Shared CLI pieces: the workspace option, the console, error exit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from qunflow.errors import QunflowError
from qunflow.workspace import Workspace, open_workspace

# Wide tables stay readable when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar="QUNFLOW_HOME",
                 help="Workspace folder (default: the current directory)."),
]


def workspace(path: Path | None) -> Workspace:
    return open_workspace(path)


def fail(message: str) -> None:
    """One clear line on stderr, exit code 2."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


class ErrorMappingGroup(TyperGroup):
    """Maps every QunflowError raised by any command to one line on stderr and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except QunflowError as exc:
            fail(str(exc))
            return None
