"""A workspace: the settings, the state database and the analytics store of one community.

`Workspace` is also the composition root: the typed, lazily built parts every service uses (the
encryption key, the send limiter, the connector of each platform), built once per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet
from sqlalchemy import Engine

from qunflow.connectors.base import Connector, Host
from qunflow.connectors.registry import load_platform_settings, platforms, spec_of
from qunflow.engine.limits import MemoryLimiter, SendLimiter, SharedLimiter
from qunflow.errors import InvalidInput
from qunflow.settings import (
    SETTINGS_FILE,
    Settings,
    load_settings,
    platform_sections,
    resolve_home,
    write_settings_file,
)
from qunflow.store import event_indexes
from qunflow.store.db import SCHEMA_HEAD, make_engine, migrate, schema_revision

if TYPE_CHECKING:
    from qunflow.connectors.sandbox import SandboxPlatform


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Workspace:
    settings: Settings
    clock: Callable[[], datetime] = utc_now  # naive UTC; the demo swaps in a simulated clock
    connectors: dict[str, Connector] = field(default_factory=dict)  # built on first use (tests may put their own)
    # The compiled keyword rules and the versions they were built from (services.keyword_rules).
    keyword_matcher: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def local_today(self) -> date:
        """Today in the workspace's time zone, by its clock."""
        return self.clock().replace(tzinfo=UTC).astimezone(self.settings.zone).date()

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.db_url, sqlite_synchronous=self.settings.sqlite_synchronous)

    @cached_property
    def secret(self) -> bytes:
        """The workspace key (settings.encryption_key), read once: every welcome signs a personal link."""
        return self.settings.encryption_key()

    @cached_property
    def fernet(self) -> Fernet:
        """Encrypts personal fields at rest (and queued message texts) with the workspace key."""
        return Fernet(self.secret)

    @cached_property
    def signal_key(self) -> bytes:
        """A key of its own for the fraud checks' signal hashes, derived from the workspace secret."""
        return hmac.new(self.secret, b"qunflow join signals v1", hashlib.sha256).digest()

    @cached_property
    def limiter(self) -> SendLimiter:
        """Send limits: in this process on SQLite (one process), shared through PostgreSQL otherwise."""
        if self.engine.dialect.name == "postgresql":
            return SharedLimiter(self.engine, self.settings.rate_limits)
        return MemoryLimiter(self.settings.rate_limits)

    def connector(self, platform: str) -> Connector:
        """The connector of a registered platform, built from its `[platforms.<name>]` settings."""
        with self._lock:
            found = self.connectors.get(platform)
            if found is None:
                spec = spec_of(platform)
                section = platform_sections(self.home).get(platform, {})
                found = self.connectors[platform] = spec.build(load_platform_settings(platform, section), self.host)
            return found

    def connected_platforms(self) -> list[str]:
        """The platforms this workspace has set up: the sandbox, and each with a settings section."""
        sections = platform_sections(self.home)
        return [name for name in platforms() if name == "sandbox" or name in sections]

    @cached_property
    def host(self) -> Host:
        return Host(public_url=self.settings.public_url.rstrip("/"), home=self.home, clock=lambda: self.clock(),
                    secret=self.settings.platform_webhook_secret(), inbound=self._inbound)

    def _inbound(self, platform: str, headers: Mapping[str, str], body: bytes) -> None:
        # The one place the root reaches up: in-process platforms hand their updates to the dispatcher.
        from qunflow.services.inbound import receive

        receive(self, platform, "POST", {}, headers, body)

    @property
    def sandbox(self) -> SandboxPlatform:
        """The built-in sandbox platform (its people, chats and messages)."""
        return self.connector("sandbox").world  # type: ignore[attr-defined, no-any-return]

    @property
    def home(self) -> Path:
        return self.settings.home

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


# The workspace's own files hold personal data or secrets: readable by their owner only (P8).
PRIVATE_FILES = ("qunflow.toml", ".qunflow-secret", ".qunflow-webhook-secret", "qunflow.db", "sandbox.db",
                 "analytics.")


def make_private(home: Path) -> None:
    """The workspace folder 0700, its databases (with their -wal/-shm files), analytics store, settings and
    secret 0600. Files made later are private too: `qunflow` runs with umask 077 (cli.main)."""
    for path in (home, *(p for p in home.iterdir() if p.name.startswith(PRIVATE_FILES))):
        with contextlib.suppress(OSError):  # not ours to change (a shared or read-only folder): leave it
            path.chmod(0o700 if path.is_dir() else 0o600)


def init_workspace(directory: str | Path | None = None, *, timezone: str = "Asia/Shanghai") -> Workspace:
    """Create (or bring up to date) a workspace: settings file, secret key, migrated database."""
    home = resolve_home(directory)
    try:
        write_settings_file(home, timezone=timezone)
    except OSError as exc:  # a file in the way, no permission, read-only disk
        raise InvalidInput(f"cannot create the workspace in {home}: {exc.strerror or exc}",
                           zh=f"无法在 {home} 创建工作区:{exc.strerror or exc}") from exc
    workspace = Workspace(load_settings(home))
    migrate(workspace.engine)
    make_private(home)
    return workspace


def after_upgrade(workspace: Workspace, before: str | None) -> None:
    """Data work a migration cannot do itself because it needs the workspace's keys."""
    if before is not None and before < NAME_INDEX_REVISION:
        from rich.console import Console
        from rich.progress import Progress

        from qunflow.services.privacy import reindex_names

        # the names of members made before the index (its keyed hashes need the workspace's key)
        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("indexing member names / 建立成员姓名索引", total=None)
            reindex_names(workspace, lambda done, total: bar.update(task, completed=done, total=total))


NAME_INDEX_REVISION = "0020"


def open_workspace(directory: str | Path | None = None) -> Workspace:
    """Open an initialised workspace; a clear error if there is none."""
    home = resolve_home(directory)
    if not (home / SETTINGS_FILE).exists():
        raise InvalidInput(f"{home} is not a qunflow workspace: run `qunflow init {home}` first",
                           zh=f"{home} 不是 qunflow 工作区:请先运行 `qunflow init {home}`")
    workspace = Workspace(load_settings(home))
    before = schema_revision(workspace.engine)
    if before != SCHEMA_HEAD:  # new, or made by an older qunflow
        migrate(workspace.engine)
        after_upgrade(workspace, before)
    event_indexes.restore(workspace.engine)  # an interrupted bulk import left them out
    make_private(home)  # a workspace made by an older qunflow had world-readable files
    return workspace
