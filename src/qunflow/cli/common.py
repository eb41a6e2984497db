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


# click's UsageError, whichever click typer runs on (newer typers vendor their own copy of click).
UsageError: type[Exception] = typer.BadParameter.__base__  # type: ignore[assignment]


def usage_error(exc: Exception) -> None:
    """A usage error (unknown command or option, missing argument, bad choice) as one line, exit 2."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        raise exc  # `qunflow events` alone shows that group's help, as click does
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    fail(getattr(exc, "format_message", exc.__str__)() + where)


class ErrorMappingGroup(TyperGroup):
    """Maps QunflowErrors and click usage errors from any command to one line on stderr and exit code 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:  # options of `qunflow` itself are parsed here, before invoke
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            usage_error(exc)
            return None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except QunflowError as exc:
            fail(str(exc))
            return None
        except UsageError as exc:
            usage_error(exc)
            return None
