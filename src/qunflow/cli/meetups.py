"""`qunflow meetup`: S4 small events with their date, sign-ups, attendance and numbers.

Named "meetup" so it is never mistaken for `qunflow events` (the event log).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, workspace

if TYPE_CHECKING:
    from qunflow.workspace import Workspace

meetup_app = typer.Typer(help="S4 small events: create one with its date, see sign-ups, attendance and orders.",
                         no_args_is_help=True)
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="The event's key, e.g. dec_live.")]
FORMATS = ("table", "json")


def parse_local(ws: Workspace, text: str) -> datetime:
    """'YYYY-MM-DD HH:MM' in the workspace's zone (or with an explicit offset) as naive UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        fail(f"--date must look like 2026-12-12 20:00 (local time of the workspace), got {text[:40]!r}")
        raise AssertionError from None  # fail() exits
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ws.settings.zone)
    return moment.astimezone(UTC).replace(tzinfo=None)


def _local(ws: Workspace, iso: str) -> str:
    moment = datetime.fromisoformat(iso.removesuffix("Z")).replace(tzinfo=UTC).astimezone(ws.settings.zone)
    return f"{moment:%Y-%m-%d %H:%M}"


@meetup_app.command("add")
def meetup_add(key: KeyArg,
               date: Annotated[str, typer.Option(help="Start, local time of the workspace: '2026-12-12 20:00'.")],
               title: Annotated[str, typer.Option(help="The title members see (Chinese, or the only one).")],
               title_en: Annotated[str | None, typer.Option(help="The English title (default: --title).")] = None,
               duration: Annotated[int, typer.Option(help="Minutes (5-1440).")] = 60,
               keyword: Annotated[str | None, typer.Option(
                   help="A word attendees say in the group to check in while the event runs.")] = None,
               coupon_value: Annotated[str, typer.Option(help="The day-of coupon's value in yuan.")] = "20",
               coupon_hours: Annotated[int, typer.Option(
                   help="Hours after the end the day-of coupon stays valid (1-720).")] = 24,
               capacity: Annotated[int | None, typer.Option(help="Most sign-ups (default: no limit).")] = None,
               workspace_dir: WorkspaceOption = None) -> None:
    """Create an event; its playbooks (s4_small_event.yaml) run from its date."""
    from qunflow.services.meetups import add_meetup, missing_playbooks

    ws = workspace(workspace_dir)
    try:
        value = Decimal(coupon_value)
    except InvalidOperation:
        fail(f"--coupon-value must be a number like 20 or 9.90, got {coupon_value!r}")
        return
    if not value.is_finite():
        fail(f"--coupon-value must be a number like 20 or 9.90, got {coupon_value!r}")
    meetup = add_meetup(ws, key, title_zh=title, title_en=title_en, starts_at=parse_local(ws, date),
                        duration_minutes=duration, checkin_keyword=keyword, coupon_value=value,
                        coupon_hours=coupon_hours, capacity=capacity)
    console.print(f"event {meetup.key} on {_local(ws, meetup.as_json()['starts_at'])} "
                  f"({ws.settings.timezone}); sign-up page {ws.settings.public_url.rstrip('/')}/e/{meetup.key}",
                  highlight=False)
    missing = missing_playbooks(ws)
    if missing:
        console.print(f"warning: no applied playbook has trigger {' or '.join(missing)}, so this event is not "
                      "announced or followed up; run `qunflow apply --shipped` (s4_small_event.yaml)", highlight=False)


@meetup_app.command("list")
def meetup_list(archived: Annotated[bool, typer.Option(help="Include archived events.")] = False,
                format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
                workspace_dir: WorkspaceOption = None) -> None:
    """Every event with its sign-ups, attendance and orders."""
    from qunflow.services.meetups import list_meetups

    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}")
    ws = workspace(workspace_dir)
    rows = list_meetups(ws, archived=archived)
    if format_ == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("key", "starts (local)", "title", "signups", "attended", "orders", "revenue", "coupons used",
                  title=f"events ({ws.settings.timezone})")
    for row in rows:
        table.add_row(row["key"], _local(ws, row["starts_at"]), row["title"]["zh"], str(row["signups"]),
                      str(row["attended"]), str(row["orders"]), f"¥{row['revenue']:,.2f}",
                      f"{row['coupons_redeemed']}/{row['coupons_issued']}")
    console.print(table)


@meetup_app.command("show")
def meetup_show(key: KeyArg, format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
                workspace_dir: WorkspaceOption = None) -> None:
    """One event: its numbers and who signed up and checked in (member ids)."""
    from qunflow.services.meetups import meetup_stats, signup_list

    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}")
    ws = workspace(workspace_dir)
    stats: dict[str, Any] = meetup_stats(ws, key)
    people = signup_list(ws, key)
    if format_ == "json":
        print(json.dumps({**stats, "people": people}, ensure_ascii=False, indent=2))
        return
    console.print(f"{stats['key']}: {stats['title']['zh']} / {stats['title']['en']}", highlight=False)
    console.print(f"starts {_local(ws, stats['starts_at'])}, ends {_local(ws, stats['ends_at'])} "
                  f"({ws.settings.timezone}); check-in keyword: {stats['checkin_keyword'] or '-'}", highlight=False)
    console.print(f"signups {stats['signups']}  attended {stats['attended']}  orders {stats['orders']} "
                  f"(buyers {stats['buyers']}, revenue ¥{stats['revenue']:,.2f})  unconverted attendees "
                  f"{stats['unconverted_attendees']}  day-of coupons {stats['coupons_redeemed']} used of "
                  f"{stats['coupons_issued']}", highlight=False)
    table = Table("member", "signed up (local)", "checked in (local)", "via")
    for person in people:
        checked_in = _local(ws, person["attended_at"]) if person["attended_at"] else "-"
        table.add_row(person["member_id"], _local(ws, person["signed_up_at"]), checked_in,
                      person["attended_via"] or "-")
    console.print(table)


@meetup_app.command("signup")
def meetup_signup(key: KeyArg, member: Annotated[str, typer.Argument(help="The member's id.")],
                  workspace_dir: WorkspaceOption = None) -> None:
    """Sign a member up (e.g. one who asked an advisor)."""
    from qunflow.services.meetups import sign_up

    new = sign_up(workspace(workspace_dir), key, member, via="staff")
    console.print(f"{member} {'signed up for' if new else 'was already signed up for'} {key}", highlight=False)


@meetup_app.command("checkin")
def meetup_checkin(key: KeyArg, member: Annotated[str, typer.Argument(help="The member's id.")],
                   workspace_dir: WorkspaceOption = None) -> None:
    """Record a member's attendance (at the door) and print their day-of coupon."""
    from qunflow.services.meetups import check_in

    coupon = check_in(workspace(workspace_dir), key, member, via="staff")
    console.print(f"{member} checked in at {key}; day-of coupon {coupon.code} (¥{coupon.value:,.2f})",
                  highlight=False)


@meetup_app.command("archive")
def meetup_archive(key: KeyArg, workspace_dir: WorkspaceOption = None) -> None:
    """Close an event to sign-ups and check-ins; its numbers stay."""
    from qunflow.services.meetups import archive_meetup

    archive_meetup(workspace(workspace_dir), key)
    console.print(f"event {key} archived", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(meetup_app, name="meetup")
