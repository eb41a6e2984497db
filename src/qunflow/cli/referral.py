"""`qunflow referrals link|poster`: a member's referral link and poster (S3), added to the `referrals` group
that cli/rewards.py makes (with its leaderboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qunflow.cli.common import WorkspaceOption, console, fail, workspace
from qunflow.cli.rewards import referrals_app

MemberArg = Annotated[str, typer.Argument(metavar="MEMBER", help="The member's id (m_...).")]


def link(member: MemberArg,
         entry: Annotated[str | None, typer.Option(help="Entry point the link lands on (only when the code "
                                                        "is created; default: see docs/incentives.md).")] = None,
         workspace_dir: WorkspaceOption = None) -> None:
    """Print the member's referral code, link and personal poster link (the code is created once)."""
    from qunflow.services.referrals import check_member, landing_path, referral_link

    ws = workspace(workspace_dir)
    check_member(ws, member)
    found = referral_link(ws, member, entry)
    console.print(f"[bold]code[/]    {found.code}", highlight=False)
    console.print(f"[bold]link[/]    {found.link}", highlight=False, soft_wrap=True)
    console.print(f"[bold]poster[/]  {found.poster_url}", highlight=False, soft_wrap=True)
    console.print(f"[bold]lands on[/] {landing_path(ws, found.code)}", highlight=False)  # says so if nowhere


def poster(member: MemberArg,
           out: Annotated[Path, typer.Option("--out", "-o", help="The PNG file to write.")],
           lang: Annotated[str | None, typer.Option(help="zh or en (default: the member's language).")] = None,
           workspace_dir: WorkspaceOption = None) -> None:
    """Render the member's poster (S3 copy, their QR code) as a PNG file."""
    from qunflow.services.posters import render_poster

    if out.suffix.lower() != ".png":
        fail(f"{out}: the poster is a PNG; name the file *.png")
    png = render_poster(workspace(workspace_dir), member, lang)
    try:
        out.write_bytes(png)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    console.print(f"poster for {member} written to [bold]{out}[/] ({len(png) // 1024} KiB)", highlight=False)


def register(app: typer.Typer) -> None:
    """`referrals link` and `referrals poster` (the group is added to `app` by cli/rewards.py)."""
    referrals_app.command("link")(link)
    referrals_app.command("poster")(poster)
