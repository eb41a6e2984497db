"""`qunflow fraud check`: why a referral's reward waits in review, from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, workspace

fraud_app = typer.Typer(help="Fraud checks on referrals (see docs/incentives.md).", no_args_is_help=True)


@fraud_app.command("check")
def check(referral: Annotated[list[int] | None, typer.Argument(metavar="[ID]...", help="Referral ids.")] = None,
          member: Annotated[str | None, typer.Option(help="The referrals of this member, as inviter or invitee.")]
          = None,
          latest: Annotated[int, typer.Option(help="Without ids or --member: the latest N referrals.")] = 50,
          store: Annotated[bool, typer.Option("--store", help="Store the levels, as the engine does.")] = False,
          lang: Annotated[str, typer.Option(help="zh or en.")] = "zh",
          workspace_dir: WorkspaceOption = None) -> None:
    """Score referrals now: level (low / medium / high) and every reason."""
    from qunflow.services.fraud import check as run_check
    from qunflow.services.fraud import reason_text

    if lang not in ("zh", "en"):
        fail(f"--lang {lang!r}: use zh or en")
    if latest < 1:
        fail("--latest must be 1 or more")
    rows = run_check(workspace(workspace_dir), referral, member_id=member, store=store, limit=latest)
    table = Table("id", "inviter", "invitee", "joined (UTC)", "level", "reasons")
    for row in rows:
        reasons = "\n".join(reason_text(r, lang) for r in row["reasons"]) or "-"
        table.add_row(str(row["id"]), row["inviter_id"], row["invitee_id"], f"{row['joined_at']:%Y-%m-%d %H:%M}",
                      row["level"], reasons)
    console.print(table)
    if not rows:
        console.print("no referrals yet" if lang == "en" else "还没有邀请记录", style="dim")


def register(app: typer.Typer) -> None:
    app.add_typer(fraud_app, name="fraud")
