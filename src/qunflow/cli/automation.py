"""Automation from the command line: apply playbooks, run the worker, see and retry dead letters."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, err_console, fail, workspace

playbook_app = typer.Typer(help="Playbooks: what runs for members and groups, and where they are.",
                           no_args_is_help=True)
automation_app = typer.Typer(help="The automation worker and its dead letters.", no_args_is_help=True)


def apply(files: Annotated[list[Path] | None,
                           typer.Argument(help="Playbook, keyword rule, experiment, tier rule files.")] = None,
          shipped: Annotated[bool, typer.Option("--shipped", help="Also apply the playbooks qunflow ships "
                                                "(S1 welcome, S2 warm-up, S4 small event, content calendar, "
                                                "keyword rules, S3 referral rewards).")] = False,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the changes only.")] = False,
          workspace_dir: WorkspaceOption = None) -> None:
    """Validate playbook, keyword rule and experiment files; store a new version of each one that changed
    (all or nothing)."""
    from qunflow.services.playbooks import apply_playbooks, shipped_files

    paths = [*(files or []), *(shipped_files() if shipped else [])]
    if not paths:
        fail("name playbook files to apply, or --shipped")
    changes = apply_playbooks(workspace(workspace_dir), paths, dry_run=dry_run)
    for change in changes:
        name = {"playbook": "", "welcome": "welcome ", "rewards": "reward program ", "experiment": "experiment ",
                "tier_rules": "tier rules "}.get(change.kind, "keyword rules ") + change.key
        console.print(f"{name}: {change.status}, version {change.version}", highlight=False)
        if change.diff:
            console.print(change.diff, markup=False, highlight=False)
    if dry_run:
        console.print("dry run: nothing was applied", style="dim")


@playbook_app.command("list")
def list_playbooks(workspace_dir: WorkspaceOption = None) -> None:
    """Playbooks, their versions, and how many enrollments wait at each step."""
    from qunflow.services.playbooks import playbook_overview
    from qunflow.services.welcome_docs import welcome_overview

    ws = workspace(workspace_dir)
    welcome = welcome_overview(ws)  # S1: sent in the join path, not by the worker; no steps to wait at
    table = Table("playbook", "version", "trigger", "enabled", "at each step (active)", "done / exited / dead")
    table.add_row(welcome["key"], "built-in" if welcome["built_in"] else str(welcome["version"]),
                  "member_joined (join path)", "yes", "-", "-")
    for item in playbook_overview(ws):
        steps = ", ".join(f"{s['index']}:{s['id'] or s['action']}={s['active']}" for s in item["steps"] if s["active"])
        statuses = item["statuses"]
        table.add_row(item["key"], str(item["version"]), item["trigger"], "yes" if item["enabled"] else "no",
                      steps or "-", f"{statuses.get('done', 0)} / {statuses.get('exited', 0)} / "
                                    f"{statuses.get('dead', 0)}")
    console.print(table)


@automation_app.command("run")
def run(once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
        interval: Annotated[float, typer.Option(help="Seconds between rounds.")] = 0.5,
        worker: Annotated[str | None, typer.Option(
            help="This worker's name, unique among running workers; a restart under the same name takes "
                 "back its unfinished work at once (default: host and process id, taken back after 60 s).")] = None,
        workspace_dir: WorkspaceOption = None) -> None:
    """Run the automation worker: triggers, schedules and due steps. Several may run on PostgreSQL."""
    from qunflow.services.automation import release_leases, work_once

    if interval <= 0:
        fail("--interval must be above 0")
    ws = workspace(workspace_dir)
    if worker:
        release_leases(ws, worker)
    else:
        worker = f"{socket.gethostname()}-{os.getpid()}"
    while True:
        outcome = work_once(ws, worker=worker)
        if outcome.steps or outcome.errors:
            err_console.print(f"steps {outcome.steps}, sent {outcome.sent}, deferred {outcome.deferred}, "
                              f"failed {outcome.failed}", highlight=False)
        if once:
            return
        time.sleep(interval)


@automation_app.command("dead")
def dead(workspace_dir: WorkspaceOption = None) -> None:
    """Steps and sends that could not be carried out: what failed, and why."""
    from qunflow.services.automation import dead_letters

    table = Table("id", "playbook", "subject", "step", "error", "when (UTC)")
    for row in dead_letters(workspace(workspace_dir)):
        table.add_row(str(row["id"]), row["playbook_key"] or row["kind"], row["subject"],
                      "-" if row["step"] is None else str(row["step"]),
                      row["last_error"] or "", f"{row['updated_at']:%Y-%m-%d %H:%M}")
    console.print(table)


@automation_app.command("retry")
def retry(ids: Annotated[list[str], typer.Argument(
              help="Dead-letter ids (see `qunflow automation dead`): 12 for a step, s12 for a send.")],
          skip: Annotated[bool, typer.Option("--skip", help="Go on after the failed step instead.")] = False,
          workspace_dir: WorkspaceOption = None) -> None:
    """Put dead letters back in line."""
    from qunflow.services.automation import retry_dead

    changed = retry_dead(workspace(workspace_dir), ids, skip_step=skip)  # any id not dead: exit 2, no change
    console.print(f"{changed} back in line")


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)
    app.add_typer(playbook_app, name="playbooks")
    app.add_typer(automation_app, name="automation")
