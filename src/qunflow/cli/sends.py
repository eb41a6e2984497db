"""`qunflow sends`: what the outbox sent, is waiting to send, or gave up on; and staff-confirmed tasks."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, workspace

sends_app = typer.Typer(help="The outbox: every message qunflow sends, with its state.", no_args_is_help=True)


@sends_app.command("list")
def list_command(status: Annotated[str | None, typer.Option(help="queued, pending, retry, sent, dead, unreachable "
                                                                 "or skipped")] = None,
                 kind: Annotated[str | None, typer.Option(help="welcome_dm, welcome_menu, keyword_reply, playbook, "
                                                               "coupon_dm ...")] = None,
                 limit: int = 50, workspace_dir: WorkspaceOption = None) -> None:
    """The newest sends (never their text)."""
    from qunflow.services.sends import list_sends

    table = Table("id", "kind", "platform", "to", "status", "tries", "created (UTC)", "error")
    for row in list_sends(workspace(workspace_dir), status=status, kind=kind, limit=limit):
        table.add_row(f"s{row['id']}", row["kind"], row["platform"], row["target"], row["status"],
                      str(row["attempts"]), f"{row['created_at']:%Y-%m-%d %H:%M:%S}", row["error"] or "")
    console.print(table)


@sends_app.command("check")
def check_command(send_id: Annotated[str, typer.Argument(help="A send's id, e.g. s12 (see `qunflow sends list`).")],
                  workspace_dir: WorkspaceOption = None) -> None:
    """Where a staff-confirmed task (WeCom mass send) stands: pending, sent, not a contact, over the cap."""
    from qunflow.errors import InvalidInput
    from qunflow.services.sends import task_results

    number = send_id.removeprefix("s")
    if not number.isdigit():
        raise InvalidInput(f"{send_id!r} is not a send id such as s12", zh=f"{send_id!r} 不是发送记录 ID(形如 s12)")
    result = task_results(workspace(workspace_dir), int(number))
    console.print(f"task {result['msgid']}: {result['sent']} sent, {result['pending']} waiting for staff, "
                  f"{result['not_contact']} no longer contacts, {result['over_limit']} over the monthly cap",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(sends_app, name="sends")
