"""The `[platforms.feishu]` section: a Feishu / Lark custom app (企业自建应用) with its bot."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from qunflow.connectors.base import SettingError
from qunflow.connectors.registry import PlatformSettings

# The two open platforms: Feishu (China) and Lark (elsewhere); a short name or a URL (a local stand-in).
DOMAINS = {"feishu": "https://open.feishu.cn", "lark": "https://open.larksuite.com"}


class FeishuSettings(PlatformSettings):
    """QUNFLOW_FEISHU_<FIELD> variables beat the file; secrets stay out of repr."""

    model_config = SettingsConfigDict(env_prefix="QUNFLOW_FEISHU_", extra="ignore")

    app_id: str
    app_secret: str = Field(repr=False)
    verification_token: str = Field(repr=False)
    # Required: with it Feishu encrypts each event and signs the request (X-Lark-Signature), which is what
    # lets qunflow refuse forged, replayed and stale calls.
    encrypt_key: str = Field(repr=False)
    domain: str = DOMAINS["feishu"]
    # How long a chat share link works (im/v1/chats/:chat_id/link validity_period).
    link_validity: Literal["week", "year", "permanently"] = "permanently"

    @field_validator("app_id", "app_secret", "verification_token", "encrypt_key")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise SettingError("must not be empty (copy it from the developer console: 凭证与基础信息 / 事件与回调)",
                               zh="不能为空(请从开发者后台的「凭证与基础信息」或「事件与回调」复制)")
        return value.strip()

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = DOMAINS.get(value.strip().lower(), value.strip()).rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise SettingError(f"{value!r} must be feishu, lark or an http(s) URL such as https://open.feishu.cn",
                               zh=f"{value!r} 须为 feishu、lark,或 http(s) 网址,例如 https://open.feishu.cn")
        return value
