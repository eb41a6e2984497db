"""The `[platforms.discord]` section: the bot token, where the REST API lives, and the interactions key."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from qunflow.connectors.base import SettingError, api_base
from qunflow.connectors.registry import PlatformSettings

PUBLIC_KEY = re.compile(r"[0-9a-fA-F]{64}")  # the application's Ed25519 public key, hex (Developer Portal)


class DiscordSettings(PlatformSettings):
    """QUNFLOW_DISCORD_<FIELD> variables beat the file. Secrets stay out of repr and error messages."""

    model_config = SettingsConfigDict(env_prefix="QUNFLOW_DISCORD_", extra="forbid", hide_input_in_errors=True)

    bot_token: str = Field(repr=False)
    api_base: str = "https://discord.com/api/v10"  # the REST API; the gateway URL comes from GET /gateway/bot
    # Member joins, leaves and messages arrive over the Gateway, which `qunflow serve` keeps open in a
    # background thread and polls (there is no webhook for them): always "polling".
    mode: Literal["polling"] = "polling"
    # The application's public key: /hooks/discord verifies interaction calls (Ed25519) with it.
    public_key: str = ""
    # Ask for message content (a privileged intent): keyword rules and activity read what people write.
    message_content: bool = True

    @field_validator("bot_token")
    @classmethod
    def _token(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 20 or any(c.isspace() for c in value):
            raise SettingError("the bot token looks wrong: copy it from the Developer Portal (Bot → Reset Token)",
                               zh="机器人令牌看起来不对:请从 Developer Portal 复制(Bot → Reset Token)")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return api_base(value, "https://discord.com/api/v10")

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        value = value.strip()
        if value and not PUBLIC_KEY.fullmatch(value):
            raise SettingError("the public key is 64 hex characters (Developer Portal → General Information)",
                               zh="public key 是 64 个十六进制字符(Developer Portal → General Information)")
        return value.lower()
