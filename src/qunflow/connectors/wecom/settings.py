"""The `[platforms.wecom]` section: a company's self-built app with the 客户联系 secret."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from qunflow.connectors.base import SettingError, api_base
from qunflow.connectors.registry import PlatformSettings

AES_KEY_LENGTH = 43


class WeComSettings(PlatformSettings):
    """QUNFLOW_WECOM_<FIELD> variables beat the file; secrets stay out of repr."""

    model_config = SettingsConfigDict(env_prefix="QUNFLOW_WECOM_", extra="ignore")

    corp_id: str
    secret: str = Field(repr=False)  # the 客户联系 secret (or a self-built app's secret on its 可调用应用 list)
    callback_token: str = Field(repr=False)
    aes_key: str = Field(repr=False)  # EncodingAESKey
    api_base: str = "https://qyapi.weixin.qq.com"
    staff_user_ids: list[str] = Field(default_factory=list)  # who answers 联系我 codes
    # contact: an invite is a 联系我 code and the welcome carries the group invite (works for every app);
    # group: an invite is a customer-group join code (needs the 客户群「加入群聊」 permission).
    entry_mode: Literal["contact", "group"] = "contact"
    welcome_group_link: bool = True

    @field_validator("corp_id", "secret", "callback_token")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise SettingError("must not be empty (copy it from the WeCom admin console)",
                               zh="不能为空(请从企业微信管理后台复制)")
        return value.strip()

    @field_validator("aes_key")
    @classmethod
    def _aes_key(cls, value: str) -> str:
        value = value.strip()
        if len(value) != AES_KEY_LENGTH or not value.isalnum() or not value.isascii():
            raise SettingError(f"the EncodingAESKey is exactly {AES_KEY_LENGTH} letters and digits "
                               f"(got {len(value)} characters); use 随机获取 on the callback settings page",
                               zh=f"EncodingAESKey 须正好是 {AES_KEY_LENGTH} 个字母和数字(当前 {len(value)} 个字符);"
                                  "请在回调设置页面点「随机获取」")
        return value

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return api_base(value, "https://qyapi.weixin.qq.com")
