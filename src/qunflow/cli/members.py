"""`qunflow member export|erase`: a member's privacy rights (P8), by member id or phone number."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from qunflow.cli.common import WorkspaceOption, cli_actor, console, fail, workspace

member_app = typer.Typer(help="A member's records: export everything held about them, or erase them.",
                         no_args_is_help=True)

MemberArg = Annotated[str | None, typer.Argument(help="The member id (m_...); or give --phone.")]
PhoneOption = Annotated[str | None, typer.Option("--phone", help="Find the member by the phone number they gave.")]


@member_app.command("show")
def show(member_id: MemberArg = None, phone: PhoneOption = None,
         output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
         workspace_dir: WorkspaceOption = None) -> None:
    """One member's record: profile, identities, consents, tier moves, timeline (message counts), group, tier,
    inbox."""
    from qunflow.services.member_records import find_member, member_record

    if output not in ("table", "json"):
        fail("--format is table or json")
    ws = workspace(workspace_dir)
    record = member_record(ws, find_member(ws, member_id, phone), with_profile=True)
    if output == "json":
        print(json.dumps(record, ensure_ascii=False, indent=2))
        return
    profile = record["profile"] or {}
    console.print(f"member {record['member_id']}  name: {profile.get('name', '-')}  group: {record['group'] or '-'}"
                  f"  tier: {record['tier'] or '-'}  joined: {record['joined_at'] or '-'}", highlight=False)
    console.print(f"referrer: {record['referrer_id'] or '-'}  invitees: {', '.join(record['invitees']) or '-'}",
                  highlight=False)
    for identity in record["identities"]:
        console.print(f"identity  {identity['platform']}: {identity['external_user_id']}", highlight=False)
    for key in record["keys"]:
        console.print(f"key       {key['kind']}: {key['key']}", highlight=False)
    for purpose, granted in sorted(record["consents_in_force"].items()):
        console.print(f"consent   {purpose}: {'granted' if granted else 'withdrawn'}", highlight=False)
    for move in record["tier_moves"]:
        console.print(f"tier move  {move['from_group'] or move['from_tier'] or '-'} -> "
                      f"{move['to_group'] or move['to_tier']}  {move['status']}  ({move['rule']}, "
                      f"{move['created_at']})", highlight=False)
    for item in record["timeline"]:
        extra = f" x{item['count']}" if item["type"] == "message" else (
            f" {item['amount']} {item['currency'] or ''}" if item.get("amount") else "")
        console.print(f"{item['ts']}  {item['type']}{extra}", highlight=False)
    for item in record["inbox"]:
        console.print(f"inbox #{item['id']}  {item['title']}  due {item['due_at'] or '-'}", highlight=False)


@member_app.command("search")
def search(query: Annotated[str, typer.Argument(help="A name, phone number, external id or coupon code.")],
           workspace_dir: WorkspaceOption = None) -> None:
    """Find members by name, phone number, external id or coupon code."""
    from qunflow.services.member_records import search_members

    for item in search_members(workspace(workspace_dir), query):
        console.print(f"{item['member_id']}  {item['name'] or '-'}  {item['group'] or '-'}  {item['tier'] or '-'}"
                      f"  ({item['matched_by']})", highlight=False)


@member_app.command("export")
def export(member_id: MemberArg = None, phone: PhoneOption = None, workspace_dir: WorkspaceOption = None) -> None:
    """Everything qunflow holds about one member, decrypted, as JSON on stdout."""
    from qunflow.services.member_records import export_member, find_member

    ws = workspace(workspace_dir)
    document = export_member(ws, find_member(ws, member_id, phone))
    print(json.dumps(document, ensure_ascii=False, indent=2))


@member_app.command("erase")
def erase(member_id: MemberArg = None, phone: PhoneOption = None,
          yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
          workspace_dir: WorkspaceOption = None) -> None:
    """Erase a member's personal data everywhere (state DB, analytics, sandbox); the metrics keep anonymous events."""
    from qunflow.services.erasure import erase_member, resume_erasure, unfinished
    from qunflow.services.member_records import find_member

    ws = workspace(workspace_dir)
    if member_id is not None and phone is None and unfinished(ws, member_id.strip()):
        resume_erasure(ws, member_id.strip())
        console.print(f"member {member_id.strip()}: the erasure is finished (analytics store and sandbox)",
                      highlight=False)
        return
    found = find_member(ws, member_id, phone)
    if not yes and not typer.confirm(f"Erase member {found} for good? This cannot be undone", default=False):
        fail("nothing erased")
    report = erase_member(ws, found, actor=cli_actor())
    console.print(f"member {found} erased", highlight=False)
    for name, count in sorted(report.counts.items()):
        console.print(f"  {name}: {count}", highlight=False)
    console.print("kept for the metrics (no personal data):", highlight=False)
    for line in report.kept:
        console.print(f"  - {line}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(member_app, name="member")


@member_app.command("merges")
def merges(status: Annotated[str, typer.Option("--status", help="candidate, merged, rejected, undone or all")]
           = "candidate", workspace_dir: WorkspaceOption = None) -> None:
    """Pairs of members who may be one person (a shared phone, a shop id), for review; and past decisions."""
    from qunflow.services.merges import find_candidates, list_merges

    if status not in ("candidate", "merged", "rejected", "undone", "all"):
        fail("--status is candidate, merged, rejected, undone or all")
    ws = workspace(workspace_dir)
    find_candidates(ws)
    for row in list_merges(ws, None if status == "all" else status):
        console.print(f"#{row['id']}  {row['keep_id']} <- {row['merged_id']}  ({row['reason']}, {row['status']})",
                      highlight=False)


@member_app.command("merge")
def merge(keep: Annotated[str, typer.Argument(help="The member that stays.")],
          merged: Annotated[str, typer.Argument(help="The member folded into it.")],
          workspace_dir: WorkspaceOption = None) -> None:
    """Merge two members who are one person: both histories under KEEP; undo with `member unmerge`."""
    from qunflow.services.merges import merge as do_merge

    done = do_merge(workspace(workspace_dir), keep, merged, actor=cli_actor())
    rows = sum(done["rows_moved"].values())
    dropped = ", ".join(f"{name} {n}" for name, n in done["rows_dropped"].items())
    console.print(f"merge #{done['id']}: {merged} folded into {keep} ({done['events_moved']} events and {rows} "
                  "other rows moved)", highlight=False)
    if dropped:
        console.print(f"  kept {keep}'s row where both had one; {merged}'s stored for undo: {dropped}",
                      highlight=False)
    if done["self_referrals"]:
        console.print(f"  {done['self_referrals']} referral(s) between them are now self-referrals (fraud: high)",
                      highlight=False)


@member_app.command("reject")
def reject(merge_id: Annotated[int, typer.Argument(help="The candidate's number (member merges).")],
           workspace_dir: WorkspaceOption = None) -> None:
    """Reject a merge candidate: they are two people."""
    from qunflow.services.merges import reject as do_reject

    do_reject(workspace(workspace_dir), merge_id, actor=cli_actor())
    console.print(f"merge candidate #{merge_id} rejected", highlight=False)


@member_app.command("unmerge")
def unmerge(merge_id: Annotated[int, typer.Argument(help="The merge's number (member merges --status merged).")],
            workspace_dir: WorkspaceOption = None) -> None:
    """Undo a merge: everything it moved goes back."""
    from qunflow.services.merges import undo

    undo(workspace(workspace_dir), merge_id, actor=cli_actor())
    console.print(f"merge #{merge_id} undone", highlight=False)
