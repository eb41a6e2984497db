"""`qunflow connect slack`: check the bot token, learn the workspace and app ids, save the section."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from qunflow.cli.common import WorkspaceOption, console, workspace
from qunflow.connectors.registry import settings_refusal
from qunflow.connectors.slack.connector import WEBHOOK_PATH, SlackConnector
from qunflow.connectors.slack.settings import SlackSettings
from qunflow.errors import InvalidInput
from qunflow.settings import save_platform_section

ENV = "QUNFLOW_SLACK_"
SECRETS = ("bot_token", "signing_secret")


def register(connect_app: typer.Typer) -> None:
    """Adds `slack` to the `qunflow connect` group."""
    connect_app.command("slack")(connect_slack)


def connect_slack(
    ctx: typer.Context,
    bot_token: Annotated[str | None, typer.Option(
        "--bot-token", envvar=f"{ENV}BOT_TOKEN", show_envvar=True,
        help="The Bot User OAuth Token (xoxb-...). From the environment it is used but not saved.")] = None,
    signing_secret: Annotated[str | None, typer.Option(
        "--signing-secret", envvar=f"{ENV}SIGNING_SECRET", show_envvar=True,
        help="Basic Information > App Credentials > Signing Secret. From the environment it is not saved.")]
        = None,
    api_base: Annotated[str, typer.Option("--api-base", help="The Web API (a local stand-in also works).")]
        = "https://slack.com/api",
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Connect a Slack app: check its bot token, learn its ids, save \\[platforms.slack]."""
    ws = workspace(workspace_dir)
    if not bot_token:
        raise InvalidInput(f"no bot token: pass --bot-token (xoxb-...) or set {ENV}BOT_TOKEN",
                           zh=f"缺少机器人令牌:请传 --bot-token(xoxb-...)或设置 {ENV}BOT_TOKEN")
    if not signing_secret:
        raise InvalidInput(f"no signing secret: pass --signing-secret or set {ENV}SIGNING_SECRET",
                           zh=f"缺少签名密钥:请传 --signing-secret 或设置 {ENV}SIGNING_SECRET")
    values: dict[str, Any] = {"bot_token": bot_token, "signing_secret": signing_secret, "api_base": api_base}
    connector = SlackConnector(_settings(values), None)
    lines = connector.connect()
    values["team_id"], values["app_id"] = connector.app_ids()
    section = dict(values)
    for name in SECRETS:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "ENVIRONMENT":
            del section[name]  # it stays where the operator keeps it
    path = save_platform_section(ws.home, "slack", section)
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"Event Subscriptions > Request URL: {ws.settings.public_url.rstrip('/')}{WEBHOOK_PATH} "
                  "(bot events: member_joined_channel, member_left_channel, message.channels, message.groups, "
                  "message.im)", highlight=False)
    console.print(f"saved [platforms.slack] in {path}", highlight=False)


def _settings(values: dict[str, Any]) -> SlackSettings:
    try:
        return SlackSettings(**values)
    except ValidationError as exc:  # one line, and never the input: it may be the token
        raise settings_refusal("slack", exc, where_default="settings") from None
