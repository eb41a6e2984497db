"""`qunflow connect discord`: check the bot token and its privileged intents, save [platforms.discord]."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from qunflow.cli.common import WorkspaceOption, console, workspace
from qunflow.connectors.registry import settings_refusal
from qunflow.errors import InvalidInput
from qunflow.settings import save_platform_section

ENV = "QUNFLOW_DISCORD_"


def register(connect_app: typer.Typer) -> None:
    """Adds `discord` to the `qunflow connect` group."""
    connect_app.command("discord")(connect_discord)


def connect_discord(
    ctx: typer.Context,
    bot_token: Annotated[str | None, typer.Option(
        "--bot-token", envvar=f"{ENV}BOT_TOKEN", show_envvar=True,
        help="The bot token (Developer Portal → Bot). From the environment it is used but not saved.")] = None,
    api_base: Annotated[str, typer.Option("--api-base", help="The REST API base URL.")]
        = "https://discord.com/api/v10",
    public_key: Annotated[str, typer.Option(
        "--public-key", help="The application's public key, to verify calls to /hooks/discord (optional).")] = "",
    message_content: Annotated[bool, typer.Option(
        "--message-content/--no-message-content", help="Read what people write (a privileged intent).")] = True,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Connect a Discord bot: check its token and intents, save \\[platforms.discord]."""
    from qunflow.connectors.base import Host
    from qunflow.connectors.discord.connector import DiscordConnector
    from qunflow.connectors.discord.settings import DiscordSettings

    ws = workspace(workspace_dir)
    if not bot_token:
        raise InvalidInput(f"no bot token: pass --bot-token (Developer Portal → Bot) or set {ENV}BOT_TOKEN",
                           zh=f"缺少机器人令牌:请传 --bot-token(Developer Portal → Bot)或设置 {ENV}BOT_TOKEN")
    values: dict[str, Any] = {"bot_token": bot_token, "api_base": api_base, "public_key": public_key,
                              "message_content": message_content}
    try:
        settings = DiscordSettings(**values)
    except ValidationError as exc:  # one line, and never the input: it may be the token
        raise settings_refusal("discord", exc, where_default="settings") from None
    host = Host(public_url=ws.settings.public_url, home=ws.home, clock=ws.clock, secret="")
    lines = DiscordConnector(settings, host).connect()
    section = {k: v for k, v in values.items() if v != ""}
    source = ctx.get_parameter_source("bot_token")
    if source is not None and source.name == "ENVIRONMENT":
        del section["bot_token"]
    path = save_platform_section(ws.home, "discord", section)
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"saved [platforms.discord] in {path}", highlight=False)
