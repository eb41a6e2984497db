"""The `qunflow` command. Thin: parse, call a service, render."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup

from qunflow.cli import (
    access,
    automation,
    demo,
    doctor,
    experiments,
    fraud,
    gates,
    inbox,
    levels,
    meetups,
    members,
    metrics,
    plan,
    polls,
    referral,
    report,
    rewards,
    sandbox,
    sends,
    setup,
    sync,
    tiers,
)
from qunflow.cli.common import (
    ErrorMappingGroup,
    PortOption,
    WorkspaceOption,
    check_port_free,
    console,
    console_url,
    fail,
    workspace,
)


class LazyGroups(ErrorMappingGroup):
    """The `qunflow` group. Typer builds every command's options from its signature, which for ~170 commands
    costs more than the command itself; here a command group (`qunflow group ...`) is built only when it is
    used, so `qunflow metrics --help` builds `metrics` and nothing else."""

    lazy: dict[str, typer.Typer] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: Any, name: str) -> Any:
        found = super().get_command(ctx, name)
        if found is None and name in self.lazy:
            found = typer.main.get_group(self.lazy[name])
            found.name = name
            self.add_command(found, name)  # built once per process
        return found


app = typer.Typer(help="qunflow: run the community-distribution chain (社群分发链路).",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=LazyGroups)
events_app = typer.Typer(help="The event log: import and count events.", no_args_is_help=True)
app.add_typer(events_app, name="events")


class ConnectGroup(TyperGroup):
    """`qunflow connect <platform>`: the platforms' commands come from the connector registry when this group
    is used, so every other command (and its --help) runs without importing a connector."""

    _platforms: dict[str, Any] | None = None

    def _loaded(self) -> dict[str, Any]:
        if self._platforms is None:
            from qunflow.connectors.registry import platforms

            holder = typer.Typer()
            for spec in platforms().values():
                if spec.cli is not None:
                    spec.cli(holder)
            self._platforms = dict(typer.main.get_group(holder).commands)
        return self._platforms

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._loaded()})

    def get_command(self, ctx: Any, name: str) -> Any:
        return super().get_command(ctx, name) or self._loaded().get(name)


connect_app = typer.Typer(help="Connect a chat platform: check its credentials, route its updates, save "
                               "\\[platforms.<name>] in qunflow.toml. See docs/connectors.md.", no_args_is_help=True,
                          cls=ConnectGroup)
app.add_typer(connect_app, name="connect")


@app.command()
def init(
    directory: Annotated[Path | None, typer.Argument(help="Folder for the workspace (default: .)")] = None,
    timezone: Annotated[str, typer.Option(help="Reporting time zone (IANA name).")] = "Asia/Shanghai",
) -> None:
    """Create a workspace: settings file, secret key, database with migrations applied."""
    from qunflow.workspace import init_workspace

    ws = init_workspace(directory, timezone=timezone)
    console.print(f"Workspace ready in [bold]{ws.home}[/] (database: {ws.settings.db_url.split('@')[-1]})")


@events_app.command("import")
def events_import(
    file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet file of events.")],
    workspace_dir: WorkspaceOption = None,
    rows_per_commit: Annotated[int | None, typer.Option(
        min=1, help="Rows stored per transaction (default 250,000): an interrupted import keeps every "
                    "whole one. Fewer use less memory; more are faster on a large database.")] = None,
) -> None:
    """Import events. Re-sent event_ids are skipped; invalid rows are reported by line."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from qunflow.services.eventfiles import file_format
    from qunflow.services.fileimport import import_event_file

    ws = workspace(workspace_dir)
    if not file.is_file():
        fail(f"{file}: no such file")
    file_format(file)
    columns = (*Progress.get_default_columns()[:2], BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
        result = import_event_file(ws.engine, file, ws=ws, chunk=rows_per_commit,
                                   on_progress=lambda pos: progress.update(task, completed=pos))
    console.print(f"{result.stored} stored, {result.duplicates} already present, "
                  f"{len(result.errors)} rejected (of {result.received} rows)")
    for error in result.errors[:20]:
        console.print(f"  line {error['line']}: {error['reason']}", highlight=False)
    if result.errors:
        fail(f"{len(result.errors)} row(s) rejected; fix them and import the file again "
             "(stored rows are skipped as duplicates)")


@events_app.command("count")
def events_count(
    type_: Annotated[str | None, typer.Option("--type", help="Only events of this type.")] = None,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Count stored events."""
    from qunflow.store.eventlog import count_events

    with workspace(workspace_dir).engine.connect() as conn:
        print(count_events(conn, type_))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: PortOption = 8000,
    workspace_dir: WorkspaceOption = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help=(
        "Web processes behind the port (PostgreSQL only); the worker and shipper run apart in the parent."))] = 1,
) -> None:
    """Serve the web app, the worker and the shipper (one process, or --workers web processes and the parent)."""
    from qunflow.services.runtime import check_exposure, check_workers, serve_workspace

    ws = workspace(workspace_dir)
    check_exposure(ws, host)  # refusals first, so the console URL is printed only for a server that starts
    check_workers(ws, workers)
    check_port_free(host, port)
    console.print(f"Console: {console_url(ws, host, port)}   (Ctrl+C to stop)", highlight=False)
    serve_workspace(ws, host=host, port=port, workers=workers)


# command groups in their own modules; rewards brings coupons, rewards and referrals (the leaderboard), referral
# adds the referral links and posters to the referrals group
for module in (access, setup, gates, metrics, report, demo, sandbox, automation, inbox, rewards, referral, fraud,
               sends, members, meetups, levels, plan, doctor, experiments, tiers, sync, polls):
    module.register(app)
# Every command group is built on first use (LazyGroups); top-level commands are built with the app.
LazyGroups.lazy = {str(info.name): info.typer_instance for info in app.registered_groups
                   if info.typer_instance is not None}
app.registered_groups = []


def main() -> None:
    import sys

    os.umask(0o077)  # every file qunflow makes (databases, their -wal/-shm, exports) is its owner's only
    args, code = sys.argv[1:], 1
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        from typer.main import get_command

        from qunflow.cli.common import audit_command

        audit_command(get_command(app), args, code)
