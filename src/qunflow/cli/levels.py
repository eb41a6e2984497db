"""`qunflow levels compute`: every member's engagement level as of a day (docs/levels.md)."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from qunflow.cli.common import WorkspaceOption, console, fail, workspace

levels_app = typer.Typer(help="Engagement levels: new, active, core, slipping, dormant (from recent activity).",
                         no_args_is_help=True)


@levels_app.command("compute")
def compute(as_of: Annotated[str | None, typer.Option("--as-of", metavar="YYYY-MM-DD",
                                                      help="The as-of day (workspace zone); default today.")] = None,
            output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
            workspace_dir: WorkspaceOption = None) -> None:
    """Compute and store every member's level; a level_changed event for each member whose level moved."""
    from qunflow.services.levels import compute_levels

    if output not in ("table", "json"):
        fail(f"--format must be table or json, got {output!r}")
    day = None
    if as_of is not None:
        try:
            day = date.fromisoformat(as_of.strip())
        except ValueError:
            fail(f"--as-of must be a day like 2026-03-31, got {as_of[:40]!r}")
    run = compute_levels(workspace(workspace_dir), day)
    if output == "json":
        print(json.dumps({"as_of": run.as_of.isoformat(), "members": run.members, "changed": run.changed,
                          "levels": run.counts}))
        return
    console.print(f"levels as of {run.as_of}: {run.members} members, {run.changed} changed level", highlight=False)
    for name, count in run.counts.items():
        console.print(f"  {name:<9} {count}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(levels_app, name="levels")
