"""`qunflow tier moves`: run the tier rules now (docs/tiers.md) and count the moves."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from qunflow.cli.common import WorkspaceOption, console, fail, workspace

tier_app = typer.Typer(help="Tier moves: members who match a tier rule get their own link into the new tier.",
                       no_args_is_help=True)


@tier_app.command("moves")
def moves(dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the moves the rules call for; "
                                                "offer none.")] = False,
          output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
          workspace_dir: WorkspaceOption = None) -> None:
    """Run the tier rules over every member now: offer each new move (link by DM), then count the moves."""
    from qunflow.services.tier_moves import evaluate, expire_moves, move_counts

    if output not in ("table", "json"):
        fail(f"--format must be table or json, got {output!r}")
    ws = workspace(workspace_dir)
    expired = 0 if dry_run else expire_moves(ws)
    run = evaluate(ws, dry_run=dry_run)
    counts = move_counts(ws)
    if output == "json":
        print(json.dumps({"dry_run": dry_run, "planned": [
            {"member_id": m.member_id, "rule": m.rule, "from_tier": m.from_tier, "to_tier": m.to_tier,
             "why": m.why} for m in run.planned], "requested": run.requested, "offered": run.offered,
            "expired": expired, "moves": counts}))
        return
    verb = "would be offered" if dry_run else "requested"
    console.print(f"{len(run.planned)} moves {verb}" + ("" if dry_run else f", {run.offered} offered, "
                                                             f"{expired} expired"), highlight=False)
    for m in run.planned[:50]:
        console.print(f"  {m.member_id}  {m.from_tier or '-'} -> {m.to_tier}  ({m.rule}: {m.why})", highlight=False)
    if len(run.planned) > 50:
        console.print(f"  ... and {len(run.planned) - 50} more (--format json lists all)", highlight=False)
    console.print("moves: " + ", ".join(f"{status} {n}" for status, n in counts.items()), highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(tier_app, name="tier")
