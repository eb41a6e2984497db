"""`qunflow user`, `qunflow token` and `qunflow audit`: who may use the console and the API, and what
everyone did."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, workspace
from qunflow.domain.access import PERMISSIONS, ROLES, TOKEN_SCOPES, parse_groups
from qunflow.domain.schedule import parse_day

if TYPE_CHECKING:
    from qunflow.workspace import Workspace

user_app = typer.Typer(help="Console users: owner, operator, advisor or analyst, optionally limited to groups.",
                       no_args_is_help=True)
token_app = typer.Typer(help="API tokens for the JSON API, each with its scopes.", no_args_is_help=True)

ROLE_HELP = ("owner: everything; operator: set-up and reward decisions; advisor: the inbox and the member "
             "records of their groups; analyst: metrics and pseudonymous exports")
SCOPE_HELP = "; ".join(f"{name}: {text}" for name, text in PERMISSIONS.items() if name in TOKEN_SCOPES)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            fail("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name (no spaces).")],
    role: Annotated[str, typer.Option(help=ROLE_HELP)],
    groups: Annotated[str | None, typer.Option(help="Limit to these group keys, comma-separated (default: all).")]
    = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input "
                                                                          "instead of asking for it.")] = False,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Create a console user (the password is stored as an argon2id hash)."""
    from qunflow.services.users import add_user

    if role not in ROLES:
        fail(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    ws = workspace(workspace_dir)
    chosen = parse_groups(groups)
    _check_groups(ws, chosen)
    add_user(ws.engine, name, role, _password(password_stdin), chosen)
    limit = f", groups {', '.join(chosen)}" if chosen else ""
    console.print(f"User [bold]{name}[/] added ({role}{limit}); log in at {ws.settings.public_url}/console/login",
                  highlight=False)


def _check_groups(ws: Workspace, groups: list[str] | None) -> None:
    if not groups:
        return
    from qunflow.services.catalog import list_groups

    known = {g["key"] for g in list_groups(ws)}
    unknown = [g for g in groups if g not in known]
    if unknown:
        fail(f"unknown group {unknown[0]!r} (see `qunflow group list`)")


@user_app.command("list")
def user_list(workspace_dir: WorkspaceOption = None) -> None:
    """Console users, their roles and group limits."""
    from qunflow.services.users import list_users

    table = Table("name", "role", "groups", "created (UTC)", "disabled")
    for row in list_users(workspace(workspace_dir).engine):
        table.add_row(row["name"], row["role"], ", ".join(row["groups"] or []) or "all",
                      f"{row['created_at']:%Y-%m-%d %H:%M}",
                      f"{row['disabled_at']:%Y-%m-%d %H:%M}" if row["disabled_at"] else "")
    console.print(table)


@user_app.command("remove")
def user_remove(name: str, workspace_dir: WorkspaceOption = None) -> None:
    """Disable a user and end their sessions (the audit log keeps their name)."""
    from qunflow.services.users import remove_user

    remove_user(workspace(workspace_dir).engine, name)
    console.print(f"User {name} disabled; their sessions are ended.", highlight=False)


@user_app.command("passwd")
def user_passwd(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the new password from standard "
                                                                          "input.")] = False,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Set a user's password (ends their sessions)."""
    from qunflow.services.users import set_password

    set_password(workspace(workspace_dir).engine, name, _password(password_stdin))
    console.print(f"Password of {name} changed; their sessions are ended.", highlight=False)


EXPIRY = re.compile(r"^(\d{1,4})d$")


def _expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    days = EXPIRY.match(text)
    if days:
        from qunflow.store.eventlog import utcnow

        return utcnow().replace(microsecond=0) + timedelta(days=int(days.group(1)))  # stored as UTC
    day = parse_day(text, "--expires")
    return datetime(day.year, day.month, day.day) if day else None


@token_app.command("create")
def token_create(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", help=f"What the token may do (repeat for more): "
                                                             f"{SCOPE_HELP}.")] = [],  # noqa: B006
    groups: Annotated[str | None, typer.Option(help="Limit to these group keys, comma-separated.")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry: a number of days (30d) or a day (2027-06-30, UTC).")]
    = None,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Create an API token and print it (it is shown only once)."""
    from qunflow.services.tokens import create_token

    ws = workspace(workspace_dir)
    chosen = parse_groups(groups)
    _check_groups(ws, chosen)
    print(create_token(ws.engine, name, scope, groups=chosen, expires_at=_expiry(expires)))


@token_app.command("list")
def token_list(workspace_dir: WorkspaceOption = None) -> None:
    """API tokens: scopes, limits, expiry, last use (never the tokens themselves)."""
    from qunflow.services.tokens import list_tokens

    table = Table("name", "scopes", "groups", "created (UTC)", "expires", "last used", "revoked")

    def when(value: datetime | None) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    for row in list_tokens(workspace(workspace_dir).engine):
        table.add_row(row["name"], " ".join(row["scopes"]), ", ".join(row["groups"] or []) or "all",
                      when(row["created_at"]), when(row["expires_at"]), when(row["last_used_at"]),
                      when(row["revoked_at"]))
    console.print(table)


@token_app.command("revoke")
def token_revoke(name: str, workspace_dir: WorkspaceOption = None) -> None:
    """Revoke a token: it stops working at once."""
    from qunflow.services.tokens import revoke_token

    revoke_token(workspace(workspace_dir).engine, name)
    console.print(f"Token {name} revoked.", highlight=False)


def audit(
    actor: Annotated[str | None, typer.Option(help="Only this actor (user:NAME, token:NAME, cli:USER).")] = None,
    action: Annotated[str | None, typer.Option(help="Only actions starting with this text.")] = None,
    via: Annotated[str | None, typer.Option(help="console, api or cli.")] = None,
    since: Annotated[str | None, typer.Option("--from", help="From this day (YYYY-MM-DD, UTC).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many rows, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """The audit log: every operator action from the console, the API and the command line."""
    import json

    from qunflow.services.audit import entries

    if via not in (None, "console", "api", "cli"):
        fail("--via must be console, api or cli")
    day = parse_day(since, "--from")
    rows = entries(workspace(workspace_dir).engine, actor=actor, action=action, via=via,
                   since=datetime(day.year, day.month, day.day) if day else None, limit=limit)
    if as_json:
        for row in rows:
            print(json.dumps({**row, "at": row["at"].isoformat() + "Z"}, ensure_ascii=False))
        return
    table = Table("when (UTC)", "actor", "via", "action", "target", "outcome", "detail")
    for row in rows:
        table.add_row(f"{row['at']:%Y-%m-%d %H:%M:%S}", row["actor"], row["via"], row["action"], row["target"] or "",
                      row["outcome"], json.dumps(row["detail"], ensure_ascii=False) if row["detail"] else "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.command()(audit)
