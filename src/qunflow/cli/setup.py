"""Set-up commands: channels, campaigns, groups and entry points (with their QR codes)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, lazy_module, workspace, writable_file
from qunflow.errors import Conflict

if TYPE_CHECKING:
    from qunflow.services import catalog
    from qunflow.workspace import Workspace
else:  # loaded when a command runs: `--help` stays quick
    catalog = lazy_module("qunflow.services.catalog")

AllOption = Annotated[bool, typer.Option("--all", help="Archived ones too.")]
NameOption = Annotated[str | None, typer.Option(help="New display name.")]

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


@channel_app.command("list")
def channel_list(all_: AllOption = False, workspace_dir: WorkspaceOption = None) -> None:
    """Channels with their open campaigns and entry points."""
    table = Table("channel", "kind", "name", "campaigns", "entry points", "status")
    for c in catalog.list_channels(workspace(workspace_dir), include_archived=all_):
        table.add_row(c["key"], c["kind"], c["name"], str(c["campaigns"]), str(c["entry_points"]),
                      "archived" if c["archived"] else "open")
    console.print(table)


@channel_app.command("edit")
def channel_edit(key: str, name: NameOption = None,
                 kind: Annotated[str | None, typer.Option(help="ad, content, website, offline or referral")] = None,
                 workspace_dir: WorkspaceOption = None) -> None:
    """Rename a channel or change its kind (the key, which events carry, stays)."""
    catalog.edit_channel(workspace(workspace_dir), key, name=name, kind=kind)
    console.print(f"channel {key} changed")


@channel_app.command("archive")
def channel_archive(key: str, workspace_dir: WorkspaceOption = None) -> None:
    """Archive a channel (once its entry points and campaigns are archived); its events and numbers stay."""
    catalog.archive_channel(workspace(workspace_dir), key)
    console.print(f"channel {key} archived")


@campaign_app.command("add")
def campaign_add(key: str, channel: Annotated[str, typer.Option(help="Channel key.")],
                 name: Annotated[str | None, typer.Option()] = None, workspace_dir: WorkspaceOption = None) -> None:
    """Add a campaign to a channel."""
    catalog.add_campaign(workspace(workspace_dir), key, channel, name)
    console.print(f"campaign {key} added")


@campaign_app.command("list")
def campaign_list(all_: AllOption = False, workspace_dir: WorkspaceOption = None) -> None:
    """Campaigns and their channels."""
    table = Table("campaign", "channel", "name", "status")
    for c in catalog.list_campaigns(workspace(workspace_dir), include_archived=all_):
        table.add_row(c["key"], c["channel"], c["name"], "archived" if c["archived"] else "open")
    console.print(table)


@campaign_app.command("edit")
def campaign_edit(key: str, name: NameOption = None, workspace_dir: WorkspaceOption = None) -> None:
    """Rename a campaign (the key, which events carry, stays)."""
    catalog.edit_campaign(workspace(workspace_dir), key, name=name)
    console.print(f"campaign {key} changed")


@campaign_app.command("archive")
def campaign_archive(key: str, workspace_dir: WorkspaceOption = None) -> None:
    """Archive a campaign (once no open entry point carries it); its events and numbers stay."""
    catalog.archive_campaign(workspace(workspace_dir), key)
    console.print(f"campaign {key} archived")


@group_app.command("add")
def group_add(key: str, tier: Annotated[str, typer.Option(help="newbie, interest, core or broadcast")],
              capacity: Annotated[int, typer.Option(help="Seats (e.g. 200 for a WeChat QR group).")] = 200,
              platform: Annotated[str, typer.Option(help="Chat platform.")] = "sandbox",
              external_id: Annotated[str | None, typer.Option(help="The platform's chat id.")] = None,
              name: Annotated[str | None, typer.Option()] = None, workspace_dir: WorkspaceOption = None) -> None:
    """Add a group (on the sandbox, the chat is created for you)."""
    from qunflow.services.group_welcome import template_ids
    from qunflow.services.waitlist import offer_seats

    ws = workspace(workspace_dir)
    catalog.add_group(ws, key, tier, capacity, platform=platform, external_id=external_id, name=name)
    console.print(f"group {key} added")
    templates = template_ids(ws, platform)
    if templates:  # WeCom: staff bind the group welcome template to the group in their client
        console.print("group welcome template (入群欢迎语素材): " + ", ".join(
            f"{lang} {tid}" for lang, tid in sorted(templates.items())) + "; the group owner binds one to the "
            "group in the WeCom client (see docs/connectors.md)", highlight=False, soft_wrap=True)
    elif hasattr(ws.connector(platform), "save_group_welcome"):
        console.print("the group welcome template could not be made (see the log above); the next `group add` "
                      "or `qunflow apply` of the welcome tries again", highlight=False, soft_wrap=True)
    invited = offer_seats(ws)  # seats for people on the waitlist
    if invited:
        console.print(f"{invited} people on the waitlist invited")
    _warn_tiers_without_groups(ws)


@group_app.command("list")
def group_list(all_: AllOption = False, workspace_dir: WorkspaceOption = None) -> None:
    """Groups with members and room left."""
    table = Table("group", "tier", "platform", "members", "capacity", "room", "status")
    for g in catalog.list_groups(workspace(workspace_dir), include_archived=all_):
        table.add_row(g["key"], g["tier"], g["platform"], str(g["members"]), str(g["capacity"]), str(g["room"]),
                      "archived" if g["archived"] else "open")
    console.print(table)


@group_app.command("edit")
def group_edit(key: str, capacity: Annotated[int | None, typer.Option(help="Seats.")] = None,
               tier: Annotated[str | None, typer.Option(help="newbie, interest, core or broadcast")] = None,
               name: NameOption = None, workspace_dir: WorkspaceOption = None) -> None:
    """Change a group's capacity, tier or name."""
    from qunflow.services.waitlist import offer_seats

    ws = workspace(workspace_dir)
    catalog.edit_group(ws, key, name=name, capacity=capacity, tier=tier)
    console.print(f"group {key} changed")
    invited = offer_seats(ws)  # more seats, or another tier: people on the waitlist may fit now
    if invited:
        console.print(f"{invited} people on the waitlist invited")


