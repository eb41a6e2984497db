"""The connector registry: every chat platform qunflow can run on, with its typed settings section.

A platform is one folder under `connectors/` whose package defines `PLATFORM = PlatformSpec(...)`, plus
one line in `BUILTIN` below. Services look connectors up by name through the workspace's composition
root (`qunflow.runtime`), never by importing a platform's module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from qunflow.connectors.base import Capabilities, Connector, Host, SettingError
from qunflow.errors import InvalidInput
from qunflow.settings import EnvFirstSettings

# One line per platform: the module whose PLATFORM is its spec.
BUILTIN = (
    "qunflow.connectors.sandbox",
    "qunflow.connectors.telegram",
    "qunflow.connectors.wecom",
    "qunflow.connectors.feishu",
    "qunflow.connectors.slack",
    "qunflow.connectors.discord",
)


class PlatformSettings(EnvFirstSettings):
    """Base of a `[platforms.<name>]` section. QUNFLOW_<NAME>_<FIELD> variables beat the file."""


@dataclass(frozen=True)
class PlatformSpec:
    name: str
    capabilities: Capabilities
    settings: type[BaseModel]
    build: Callable[[Any, Host], Connector]  # (its settings, the host) -> a connector
    # Registers `qunflow connect <name>` on the given Typer app (None: nothing to connect).
    cli: Callable[[Any], None] | None = None
    # True when the connector can pull updates itself (`poll(timeout) -> list[Update]`) instead of
    # receiving webhooks; `qunflow serve` then polls when the settings ask for it (settings.mode).
    polls: bool = False


_specs: dict[str, PlatformSpec] | None = None


def platforms() -> dict[str, PlatformSpec]:
    """Every registered platform by name (imported once)."""
    global _specs
    if _specs is None:
        found: dict[str, PlatformSpec] = {}
        for module in BUILTIN:
            spec: PlatformSpec = importlib.import_module(module).PLATFORM
            found[spec.name] = spec
        _specs = found
    return _specs


def spec_of(name: str) -> PlatformSpec:
    found = platforms().get(name)
    if found is None:
        raise InvalidInput(f"unknown platform {name!r} (available: {', '.join(platforms())})",
                           zh=f"未知的平台 {name!r}(可用:{', '.join(platforms())})")
    return found


def load_platform_settings(name: str, section: Mapping[str, Any]) -> Any:
    """The typed settings of one platform from its `[platforms.<name>]` section (and the environment)."""
    spec = spec_of(name)
    try:
        return spec.settings(**dict(section))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidInput(f"[platforms.{name}] {where}: {message}",
                           zh=f"[platforms.{name}]{' ' + where if where else ''} 设置有误:"
                              f"{setting_problem_zh(first)}") from exc


def settings_refusal(platform: str, exc: ValidationError, *, where_default: str = "") -> InvalidInput:
    """`qunflow connect <platform>`'s one-line refusal for settings that do not validate, in English and
    Chinese. Never the input: it may be a token."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or where_default
    return InvalidInput(f"{platform} {where}: {first['msg'].removeprefix('Value error, ')}",
                        zh=f"{platform}{' ' + where if where else ''} 设置有误:{setting_problem_zh(first)}")


def setting_problem_zh(error: ErrorDetails) -> str:
    """The Chinese of one pydantic error: a validator's `SettingError` text, or pydantic's own kinds."""
    ctx = error.get("ctx") or {}
    raised = ctx.get("error")
    if isinstance(raised, SettingError):
        return raised.zh
    kind = error["type"]
    if kind == "missing":
        return "缺少此项"
    if kind == "extra_forbidden":
        return "不认识的设置项"
    if kind == "literal_error":
        return f"须为 {str(ctx.get('expected', '')).replace(' or ', ' 或 ')} 之一"
    bounds = {"greater_than_equal": ("ge", "须不小于"), "less_than_equal": ("le", "须不大于"),
              "greater_than": ("gt", "须大于"), "less_than": ("lt", "须小于")}
    if kind in bounds:
        key, words = bounds[kind]
        return f"{words} {ctx.get(key)}"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        return "须为数字"
    if kind in ("bool_parsing", "bool_type"):
        return "须为 true 或 false"
    if kind == "string_type":
        return "须为文本"
    if kind == "list_type":
        return "须为列表"
    return f"取值无效({error['msg'].removeprefix('Value error, ')})"
