"""One typed settings object: the workspace's `qunflow.toml`, overridden by `QUNFLOW_*` variables."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from qunflow.domain.consent import DEFAULT_SUBSCRIBE, DEFAULT_UNSUBSCRIBE
from qunflow.domain.engagement import LevelRules
from qunflow.domain.pools import PoolRule, default_pools
from qunflow.domain.sync import SyncTarget
from qunflow.errors import InvalidInput

SETTINGS_FILE = "qunflow.toml"
SECRET_FILE = ".qunflow-secret"
WEBHOOK_SECRET_FILE = ".qunflow-webhook-secret"  # signs platform webhooks; never the encryption key
DEFAULT_ENGAGEMENT = [
    "message", "task_completed", "checkin", "reaction", "poll_vote",
    "order", "booking", "signup", "download", "coupon_redeemed",
]
DEFAULT_CONVERSION = ["order", "booking"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvFirstSettings(BaseSettings):
    """Settings whose environment variables beat the values read from the settings file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: e.g. QUNFLOW_DATABASE_URL must win over the workspace file.
        return env_settings, init_settings


class GateLimits(BaseModel):
    """Abuse limits at the public gate (docs/gate.md): [calls, seconds] buckets per client IP and per device.

    The IP limits are generous on purpose: a venue's Wi-Fi (or a carrier's NAT) puts hundreds of people
    behind one address. Past `challenge_*` rates a pass needs a proof-of-work, which a browser solves by
    itself in well under a second; past the hard limits it is refused with 429 and Retry-After.
    """

    model_config = ConfigDict(extra="forbid")

    ip_passes: tuple[float, float] = (300, 600)  # 300 passes at once from one IP, then 30 a minute
    device_passes: tuple[float, float] = (5, 3600)
    ip_views: tuple[float, float] = (1200, 600)  # landing, referral and personal-link pages
    challenge_ip_passes: tuple[float, float] = (20, 600)
    challenge_device_passes: tuple[float, float] = (2, 600)
    challenge_difficulty: int = Field(default=50_000, ge=1_000, le=10_000_000)  # the largest number to try
    coupons_per_device_day: int = Field(default=2, ge=0)  # new-member coupons per device in any 24 hours
    coupons_per_ip_day: int = Field(default=100, ge=0)

    @field_validator("ip_passes", "device_passes", "ip_views", "challenge_ip_passes", "challenge_device_passes")
    @classmethod
    def _positive(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] < 1 or value[1] <= 0:
            raise ValueError(f"{list(value)} must be [calls, seconds] with at least 1 call in more than 0 seconds")
        return value