@group_app.command("archive")
def group_archive(key: str, workspace_dir: WorkspaceOption = None) -> None:
    """Archive a group: the live code sends nobody new to it and its invite links are revoked; its members and
    history stay."""
    revoked = catalog.archive_group(workspace(workspace_dir), key)
    console.print(f"group {key} archived: it takes no new members ({revoked} invite link(s) revoked)")


@entry_app.command("add")
def entry_add(code: str, channel: Annotated[str, typer.Option(help="Channel key.")],
              tier: Annotated[str, typer.Option(help="Target tier when the gate does not decide.")] = "newbie",
              gate: Annotated[str | None, typer.Option(help="Gate key ('seed' is built in).")] = None,
              campaign: Annotated[str | None, typer.Option(help="Campaign key.")] = None,
              platform: Annotated[str, typer.Option()] = "sandbox",
              utm: Annotated[list[str] | None, typer.Option(help="UTM default KEY=VALUE (repeat).")] = None,
              workspace_dir: WorkspaceOption = None) -> None:
    """Add an entry point (landing page /j/CODE)."""
    from qunflow.services.gates import ensure_seed

    ws = workspace(workspace_dir)
    if gate == "seed":
        with contextlib.suppress(Conflict):  # the shipped gate document is applied on first use
            ensure_seed(ws)
    catalog.add_entry_point(ws, code, channel, target_tier=tier, gate=gate, campaign=campaign, platform=platform,
                            utm={k: v for k, v in parse_utm(utm or []).items() if v})
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
def entry_list(all_: AllOption = False, workspace_dir: WorkspaceOption = None) -> None:
    """Entry points and their landing URLs."""
    ws = workspace(workspace_dir)
    table = Table("code", "channel", "campaign", "tier", "gate", "landing page", "status")
    for e in catalog.list_entry_points(ws, include_archived=all_):
        table.add_row(e["code"], e["channel"], e["campaign"] or "-", e["target_tier"], e["gate"] or "-",
                      f"{ws.settings.public_url.rstrip('/')}/j/{e['code']}", "closed" if e["archived"] else "open")
    console.print(table)


