"""Incentives from the command line: `qunflow coupons`, `qunflow rewards`, `qunflow referrals`."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, cli_actor, console, fail, workspace
from qunflow.domain.schedule import parse_day

coupons_app = typer.Typer(help="The coupon ledger: issue, show, send, redeem, reverse coupons.", no_args_is_help=True)
rewards_app = typer.Typer(help="Rewards: the review queue, decisions, clawbacks, budgets, programs.",
                          no_args_is_help=True)
referrals_app = typer.Typer(help="Members' referral links and posters, statistics and the leaderboard.",
                            no_args_is_help=True)
ACTOR = cli_actor()  # decisions here are made by whoever runs the command
FORMATS = ("table", "json", "csv")
IdArg = Annotated[int, typer.Argument(metavar="ID", help="The reward's id (see `qunflow rewards list`).")]
CodeArg = Annotated[str, typer.Argument(metavar="CODE", help="The coupon code (case, spaces, dashes ignored).")]


def _money(value: float | Decimal) -> str:
    return f"¥{value:,.2f}"


def _print_coupon(row: dict[str, Any]) -> None:
    console.print(f"{row['code']}  {row['name']}  {_money(row['value'])}  {row['status']}  member {row['member_id']}"
                  f"  expires {row['expires_at'][:16].replace('T', ' ')} UTC", highlight=False)


@coupons_app.command("issue")
def coupon_issue(member: Annotated[str, typer.Argument(help="The member who gets the coupon.")],
                 name: Annotated[str, typer.Option(help="The coupon's name, as the member sees it.")],
                 value: Annotated[str, typer.Option(help="Face value in yuan, e.g. 20 or 9.90.")],
                 valid_days: Annotated[int, typer.Option(help="Days until it expires (1-365).")] = 30,
                 cause: Annotated[str | None, typer.Option(
                     help="Your key for it: the same cause never issues a second coupon.")] = None,
                 workspace_dir: WorkspaceOption = None) -> None:
    """Issue a coupon outside the reward rules (goodwill, a promotion)."""
    from qunflow.services.coupons import issue_manual

    try:
        amount = Decimal(value)
    except InvalidOperation:
        fail(f"--value must be a number like 20 or 9.90, got {value!r}")
        return
    if not amount.is_finite() or amount <= 0 or amount > 100000 or amount != amount.quantize(Decimal("0.01")):
        fail(f"--value must be above 0, at most 100000, with at most 2 decimals; got {value!r}")
    if not 1 <= len(name) <= 64:
        fail("--name must be 1 to 64 characters")
    coupon, new = issue_manual(workspace(workspace_dir), member_id=member, name=name, value=amount,
                               valid_days=valid_days, cause=cause, actor=ACTOR)
    _print_coupon(coupon.as_json())
    if not new:
        console.print("already issued for this cause: nothing new", style="dim")


@coupons_app.command("show")
def coupon_show(code: CodeArg, workspace_dir: WorkspaceOption = None) -> None:
    """A coupon and every ledger entry of it."""
    from qunflow.services.coupons import show

    row = show(workspace(workspace_dir), code)
    _print_coupon(row)
    if row["order_ref"]:
        console.print(f"redeemed on order {row['order_ref']} by {row['redeemed_by']}", highlight=False)
    table = Table("at (UTC)", "entry", "from", "to", "amount", "actor", "reason")
    for e in row["ledger"]:
        table.add_row(e["at"][:16].replace("T", " "), e["entry"], e["from"], e["to"], _money(e["amount"]), e["actor"],
                      e["reason"] or "")
    console.print(table)


@coupons_app.command("redeem")
def coupon_redeem(code: CodeArg,
                  order: Annotated[str, typer.Option("--order", help="The order it is used on (retries are safe).")],
                  member: Annotated[str, typer.Option("--member", help="The member whose order it is.")],
                  workspace_dir: WorkspaceOption = None) -> None:
    """Redeem a coupon on an order of its owner."""
    from qunflow.services.coupons import redeem_for

    _print_coupon(redeem_for(workspace(workspace_dir), code, order_ref=order, member_id=member, actor=ACTOR).as_json())


@coupons_app.command("reverse")
def coupon_reverse(code: CodeArg, reason: Annotated[str, typer.Option(help="Why it is taken back.")],
                   workspace_dir: WorkspaceOption = None) -> None:
    """Reverse an open coupon: it can no longer be used."""
    from qunflow.services.coupons import change_now

    _print_coupon(change_now(workspace(workspace_dir), code, "reverse", actor=ACTOR, reason=reason).as_json())


@coupons_app.command("send")
def coupon_send(code: CodeArg, workspace_dir: WorkspaceOption = None) -> None:
    """Mark a coupon as sent to its owner."""
    from qunflow.services.coupons import change_now

    _print_coupon(change_now(workspace(workspace_dir), code, "send", actor=ACTOR).as_json())


@rewards_app.command("list")
def rewards_list(status: Annotated[str | None, typer.Option(
                     help="held, review, paid, capped, rejected, reversed or clawed_back.")] = None,
                 member: Annotated[str | None, typer.Option(help="Only this member's rewards.")] = None,
                 limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 100,
                 workspace_dir: WorkspaceOption = None) -> None:
    """Rewards with their fraud level and reasons (`--status review` is the review queue)."""
    from qunflow.services.reward_views import list_rewards, overview

    ws = workspace(workspace_dir)
    rows = list_rewards(ws, status=status, member_id=member, limit=limit)
    table = Table("id", "status", "member", "rule", "value", "coupon", "fraud", "reasons", "earned (UTC)")
    for r in rows:
        reasons = "; ".join(str(x.get("code", x)) if isinstance(x, dict) else str(x) for x in r["fraud_reasons"])
        table.add_row(str(r["id"]), r["status"], r["member_id"], f"{r['program']}/{r['rule']} ({r['role']})",
                      _money(r["value"]), r["coupon_code"] or r["coupon_name"], r["fraud_level"] or "", reasons,
                      r["created_at"][:16].replace("T", " "))
    console.print(table)
    counts = overview(ws)["statuses"]
    console.print("  ".join(f"{s}: {c['count']}" for s, c in counts.items()), style="dim", highlight=False)


def _decide(reward_id: int, approve: bool, note: str | None, workspace_dir: Any) -> None:
    from qunflow.services.reward_views import get_reward
    from qunflow.services.rewards import decide

    ws = workspace(workspace_dir)
    status = decide(ws, reward_id, approve=approve, by=ACTOR, note=note)
    row = get_reward(ws, reward_id)
    coupon = f", coupon {row['coupon_code']}" if row["coupon_code"] else ""
    console.print(f"reward {reward_id}: {status}{coupon}", highlight=False)


@rewards_app.command("approve")
def rewards_approve(reward_id: IdArg, note: Annotated[str | None, typer.Option(help="A note kept with it.")] = None,
                    workspace_dir: WorkspaceOption = None) -> None:
    """Approve a reward in review: it is paid as a coupon now."""
    _decide(reward_id, True, note, workspace_dir)


@rewards_app.command("reject")
def rewards_reject(reward_id: IdArg, note: Annotated[str | None, typer.Option(help="Why.")] = None,
                   workspace_dir: WorkspaceOption = None) -> None:
    """Reject a reward in review: nothing is paid and its budget is given back."""
    _decide(reward_id, False, note, workspace_dir)


@rewards_app.command("clawback")
def rewards_clawback(reward_id: IdArg, reason: Annotated[str, typer.Option(help="Why it is taken back.")],
                     workspace_dir: WorkspaceOption = None) -> None:
    """Take a reward back: unpaid ones are reversed, a paid coupon is reversed or clawed back."""
    from qunflow.services.rewards import clawback

    status = clawback(workspace(workspace_dir), reward_id, by=ACTOR, reason=reason)
    console.print(f"reward {reward_id}: {status}", highlight=False)


@rewards_app.command("budget")
def rewards_budget(workspace_dir: WorkspaceOption = None) -> None:
    """Money committed against each cap (per program and rule, in total and per local day)."""
    from qunflow.services.reward_views import program_details

    table = Table("program", "scope", "period", "committed", "cap", "used")
    for program in program_details(workspace(workspace_dir)):
        for b in program["budget_usage"]:
            table.add_row(program["key"], b["scope"], b["period"], _money(b["committed"]),
                          _money(b["cap"]) if b["cap"] else "—", f"{b['share']:.0%}" if b["share"] is not None else "—")
    console.print(table)


@rewards_app.command("programs")
def rewards_programs(workspace_dir: WorkspaceOption = None) -> None:
    """Applied reward programs: each rule, what one firing costs, and what was paid so far."""
    from qunflow.services.reward_views import program_details

    programs = program_details(workspace(workspace_dir))
    if not programs:
        console.print("no reward program applied yet: `qunflow apply FILE` or `qunflow apply --shipped`")
    for p in programs:
        caps = ", ".join(f"{k} {_money(v)}" for k, v in p["budget"].items() if v) or "no cap"
        table = Table("rule", "when", "coupons", "face value", "expected cost", "firings in budget", "paid",
                      title=f"{p['key']} v{p['version']} ({'enabled' if p['enabled'] else 'disabled'}; hold "
                            f"{p['hold_days']} days; {caps})")
        for rule in p["rules"]:
            when = f"{rule['invitees']} invitee(s)" if rule["invitees"] else str(rule["qualify"])
            coupons = "; ".join(f"{role}: {p['coupons'][key]['name']}" for role, key in rule["coupons"].items())
            paid = rule["rewards"].get("paid", {"count": 0, "value": 0.0})
            table.add_row(rule["id"], when, coupons, _money(rule["face_value"]), _money(rule["expected_cost"]),
                          str(rule["firings_in_budget"] or "—"), f"{paid['count']} ({_money(paid['value'])})")
        console.print(table)


@referrals_app.command("leaderboard")
def leaderboard(by: Annotated[str, typer.Option(help="member, campaign or channel.")] = "member",
                from_: Annotated[str | None, typer.Option("--from", help="First join day (YYYY-MM-DD).")] = None,
                to: Annotated[str | None, typer.Option("--to", help="Last join day (YYYY-MM-DD).")] = None,
                limit: Annotated[int, typer.Option(help="Top N (1-1000).")] = 20,
                format_: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
                workspace_dir: WorkspaceOption = None) -> None:
    """Top inviters (or campaigns, channels) by qualified invitees, then joined invitees."""
    from qunflow.services import referral_stats

    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}")
    start, end = parse_day(from_, "--from"), parse_day(to, "--to")
    rows = [r.as_json(by) for r in referral_stats.leaderboard(workspace(workspace_dir), by=by, start=start, end=end,
                                                               limit=limit)]
    # risk: the worst fraud level among the row's invitees; high-risk ones do not count toward the rank.
    columns = ["rank", by, "invites", "joined", "qualified", "paid", "paid_value", "review", "high_risk", "risk"]
    if format_ == "json":
        print(json.dumps({"by": by, "from": start and start.isoformat(), "to": end and end.isoformat(),
                          "rows": rows}, ensure_ascii=False, indent=2))
    elif format_ == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        print(buffer.getvalue(), end="")
    else:
        table = Table(*columns, title=f"referrals by {by}, joins {start or 'any'} to {end or 'any'}")
        for row in rows:
            table.add_row(*[_money(row[c]) if c == "paid_value" else str(row[c] or "") if c == "risk"
                            else str(row[c]) for c in columns])
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(coupons_app, name="coupons")
    app.add_typer(rewards_app, name="rewards")
    app.add_typer(referrals_app, name="referrals")
