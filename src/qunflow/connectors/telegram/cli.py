"""`qunflow connect telegram`: check the bot token, route updates (webhook or polling), save the section."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from qunflow.cli.common import WorkspaceOption, console, workspace
from qunflow.connectors.registry import settings_refusal
from qunflow.connectors.telegram.connector import TelegramConnector
from qunflow.connectors.telegram.settings import TelegramSettings
from qunflow.errors import InvalidInput
from qunflow.settings import platform_sections, save_platform_section

ENV = "QUNFLOW_TELEGRAM_"


class Mode(StrEnum):
    webhook = "webhook"
    polling = "polling"


def register(connect_app: typer.Typer) -> None:
    """Adds `telegram` to the `qunflow connect` group."""
    connect_app.command("telegram")(connect_telegram)


def connect_telegram(
    ctx: typer.Context,
    bot_token: Annotated[str | None, typer.Option(
        "--bot-token", envvar=f"{ENV}BOT_TOKEN", show_envvar=True,
        help="The token from @BotFather. From the environment it is used but not saved.")] = None,
    api_base: Annotated[str, typer.Option(
        "--api-base", help="The Bot API server (a local telegram-bot-api server also works).")]
        = "https://api.telegram.org",
    webhook_secret: Annotated[str | None, typer.Option(
        "--webhook-secret", help="Secret Telegram sends with each webhook (default: a new random one).")] = None,
    mode: Annotated[Mode, typer.Option(
        "--mode", help="webhook: Telegram posts to <public_url>/hooks/telegram; polling: `qunflow serve` asks.")]
        = Mode.polling,
    pass_link_hours: Annotated[float | None, typer.Option(
        "--pass-link-hours", help="How long a gate pass's invite link works (default 24; kept when not given).")]
        = None,
    entry_link_hours: Annotated[float | None, typer.Option(
        "--entry-link-hours", help="Renew an entry point's shared link this often; 0 keeps it until its group "
                                   "fills (the default; kept when not given).")] = None,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Connect a Telegram bot: check its token, set or delete its webhook, save \\[platforms.telegram]."""
    ws = workspace(workspace_dir)
    if not bot_token:
        raise InvalidInput(f"no bot token: pass --bot-token (from @BotFather) or set {ENV}BOT_TOKEN",
                           zh=f"缺少机器人令牌:请传 --bot-token(在 @BotFather 获取)或设置 {ENV}BOT_TOKEN")
    if mode is Mode.webhook and not webhook_secret:
        webhook_secret = secrets.token_urlsafe(32)  # A-Z, a-z, 0-9, _ and -, as setWebhook requires
    values: dict[str, Any] = {"bot_token": bot_token, "api_base": api_base, "mode": mode.value,
                              "webhook_secret": webhook_secret or ""}
    saved = platform_sections(ws.home).get("telegram", {})
    for name, given in (("pass_link_hours", pass_link_hours), ("entry_link_hours", entry_link_hours)):
        if given is not None or name in saved:  # a reconnect keeps the lifetimes set before
            values[name] = given if given is not None else saved[name]
    settings = _settings(values)
    _refuse_shadowing(settings, values)
    lines = TelegramConnector(settings, None).connect(ws.settings.public_url)
    section = dict(values)
    source = ctx.get_parameter_source("bot_token")
    if source is not None and source.name == "ENVIRONMENT":
        del section["bot_token"]  # it stays where the operator keeps it
    if not section["webhook_secret"]:
        del section["webhook_secret"]
    path = save_platform_section(ws.home, "telegram", section)
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"saved [platforms.telegram] in {path}", highlight=False)


def _settings(values: dict[str, Any]) -> TelegramSettings:
    try:
        return TelegramSettings(**values)
    except ValidationError as exc:  # one line, and never the input: it may be the token
        raise settings_refusal("telegram", exc, where_default="settings") from None


def _refuse_shadowing(settings: TelegramSettings, values: dict[str, Any]) -> None:
    """QUNFLOW_TELEGRAM_* variables beat the settings file, so a differing one would silently win later."""
    for name, given in values.items():
        if given is not None and given != "" and getattr(settings, name) != given:
            raise InvalidInput(f"{ENV}{name.upper()} is set and beats what you passed (the environment beats "
                               "the settings file): unset it or pass the same value",
                               zh=f"已设置的环境变量 {ENV}{name.upper()} 会覆盖你传入的值(环境变量优先于设置文件):"
                                  "请取消该变量,或传入相同的值")
