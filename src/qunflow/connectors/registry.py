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

from qunflow.connectors.base import Capabilities, Connector, Host
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
        raise InvalidInput(f"unknown platform {name!r} (available: {', '.join(platforms())})")
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
        raise InvalidInput(f"[platforms.{name}] {where}: {message}") from exc