class Settings(EnvFirstSettings):
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
    # Cohort metrics from per-member facts kept as events ship (analytics/facts.py); off: always from events.
    metrics_facts: bool = True
    # Experiments (docs/experiments.md): below this many mature members in any variant the verdict is
    # "not enough data"; the sample-size estimate is for this relative minimum detectable effect.
    experiment_min_mature: int = Field(100, ge=1, le=10_000_000)
    experiment_mde: float = Field(0.1, gt=0, le=10)
    public_url: str = "http://127.0.0.1:8000"
    # Other host names this install answers for (besides public_url's, localhost and 127.0.0.1): a request
    # naming any other Host is refused (DNS rebinding), see docs/access.md.
    allowed_hosts: list[str] = Field(default_factory=list)
    secret_key: str = ""
    webhook_secret: str = Field(default="", repr=False)  # empty: the workspace's webhook secret file
    language: str = "auto"
    # SQLite only. "full" keeps acknowledged writes through a power cut; "normal" (WAL) through a
    # killed process only, and is much faster: the throwaway demo workspace uses it.
    sqlite_synchronous: str = "full"
    # The weekly report posted by `qunflow serve`: to this webhook (empty: off), on this local weekday
    # and time (workspace time zone), in this language. See docs/reports.md.
    report_webhook: str = ""
    report_day: str = "monday"
    report_time: str = "09:00"
    report_lang: str = "zh"
    # Automation (issue 4): no marketing messages in the quiet hours (local, may span midnight) and
    # at most this many marketing messages per member per local day; alerts also go to this webhook.
    quiet_hours: str = Field("22:00-08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
    marketing_daily_cap: int = Field(2, ge=0, le=100)
    staff_webhook: str = ""
    # Consent (P8, docs/privacy.md): a message that is just one of these words withdraws (or grants) the
    # marketing consent, in a group or privately to the bot. The first word is the one texts tell people.
    unsubscribe_keywords: list[str] = Field(default_factory=lambda: list(DEFAULT_UNSUBSCRIBE), min_length=1)
    subscribe_keywords: list[str] = Field(default_factory=lambda: list(DEFAULT_SUBSCRIBE), min_length=1)
    # Send limits per platform, over the known defaults (domain/ratelimit.py), e.g.
    # [qunflow.rate_limits.telegram] group = [20, 60]   (20 messages per 60 s per group)
    rate_limits: dict[str, dict[str, tuple[float, float]]] = Field(default_factory=dict)
    # Referral links and posters (docs/incentives.md): the entry point /r/<code> lands on (empty: the
    # member's own), a CJK font file (empty: found on the system) and the poster artwork (empty: the
    # campaign's posters/<campaign>.png|jpg in the workspace, else a generated background).
    referral_entry: str = ""
    poster_font: str = ""
    poster_artwork: str = ""
    # Fraud checks on referrals (issue 5; docs/incentives.md "Fraud checks"): a burst is fraud_burst_count
    # invitees of one inviter within fraud_burst_minutes; a first order sooner than fraud_fast_conversion_minutes
    # after joining is too fast; no activity fraud_inactive_days after joining is never_active; this many soft
    # reasons make a referral high. Behind a reverse proxy list it in trusted_proxies (below).
    fraud_burst_count: int = Field(default=5, ge=2)
    fraud_burst_minutes: int = Field(default=10, ge=1)
    fraud_fast_conversion_minutes: int = Field(default=10, ge=0)
    fraud_inactive_days: int = Field(default=3, ge=1)
    fraud_soft_for_high: int = Field(default=2, ge=1)
    fraud_virtual_phone_prefixes: list[str] = Field(default_factory=lambda: ["162", "165", "167", "170", "171"])
    trust_proxy: bool = False  # deprecated: trusts X-Forwarded-For from any peer; use trusted_proxies
    # Reverse proxies (IPs or networks) whose X-Forwarded-For names the client; from no one else (docs/gate.md).
    trusted_proxies: list[str] = Field(default_factory=list)
    gate: GateLimits = Field(default_factory=GateLimits)
    # Engagement levels (issue 13, docs/levels.md): `[qunflow.levels]` thresholds of domain/engagement.py.
    levels: LevelRules = Field(default_factory=LevelRules)
    # Pools (issue 13, docs/levels.md "Pools"): `[qunflow.pools.<name>]` tag = "..." or level = "...", days = N.
    pools: dict[str, PoolRule] = Field(default_factory=default_pools)
    # A gate pass routed to a tier with no group with room tries the tiers after it in this order, then
    # those before it (nearest first); failing all, the waitlist (docs/gate.md "No visitor lost").
    tier_fallback: list[str] = Field(default_factory=lambda: ["core", "interest", "newbie", "broadcast"])
    # Outbound sync (issue 13, docs/sync.md): `[qunflow.sync.<name>]` url, events, secret_env: signed webhooks.
    sync: dict[str, SyncTarget] = Field(default_factory=dict)

    @field_validator("sync")
    @classmethod
    def _sync_names(cls, value: dict[str, SyncTarget]) -> dict[str, SyncTarget]:
        bad = [name for name in value if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", name)]
        if bad:
            raise ValueError(f"sync subscription name {bad[0]!r} must be lowercase letters, digits, _ or - "
                             "(at most 64), starting with a letter")
        return value

    def sync_secret(self, name: str) -> str:
        """The signing secret of subscription `name`, from the environment variable its secret_env names."""
        target = self.sync[name]
        secret = os.environ.get(target.secret_env, "")
        if not secret:
            raise InvalidInput(f"sync {name}: the environment variable {target.secret_env} (its secret_env) is not "
                               "set; set it to the secret the receiver checks signatures with",
                               zh=f"同步 {name}：环境变量 {target.secret_env}（secret_env）未设置；"
                                  "请设为接收方用于校验签名的密钥")
        return secret

    @field_validator("tier_fallback")
    @classmethod
    def _known_tiers(cls, value: list[str]) -> list[str]:
        from qunflow.domain.entry import TIERS

        bad = [t for t in value if t not in TIERS]
        if bad or len(set(value)) != len(value):
            raise ValueError(f"tier_fallback lists each of {', '.join(TIERS)} at most once; got {value}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network such as 10.0.0.0/8") from None
        return [item.strip() for item in value]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
        return value

    @field_validator("report_webhook", "staff_webhook")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        value = value.strip()
        parsed = urlsplit(value)
        if value and (parsed.scheme not in ("http", "https") or not parsed.hostname):
            raise ValueError(f"{value!r} must be an http(s) URL such as https://chat.example.com/hook, or empty (off)")
        return value

    @field_validator("report_day")
    @classmethod
    def _weekday(cls, value: str) -> str:
        if value.strip().lower() not in WEEKDAYS:
            raise ValueError(f"{value!r} must be a weekday name: {', '.join(WEEKDAYS)}")
        return value.strip().lower()

    @field_validator("report_time")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value.strip()):
            raise ValueError(f"{value!r} must be a 24-hour time like 09:00")
        return value.strip()

    @field_validator("report_lang")
    @classmethod
    def _report_language(cls, value: str) -> str:
        if value not in ("zh", "en"):
            raise ValueError(f"{value!r} must be zh or en")
        return value

    @property
    def report_weekday(self) -> int:
        """Monday is 0, as in date.weekday()."""
        return WEEKDAYS.index(self.report_day)

    @property
    def report_clock(self) -> time:
        return time.fromisoformat(self.report_time)
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
                               "e.g. http://user:password@host:8123/qunflow",
                               zh="analytics_engine = clickhouse 需要 clickhouse_url(或 QUNFLOW_CLICKHOUSE_URL),"
                                  "例如 http://user:password@host:8123/qunflow")
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
            raise InvalidInput(f"no secret key: run `qunflow init {self.home}` or set QUNFLOW_SECRET_KEY",
                               zh=f"没有密钥:请运行 `qunflow init {self.home}` 或设置 QUNFLOW_SECRET_KEY")
        return path.read_text().strip().encode()

    def platform_webhook_secret(self) -> str:
        """The secret that signs and checks platform webhooks (the sandbox's): the setting, or the workspace's
        webhook secret file, made on first use for a workspace from before it existed."""
        if self.webhook_secret:
            return self.webhook_secret
        return ensure_webhook_secret(self.home)


