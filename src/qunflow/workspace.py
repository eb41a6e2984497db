"""A workspace: the settings, the state database and the analytics store of one community."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from qunflow.errors import InvalidInput
from qunflow.settings import (
    SETTINGS_FILE,
    Settings,
    load_settings,
    resolve_home,
    write_settings_file,
)
from qunflow.store.db import SCHEMA_HEAD, make_engine, migrate, schema_revision


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Workspace:
    settings: Settings
    clock: Callable[[], datetime] = utc_now  # naive UTC; the demo swaps in a simulated clock
    cache: dict[str, Any] = field(default_factory=dict)  # per-process objects (connectors)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.db_url, sqlite_synchronous=self.settings.sqlite_synchronous)

    @property
    def home(self) -> Path:
        return self.settings.home

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def init_workspace(directory: str | Path | None = None, *, timezone: str = "Asia/Shanghai") -> Workspace:
    """Create (or bring up to date) a workspace: settings file, secret key, migrated database."""
    home = resolve_home(directory)
    try:
        write_settings_file(home, timezone=timezone)
    except OSError as exc:  # a file in the way, no permission, read-only disk
        raise InvalidInput(f"cannot create the workspace in {home}: {exc.strerror or exc}") from exc
    workspace = Workspace(load_settings(home))
    migrate(workspace.engine)
    return workspace


def open_workspace(directory: str | Path | None = None) -> Workspace:
    """Open an initialised workspace; a clear error if there is none."""
    home = resolve_home(directory)
    if not (home / SETTINGS_FILE).exists():
        raise InvalidInput(f"{home} is not a qunflow workspace: run `qunflow init {home}` first")
    workspace = Workspace(load_settings(home))
    if schema_revision(workspace.engine) != SCHEMA_HEAD:  # new, or made by an older qunflow
        migrate(workspace.engine)
    return workspace
