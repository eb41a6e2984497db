"""Inspect the sandbox platform: its groups, messages and private messages."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, workspace

sandbox_app = typer.Typer(help="The built-in sandbox chat platform.", no_args_is_help=True)


@sandbox_app.command("groups")
def groups(workspace_dir: WorkspaceOption = None) -> None:
    """Chats on the sandbox and their member counts."""


    world = workspace(workspace_dir).sandbox
    table = Table("chat", "title", "members")
    for chat in world.chats():
        table.add_row(chat["id"], chat["title"], str(chat["members"]))
    console.print(table)
    console.print(world.counts())


@sandbox_app.command("messages")
def messages(chat: Annotated[str | None, typer.Option(help="A chat id (default: private messages).")] = None,
             user: Annotated[str | None, typer.Option(help="Private messages with this user.")] = None,
             limit: int = 20, workspace_dir: WorkspaceOption = None) -> None:
    """The newest messages in a chat, or the bot's private messages."""


    world = workspace(workspace_dir).sandbox
    table = Table("time (UTC)", "where", "from", "text")
    for m in world.messages(chat_id=chat, dm_user_id=user, limit=limit):
        where = m["chat_id"] or f"DM {m['dm_user_id']}"
        table.add_row(f"{m['sent_at']:%Y-%m-%d %H:%M:%S}", where, m["sender"], m["text"])
    console.print(table)


@sandbox_app.command("join")
def join(group: Annotated[str, typer.Argument(help="A group key (qunflow groups) or a sandbox chat id.")],
         name: Annotated[str, typer.Option("--name", help="The new person's display name.")],
         workspace_dir: WorkspaceOption = None) -> None:
    """Add a new person straight into a group, as a member adding a friend does (no gate, no invite link).
    Prints the new sandbox user's id on the last line."""
    from sqlalchemy import select

    from qunflow.store.tables import groups

    ws = workspace(workspace_dir)
    with ws.engine.connect() as conn:
        chat = conn.execute(select(groups.c.external_id).where(groups.c.key == group,
                                                               groups.c.platform == "sandbox")).scalar()
    user_id = ws.sandbox.add_friend(chat or group, name)
    console.print(f"{name} joined {group} on the sandbox (added by a member: no gate, no invite link)",
                  highlight=False)
    print(user_id)


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
