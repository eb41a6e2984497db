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


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
