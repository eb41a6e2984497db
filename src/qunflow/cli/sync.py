"""`qunflow sync list|retry|run`: the outbound sync to a CRM (docs/sync.md), its dead letters and retries."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, err_console, fail, workspace

sync_app = typer.Typer(help="Outbound sync: signed webhooks of member events to a CRM or warehouse "
                            "(\\[qunflow.sync.<name>] in qunflow.toml, docs/sync.md).", no_args_is_help=True)


@sync_app.command("list")
def list_deliveries(status: Annotated[str, typer.Option(
                        help="dead (default), pending, posting, sent, or all.")] = "dead",
                    target: Annotated[str | None, typer.Option(help="Only this subscription.")] = None,
                    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
                    workspace_dir: WorkspaceOption = None) -> None:
    """Deliveries, newest first (by default the dead letters), and each subscription's counts."""
    from qunflow.services import sync

    if output not in ("table", "json"):
        fail(f"--format must be table or json, got {output!r}")
    ws = workspace(workspace_dir)
    rows = sync.list_deliveries(ws, None if status == "all" else status, target)
    if output == "json":
        print(json.dumps({"counts": sync.counts(ws), "deliveries": rows}, default=str))
        return
    for problem in sync.check_targets(ws):
        err_console.print(f"[yellow]warning:[/] {problem}", highlight=False)
    for name, by_status in sync.counts(ws).items():
        console.print(f"{name}: " + ", ".join(f"{s} {n}" for s, n in by_status.items()), highlight=False)
    table = Table("id", "subscription", "event", "type", "status", "attempts", "last error", "next / sent (UTC)")
    for row in rows:
        when = row["sent_at"] if row["status"] == "sent" else row["next_at"]
        table.add_row(str(row["id"]), row["target"], row["event_id"], row["type"], row["status"],
                      str(row["attempts"]), row["last_error"] or "", f"{when:%Y-%m-%d %H:%M:%S}")
    console.print(table)


@sync_app.command("retry")
def retry(ids: Annotated[list[int] | None, typer.Argument(help="Dead-letter ids (see `qunflow sync list`).")] = None,
          all_dead: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
          workspace_dir: WorkspaceOption = None) -> None:
    """Put dead letters back in line with fresh attempts; the worker posts them in its next round."""
    from qunflow.services.sync import retry as retry_dead

    if not ids and not all_dead:
        fail("name the dead letters to retry (ids from `qunflow sync list`), or --all")
    changed = retry_dead(workspace(workspace_dir), ids or [], all_dead=all_dead)  # any id not dead: exit 2
    console.print(f"{changed} back in line")


@sync_app.command("run")
def run(workspace_dir: WorkspaceOption = None) -> None:
    """One round now: queue new events, post what is due (`qunflow serve` and the worker do it every round)."""
    from qunflow.services.sync import sync_round

    done = sync_round(workspace(workspace_dir))
    console.print(f"queued {done.queued}, sent {done.sent}, failed {done.failed}, dead {done.dead}",
                  highlight=False)
    for error in done.errors[:5]:
        err_console.print(error, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(sync_app, name="sync")