def parse_utm(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs (an empty VALUE removes the default)."""
    utm: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            fail(f"--utm {pair!r}: write it as KEY=VALUE, e.g. utm_medium=poster")
        utm[key.strip()] = value.strip()
    return utm


@entry_app.command("edit")
def entry_edit(code: str,
               tier: Annotated[str | None, typer.Option(help="Target tier when the gate does not decide.")] = None,
               gate: Annotated[str | None, typer.Option(help="Gate key.")] = None,
               no_gate: Annotated[bool, typer.Option("--no-gate", help="Remove the gate.")] = False,
               campaign: Annotated[str | None, typer.Option(help="Campaign key.")] = None,
               no_campaign: Annotated[bool, typer.Option("--no-campaign", help="Remove the campaign.")] = False,
               channel: Annotated[str | None, typer.Option(help="Channel key (for new visits; past events keep "
                                                                 "theirs).")] = None,
               utm: Annotated[list[str] | None, typer.Option(help="UTM default KEY=VALUE (repeat; empty VALUE "
                                                                  "removes it).")] = None,
               name: NameOption = None, workspace_dir: WorkspaceOption = None) -> None:
    """Change an entry point's tier, gate, campaign, channel, UTM defaults or name (its code stays: it is the
    invite code on every QR already printed)."""
    if gate is not None and no_gate:
        fail("--gate and --no-gate contradict each other: use one")
    if campaign is not None and no_campaign:
        fail("--campaign and --no-campaign contradict each other: use one")
    ws = workspace(workspace_dir)
    if gate == "seed":
        from qunflow.services.gates import ensure_seed

        ensure_seed(ws)  # the shipped gate document is applied on first use
    catalog.edit_entry_point(ws, code, name=name, channel=channel, target_tier=tier,
                             campaign=catalog.UNSET if no_campaign else campaign,
                             gate=catalog.UNSET if no_gate else gate, utm=parse_utm(utm or []))
    console.print(f"entry point {code} changed")


@entry_app.command("archive")
def entry_archive(code: str, workspace_dir: WorkspaceOption = None) -> None:
    """Close an entry point: its landing page says it is closed (410); its events and numbers stay."""
    catalog.archive_entry_point(workspace(workspace_dir), code)
    console.print(f"entry point {code} closed: /j/{code} now says so")


@entry_app.command("qr")
def entry_qr(code: str, output: Annotated[Path, typer.Option("-o", "--output", help="File: .svg or .png")],
             allow_loopback: Annotated[bool, typer.Option(
                 "--allow-loopback", help="Write it even though public_url is this machine (a local test).")] = False,
             workspace_dir: WorkspaceOption = None) -> None:
    """Write the entry point's QR code (pointing at its landing page). Refused while public_url is a loopback
    address, which no phone can reach, unless --allow-loopback."""
    from urllib.parse import urlsplit

    from qunflow.services.runtime import is_loopback
    from qunflow.web.public import qr_image

    ws = workspace(workspace_dir)
    kind = output.suffix.lower().lstrip(".")
    if kind not in ("svg", "png"):
        fail(f"{output}: the QR file must end in .svg or .png")
    writable_file(output)
    public_url = ws.settings.public_url
    if is_loopback(urlsplit(public_url).hostname or "") and not allow_loopback:
        fail(f"public_url is {public_url}, this machine: a phone scanning the QR code could not reach it. Set "
             "public_url in qunflow.toml (or QUNFLOW_PUBLIC_URL) to the address people open, or pass "
             "--allow-loopback for a local test")
    with ws.engine.connect() as conn:
        entry = catalog.entry_info(conn, code)
    output.write_bytes(qr_image(f"{ws.settings.public_url.rstrip('/')}/j/{code}", kind))
    console.print(f"QR code for {code} written to {output}")
    if entry.gate is None:  # a gate-less entry point also has the platform's own code (WeCom 联系我)
        from qunflow.services.join import NoRoom, entry_invite

        try:
            link = entry_invite(ws, code)[2]
        except NoRoom as exc:  # the QR file is written; the landing page will say "full" until a group has room
            console.print(f"warning: {exc}: add a {entry.target_tier} group (`qunflow group add`) before people "
                          "scan it", highlight=False)
            return
        if link.qr_url:
            console.print(f"the {entry.platform} code itself (state {code}): {link.qr_url}", highlight=False)


def _restore_command(typer_app: typer.Typer, kind: str, label: str) -> None:
    @typer_app.command("restore")
    def restore(key: str, workspace_dir: WorkspaceOption = None) -> None:
        catalog.restore(workspace(workspace_dir), kind, key)
        console.print(f"{label} {key} restored")

    restore.__doc__ = f"Undo `{kind} archive`: the {label} is open again."


for _app, _kind, _label in ((channel_app, "channel", "channel"), (campaign_app, "campaign", "campaign"),
                            (entry_app, "entry", "entry point"), (group_app, "group", "group")):
    _restore_command(_app, _kind, _label)


def register(app: typer.Typer) -> None:
    app.add_typer(channel_app, name="channel")
    app.add_typer(campaign_app, name="campaign")
    app.add_typer(group_app, name="group")
    app.add_typer(entry_app, name="entry")
