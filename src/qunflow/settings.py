"""One typed settings object: the workspace's `qunflow.toml`, overridden by `QUNFLOW_*` variables."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from qunflow.errors import InvalidInput

SETTINGS_FILE = "qunflow.toml"
SECRET_FILE = ".qunflow-secret"
DEFAULT_ENGAGEMENT = [
    "message", "task_completed", "checkin", "reaction", "poll_vote",
    "order", "booking", "signup", "download", "coupon_redeemed",
]
DEFAULT_CONVERSION = ["order", "booking"]
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Settings(BaseSettings):
    """Everything configurable. Environment variables beat the settings file."""

    model_config = SettingsConfigDict(env_prefix="QUNFLOW_", extra="ignore")

    home: Path = Field(default_factory=Path.cwd)
    database_url: str = ""
    analytics_path: str = ""
    analytics_engine: str = "duckdb"  # or "chdb" (embedded ClickHouse), "clickhouse" (a server)
    # http(s)://user:password@host:8123/database; kept out of repr so the password is never printed.
    clickhouse_url: str = Field(default="", repr=False)
    timezone: str = "Asia/Shanghai"
    engagement_types: list[str] = Field(default_factory=lambda: list(DEFAULT_ENGAGEMENT))
    conversion_types: list[str] = Field(default_factory=lambda: list(DEFAULT_CONVERSION))
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    language: str = "auto"
    # SQLite only. "full" keeps acknowledged writes through a power cut; "normal" (WAL) through a
    # killed process only, and is much faster: the throwaway demo workspace uses it.
    sqlite_synchronous: str = "full"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: QUNFLOW_DATABASE_URL must win over the workspace file.
        return env_settings, init_settings

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_url(cls, value: str) -> str:
        if value:
            clickhouse_target(value)
        return value

    @property
    def clickhouse(self) -> ClickHouseTarget:
        """The ClickHouse server of `analytics_engine = "clickhouse"`."""
        if not self.clickhouse_url:
            raise InvalidInput("analytics_engine = clickhouse needs clickhouse_url (or QUNFLOW_CLICKHOUSE_URL), "
                               "e.g. http://user:password@host:8123/qunflow")
        return clickhouse_target(self.clickhouse_url)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'qunflow.db'}"

    @property
    def analytics_file(self) -> str:
        default = "analytics.chdb" if self.analytics_engine == "chdb" else "analytics.duckdb"
        return self.analytics_path or str(self.home / default)

    def encryption_key(self) -> bytes:
        """The key for personal fields at rest: the setting, or the workspace's secret file."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.home / SECRET_FILE
        if not path.exists():
            raise InvalidInput(f"no secret key: run `qunflow init {self.home}` or set QUNFLOW_SECRET_KEY")
        return path.read_text().strip().encode()


@dataclass(frozen=True)
class ClickHouseTarget:
    """A parsed clickhouse_url. `where` names the server in messages; it never holds the password."""

    secure: bool
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str = "qunflow"

    @property
    def where(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.user}@{self.host}:{self.port}/{self.database}"


def clickhouse_target(url: str) -> ClickHouseTarget:
    """Parse http(s)://user:password@host[:port][/database]; port 8123 (8443 for https), database qunflow."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("clickhouse_url must look like http://user:password@host:8123/qunflow "
                         "(http or https, with a host)")
    try:
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
    except ValueError:
        raise ValueError("clickhouse_url has a port that is not a number") from None
    database = unquote(parts.path.strip("/")) or "qunflow"
    if not IDENTIFIER.fullmatch(database):
        raise ValueError(f"clickhouse_url: the database {database!r} must be letters, digits and _")
    if parts.query or parts.fragment:
        raise ValueError("clickhouse_url takes no ?query or #fragment")
    return ClickHouseTarget(parts.scheme == "https", parts.hostname, port, unquote(parts.username or "default"),
                            unquote(parts.password or ""), database)


def resolve_home(workspace: str | Path | None = None) -> Path:
    """The workspace: --workspace, else QUNFLOW_HOME, else the current directory."""
    chosen = workspace or os.environ.get("QUNFLOW_HOME") or Path.cwd()
    return Path(chosen).expanduser().resolve()


def load_settings(workspace: str | Path | None = None, **overrides: Any) -> Settings:
    home = resolve_home(workspace)
    values: dict[str, Any] = {}
    path = home / SETTINGS_FILE
    if path.exists():
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8")).get("qunflow", {})
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{path}: not valid TOML: {exc}") from exc
    values.update(overrides)
    values["home"] = home
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: setting {where}: {first['msg']}") from exc


def write_settings_file(home: Path, timezone: str = "Asia/Shanghai") -> Path:
    """Write a commented default settings file (kept if one exists) and the secret key file."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / SETTINGS_FILE
    if not path.exists():
        path.write_text(
            "# qunflow workspace settings. QUNFLOW_<NAME> environment variables override them.\n"
            "[qunflow]\n"
            "# Empty: a SQLite file in this folder. For PostgreSQL:\n"
            '# database_url = "postgresql+psycopg://user@host:5432/qunflow"\n'
            'database_url = ""\n'
            "# Calendar days for every metric are counted in this zone.\n"
            f'timezone = "{timezone}"\n'
            'public_url = "http://127.0.0.1:8000"\n'
            '# "auto" follows the browser; or "zh" / "en".\n'
            'language = "auto"\n',
            encoding="utf-8",
        )
    secret = home / SECRET_FILE
    if not secret.exists():
        from cryptography.fernet import Fernet

        secret.write_bytes(Fernet.generate_key())
        secret.chmod(0o600)
    return path


def new_token() -> str:
    return "qf_" + secrets.token_urlsafe(32)
