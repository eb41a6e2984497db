"""`qunflow levels compute`: every member's engagement level as of a day; `qunflow pool sync|stats`: pools
and their repeat-order rate (docs/levels.md)."""

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
    run = compute_levels(workspace(workspace_dir), _day(as_of))
    if output == "json":
        print(json.dumps({"as_of": run.as_of.isoformat(), "members": run.members, "changed": run.changed,
                          "levels": run.counts}))
        return
    console.print(f"levels as of {run.as_of}: {run.members} members, {run.changed} changed level", highlight=False)
    for name, count in run.counts.items():
        console.print(f"  {name:<9} {count}", highlight=False)


pool_app = typer.Typer(help="Pools (the S4 repurchase pool, or any tag / level rule): members and repeat orders.",
                       no_args_is_help=True)


@pool_app.command("sync")
def pool_sync(workspace_dir: WorkspaceOption = None) -> None:
    """Add the members each pool's rule selects now (qunflow serve does it hourly)."""
    from qunflow.services.pools import sync_pools

    for name, added in sync_pools(workspace(workspace_dir)).items():
        console.print(f"pool {name}: {added} entered", highlight=False)


@pool_app.command("stats")
def pool_stats(name: Annotated[str, typer.Argument(metavar="NAME", help="The pool, e.g. repurchase.")],
               as_of: Annotated[str | None, typer.Option("--as-of", metavar="YYYY-MM-DD")] = None,
               output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
               workspace_dir: WorkspaceOption = None) -> None:
    """Repeat-order rate within the pool's window, by the week members entered (Monday weeks, workspace zone)."""
    from qunflow.services.pools import pool_stats as stats

    if output not in ("table", "json"):
        fail(f"--format must be table or json, got {output!r}")
    report = stats(workspace(workspace_dir), name, _day(as_of))
    if output == "json":
        print(json.dumps(report, default=str))
        return
    console.print(f"pool {name}: {report['members']} members; repeat order within {report['days']} days, "
                  f"as of {report['as_of']}", highlight=False)
    console.print(f"  {'week':<10} {'entered':>8} {'in prog.':>8} {'mature':>7} {'repeated':>8} {'rate':>7}",
                  highlight=False)
    for w in [*report["weeks"], {"week": "total", "entered": report["members"], "in_progress": "",
                                 **report["total"]}]:
        rate = "-" if w["rate"] is None else f"{w['rate']:.1%}"
        console.print(f"  {w['week']!s:<10} {w['entered']:>8} {w['in_progress']!s:>8} {w['mature']:>7} "
                      f"{w['repeated']:>8} {rate:>7}", highlight=False)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"--as-of must be a day like 2026-03-31, got {text[:40]!r}")
        raise AssertionError from None  # fail() exits


def register(app: typer.Typer) -> None:
    app.add_typer(levels_app, name="levels")
    app.add_typer(pool_app, name="pool")
