"""Set-up commands: channels, campaigns, groups and entry points (with their QR codes)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, workspace
from qunflow.errors import Conflict
from qunflow.services import catalog
from qunflow.workspace import Workspace

channel_app = typer.Typer(help="Channels: where traffic comes from (ad, content, website, offline, referral).",
                          no_args_is_help=True)
campaign_app = typer.Typer(help="Campaigns inside a channel.", no_args_is_help=True)
group_app = typer.Typer(help="Groups on a chat platform, by tier, with a capacity.", no_args_is_help=True)
entry_app = typer.Typer(help="Entry points: tracked landing page, QR code and gate per channel.",
                        no_args_is_help=True)


@channel_app.command("add")
def channel_add(key: str, kind: Annotated[str, typer.Option(help="ad, content, website, offline or referral")],
                name: Annotated[str | None, typer.Option(help="Display name.")] = None,
                workspace_dir: WorkspaceOption = None) -> None:
    """Add a channel."""
    catalog.add_channel(workspace(workspace_dir), key, kind, name)
    console.print(f"channel {key} added")


@campaign_app.command("add")
def campaign_add(key: str, channel: Annotated[str, typer.Option(help="Channel key.")],
                 name: Annotated[str | None, typer.Option()] = None, workspace_dir: WorkspaceOption = None) -> None:
    """Add a campaign to a channel."""
    catalog.add_campaign(workspace(workspace_dir), key, channel, name)
    console.print(f"campaign {key} added")


@group_app.command("add")
def group_add(key: str, tier: Annotated[str, typer.Option(help="newbie, interest, core or broadcast")],
              capacity: Annotated[int, typer.Option(help="Seats (e.g. 200 for a WeChat QR group).")] = 200,
              platform: Annotated[str, typer.Option(help="Chat platform.")] = "sandbox",
              external_id: Annotated[str | None, typer.Option(help="The platform's chat id.")] = None,
              name: Annotated[str | None, typer.Option()] = None, workspace_dir: WorkspaceOption = None) -> None:
    """Add a group (on the sandbox, the chat is created for you)."""
    from qunflow.services.waitlist import offer_seats

    ws = workspace(workspace_dir)
    catalog.add_group(ws, key, tier, capacity, platform=platform, external_id=external_id, name=name)
    console.print(f"group {key} added")
    invited = offer_seats(ws)  # seats for people on the waitlist
    if invited:
        console.print(f"{invited} people on the waitlist invited")
    _warn_tiers_without_groups(ws)


@group_app.command("list")
def group_list(workspace_dir: WorkspaceOption = None) -> None:
    """Groups with members and room left."""
    table = Table("group", "tier", "platform", "members", "capacity", "room")
    for g in catalog.list_groups(workspace(workspace_dir)):
        table.add_row(g["key"], g["tier"], g["platform"], str(g["members"]), str(g["capacity"]), str(g["room"]))
    console.print(table)


@entry_app.command("add")
def entry_add(code: str, channel: Annotated[str, typer.Option(help="Channel key.")],
              tier: Annotated[str, typer.Option(help="Target tier when the gate does not decide.")] = "newbie",
              gate: Annotated[str | None, typer.Option(help="Gate key ('seed' is built in).")] = None,
              campaign: Annotated[str | None, typer.Option(help="Campaign key.")] = None,
              platform: Annotated[str, typer.Option()] = "sandbox",
              workspace_dir: WorkspaceOption = None) -> None:
    """Add an entry point (landing page /j/CODE)."""
    from qunflow.services.gates import ensure_seed

    ws = workspace(workspace_dir)
    if gate == "seed":
        with contextlib.suppress(Conflict):  # the shipped gate document is applied on first use
            ensure_seed(ws)
    catalog.add_entry_point(ws, code, channel, target_tier=tier, gate=gate, campaign=campaign, platform=platform)
    console.print(f"entry point {code}: {ws.settings.public_url.rstrip('/')}/j/{code}")
    _warn_tiers_without_groups(ws, code)


def _warn_tiers_without_groups(ws: Workspace, only: str | None = None) -> None:
    """Warn (on stderr) when an entry point's gate can route to a tier with no group: such passes fall back
    along `tier_fallback` or wait on the waitlist (docs/gate.md)."""
    from qunflow.cli.common import err_console
    from qunflow.services.gates import tiers_without_groups

    for e in catalog.list_entry_points(ws):
        if only is not None and e["code"] != only:
            continue
        empty = tiers_without_groups(ws, e["gate"], e["target_tier"])
        if empty:
            err_console.print(f"warning: entry point {e['code']} can route to tier(s) with no group: "
                              f"{', '.join(empty)}; those passes fall back along tier_fallback "
                              f"({' -> '.join(ws.settings.tier_fallback)}) or wait on the waitlist. "
                              f"Add a group with `qunflow group add KEY --tier {empty[0]}`.", highlight=False)


@entry_app.command("list")
def entry_list(workspace_dir: WorkspaceOption = None) -> None:
    """Entry points and their landing URLs."""
    ws = workspace(workspace_dir)
    table = Table("code", "channel", "tier", "gate", "landing page")
    for e in catalog.list_entry_points(ws):
        table.add_row(e["code"], e["channel"], e["target_tier"], e["gate"] or "-",
                      f"{ws.settings.public_url.rstrip('/')}/j/{e['code']}")
    console.print(table)


@entry_app.command("qr")
def entry_qr(code: str, output: Annotated[Path, typer.Option("-o", "--output", help="File: .svg or .png")],
             workspace_dir: WorkspaceOption = None) -> None:
    """Write the entry point's QR code (pointing at its landing page)."""
    from qunflow.web.public import qr_image

    ws = workspace(workspace_dir)
    kind = output.suffix.lower().lstrip(".")
    if kind not in ("svg", "png"):
        fail(f"{output}: the QR file must end in .svg or .png")
    with ws.engine.connect() as conn:
        entry = catalog.entry_info(conn, code)
    output.write_bytes(qr_image(f"{ws.settings.public_url.rstrip('/')}/j/{code}", kind))
    console.print(f"QR code for {code} written to {output}")
    if entry.gate is None:  # a gate-less entry point also has the platform's own code (WeCom 联系我)
        from qunflow.services.join import entry_invite

        link = entry_invite(ws, code)[2]
        if link.qr_url:
            console.print(f"the {entry.platform} code itself (state {code}): {link.qr_url}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(channel_app, name="channel")
    app.add_typer(campaign_app, name="campaign")
    app.add_typer(group_app, name="group")
    app.add_typer(entry_app, name="entry")
