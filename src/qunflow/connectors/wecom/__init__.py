"""WeCom (企业微信) 客户联系: external contacts and customer groups, as the company's self-built app."""

from __future__ import annotations

from qunflow.connectors.registry import PlatformSpec
from qunflow.connectors.wecom.cli import register
from qunflow.connectors.wecom.connector import CAPABILITIES, WeComConnector
from qunflow.connectors.wecom.settings import WeComSettings

PLATFORM = PlatformSpec(
    name="wecom",
    capabilities=CAPABILITIES,
    settings=WeComSettings,
    build=lambda settings, host: WeComConnector(settings, host),
    cli=register,
    polls=False,
)

__all__ = ["PLATFORM", "WeComConnector", "WeComSettings"]