def ensure_webhook_secret(home: Path) -> str:
    """The workspace's webhook secret, written (owner-only) if there is none yet."""
    path = home / WEBHOOK_SECRET_FILE
    if not path.exists():
        draft = home / f"{WEBHOOK_SECRET_FILE}.{secrets.token_hex(4)}"
        draft.touch(0o600)
        draft.write_text(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)  # whole or not at all; two processes starting at once keep the first one's
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


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
            raise InvalidInput(f"{path}: not valid TOML: {exc}", zh=f"{path}:不是有效的 TOML:{exc}") from exc
    values.update(overrides)
    values["home"] = home
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = f"QUNFLOW_{where.upper()}" if f"QUNFLOW_{where.upper()}" in os.environ else f"{path}: setting {where}"
        message = first["msg"].removeprefix("Value error, ")
        source_zh = source if source.startswith("QUNFLOW_") else f"{path}:设置项 {where}"
        raise InvalidInput(f"{source}: {message}", zh=f"{source_zh}:取值无效({message})") from exc


def platform_sections(home: Path) -> dict[str, dict[str, Any]]:
    """The `[platforms.<name>]` sections of the workspace's settings file (raw; the registry types them)."""
    path = home / SETTINGS_FILE
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: not valid TOML: {exc}", zh=f"{path}:不是有效的 TOML:{exc}") from exc
    sections = data.get("platforms", {})
    return {name: dict(values) for name, values in sections.items() if isinstance(values, dict)}


def save_platform_section(home: Path, name: str, values: dict[str, Any]) -> Path:
    """Write `[platforms.<name>]` into the settings file, keeping its comments and other sections.
    The file holds credentials from then on, so it is made readable by its owner only."""
    import tomlkit

    path = home / SETTINGS_FILE
    document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    platforms = document.get("platforms")
    if platforms is None:
        platforms = tomlkit.table(is_super_table=True)
        document["platforms"] = platforms
    section = tomlkit.table()
    for key, value in values.items():
        if value is not None:
            section[key] = value
    platforms[name] = section  # type: ignore[index]
    path.write_text(tomlkit.dumps(document), encoding="utf-8")
    path.chmod(0o600)
    return path


def write_settings_file(home: Path, timezone: str = "Asia/Shanghai") -> Path:
    """Write a commented default settings file (kept if one exists), the secret key and webhook secret files."""
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
            'language = "auto"\n'
            "# `qunflow serve` posts last week's summary to this webhook (empty: off) every report_day at\n"
            "# report_time in the time zone above; see docs/reports.md.\n"
            'report_webhook = ""\n'
            'report_day = "monday"\n'
            'report_time = "09:00"\n'
            'report_lang = "zh"\n'
            "# Playbooks: no marketing messages in the quiet hours (local), at most this many a member a day;\n"
            "# staff alerts also go to this webhook. Send limits: [qunflow.rate_limits.telegram] group = [20, 60]\n"
            'quiet_hours = "22:00-08:00"\n'
            "marketing_daily_cap = 2\n"
            'staff_webhook = ""\n'
            "# A message that is just one of these words stops (or starts) marketing messages; docs/privacy.md.\n"
            'unsubscribe_keywords = ["退订", "STOP", "unsubscribe"]\n'
            'subscribe_keywords = ["订阅", "SUBSCRIBE"]\n'
            "# Behind a reverse proxy, its address(es), so X-Forwarded-For names each client; gate limits\n"
            "# per IP and device, the challenge and the coupon cap: [qunflow.gate], see docs/gate.md.\n"
            "trusted_proxies = []\n"
            "# A gate pass whose tier has no group with room tries the tiers after it, then those before it;\n"
            "# failing all, the waitlist (docs/gate.md). The default:\n"
            '# tier_fallback = ["core", "interest", "newbie", "broadcast"]\n',
            encoding="utf-8",
        )
    secret = home / SECRET_FILE
    if not secret.exists():
        from cryptography.fernet import Fernet

        secret.write_bytes(Fernet.generate_key())
        secret.chmod(0o600)
    ensure_webhook_secret(home)
    return path


def new_token() -> str:
    return "qf_" + secrets.token_urlsafe(32)
