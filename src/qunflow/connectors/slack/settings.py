"""The `[platforms.slack]` section: the bot token, the signing secret, and where the Web API lives."""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from qunflow.connectors.base import SettingError, api_base
from qunflow.connectors.registry import PlatformSettings

# Bot tokens start with xoxb- (OAuth & Permissions > Bot User OAuth Token).
TOKEN = re.compile(r"xoxb-[A-Za-z0-9-]{8,}")
# Slack ids: A… for apps, T… for workspaces (upper-case letters and digits).
SLACK_ID = re.compile(r"[A-Z][A-Z0-9]{2,}")


class SlackSettings(PlatformSettings):
    """QUNFLOW_SLACK_<FIELD> variables beat the file. Secrets stay out of repr and error messages."""

    model_config = SettingsConfigDict(env_prefix="QUNFLOW_SLACK_", extra="forbid", hide_input_in_errors=True)

    bot_token: str = Field(repr=False)
    signing_secret: str = Field(repr=False)  # Basic Information > App Credentials > Signing Secret
    api_base: str = "https://slack.com/api"
    # Filled by `qunflow connect slack` from auth.test and bots.info: the entry link opens a DM with the app.
    team_id: str = ""
    app_id: str = ""

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: str) -> str:
        value = value.strip()
        if not TOKEN.fullmatch(value):
            raise SettingError("the bot token must start with xoxb- (copy the Bot User OAuth Token from your app's "
                               "OAuth & Permissions page)",
                               zh="机器人令牌须以 xoxb- 开头(请从应用的 OAuth & Permissions 页面复制 "
                                  "Bot User OAuth Token)")
        return value

    @field_validator("signing_secret")
    @classmethod
    def _secret_shape(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[0-9a-f]{16,128}", value):
            raise SettingError("the signing secret is the hex string under Basic Information > App Credentials > "
                               "Signing Secret",
                               zh="签名密钥是 Basic Information > App Credentials > Signing Secret 下的十六进制字符串")
        return value

    @field_validator("team_id", "app_id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        value = value.strip()
        if value and not SLACK_ID.fullmatch(value):
            raise SettingError(f"{value!r} is not a Slack id (such as T0123ABCD or A0123ABCD)",
                               zh=f"{value!r} 不是 Slack ID(例如 T0123ABCD 或 A0123ABCD)")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return api_base(value, "https://slack.com/api")
