"""The `[platforms.telegram]` section: the bot token, where the Bot API lives, and how updates arrive."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from qunflow.connectors.base import SettingError, api_base
from qunflow.connectors.registry import PlatformSettings

# Shaped like @BotFather's tokens (the docs' example: 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11).
TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")
# setWebhook secret_token: 1-256 characters, only A-Z, a-z, 0-9, _ and -.
SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# A link is not handed out in its last minutes (services/invites.py HAND_OUT_MARGIN): lifetimes start at 15 min.
LINK_HOURS_MIN = 0.25


class TelegramSettings(PlatformSettings):
    """QUNFLOW_TELEGRAM_<FIELD> variables beat the file. Secrets stay out of repr and error messages."""

    model_config = SettingsConfigDict(env_prefix="QUNFLOW_TELEGRAM_", extra="forbid", hide_input_in_errors=True)

    bot_token: str = Field(repr=False)
    api_base: str = "https://api.telegram.org"  # or a local Bot API server (http is fine there)
    webhook_secret: str = Field("", repr=False)
    mode: Literal["webhook", "polling"] = "polling"
    # How long an invite link lives (createChatInviteLink expire_date), in hours. A gate pass's link: the
    # pass's validity (a day: time to open it, short enough that an old screenshot leads nowhere). An entry
    # point's shared link: 0 keeps it until the group fills; set it to renew the link that often (a link
    # posted somewhere stops working after it, and /j/CODE hands out a fresh one).
    pass_link_hours: float = Field(24.0, ge=LINK_HOURS_MIN, le=24 * 366)
    entry_link_hours: float = Field(0.0, ge=0, le=24 * 366)

    @field_validator("entry_link_hours")
    @classmethod
    def _entry_link_hours(cls, value: float) -> float:
        if 0 < value < LINK_HOURS_MIN:
            raise SettingError(f"entry_link_hours is 0 (no expiry) or at least {LINK_HOURS_MIN} (15 minutes): a "
                               "shorter link would be renewed on nearly every visit",
                               zh=f"entry_link_hours 须为 0(不过期)或至少 {LINK_HOURS_MIN}(15 分钟):"
                                  "更短的链接几乎每次访问都要换新")
        return value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: str) -> str:
        value = value.strip()
        if not TOKEN.fullmatch(value):
            raise SettingError("the bot token must look like 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 "
                               "(copy it from @BotFather)",
                               zh="机器人令牌应形如 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11(从 @BotFather 复制)")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return api_base(value, "https://api.telegram.org")

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: str) -> str:
        if value and not SECRET.fullmatch(value):
            raise SettingError("the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                               "(Telegram's rule for setWebhook secret_token)",
                               zh="回调密钥须为 1-256 个字符,只能用 A-Z、a-z、0-9、_ 和 -"
                                  "(Telegram 对 setWebhook secret_token 的规定)")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_secret:
            raise SettingError("webhook mode needs a webhook_secret (run `qunflow connect telegram --mode webhook`, "
                               "which makes one)",
                               zh="webhook 模式需要 webhook_secret(运行 `qunflow connect telegram --mode webhook` "
                                  "会自动生成)")
        return self
