"""Feishu / Lark (飞书): a custom app's bot in the company's groups."""

from __future__ import annotations

from qunflow.connectors.feishu.cli import register
from qunflow.connectors.feishu.connector import CAPABILITIES, FeishuConnector
from qunflow.connectors.feishu.settings import FeishuSettings
from qunflow.connectors.registry import PlatformSpec

PLATFORM = PlatformSpec(
    name="feishu",
    capabilities=CAPABILITIES,
    settings=FeishuSettings,
    build=lambda settings, host: FeishuConnector(settings, host),
    cli=register,
    polls=False,
)

__all__ = ["PLATFORM", "FeishuConnector", "FeishuSettings"]
