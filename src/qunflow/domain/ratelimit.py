"""Token buckets and the platforms' published send limits (PLATFORMS.md). Pure: the caller gives the time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class TokenBucket:
    """`rate` calls per `per` seconds, refilled continuously."""

    rate: float
    per: float
    tokens: float = -1.0
    stamp: datetime | None = None

    def _refill(self, now: datetime) -> None:
        if self.stamp is None or self.tokens < 0:
            self.tokens, self.stamp = self.rate, now
        elapsed = max((now - self.stamp).total_seconds(), 0.0)
        self.tokens = min(self.rate, self.tokens + elapsed * self.rate / self.per)
        self.stamp = max(self.stamp, now)

    def peek(self, now: datetime) -> float:
        """The seconds until a call may go (0: now), taking nothing."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.per / self.rate

    def take(self, now: datetime) -> float:
        """0 when a call may go now (and takes a token), else the seconds to wait."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * self.per / self.rate


# (calls, per seconds) for the whole bot, per group chat and per private chat; from PLATFORMS.md. The
# sandbox mimics Telegram. The workspace setting `rate_limits` overrides any of them per platform.
Limit = tuple[float, float]
PLATFORM_LIMITS: dict[str, dict[str, Limit]] = {
    "sandbox": {"bot": (30, 1), "group": (20, 60), "user": (30, 1)},
    "telegram": {"bot": (30, 1), "group": (20, 60), "user": (1, 1)},
    "slack": {"bot": (50, 1), "group": (1, 1), "user": (1, 1)},
    "discord": {"bot": (50, 1), "group": (5, 5), "user": (5, 5)},
    "feishu": {"bot": (50, 1), "group": (5, 1), "user": (5, 1)},
    "wecom": {"bot": (10_000, 60), "group": (20, 60), "user": (20, 60)},
}
DEFAULT_LIMITS: dict[str, Limit] = {"bot": (10, 1), "group": (1, 1), "user": (1, 1)}


@dataclass
class Limiter:
    """Buckets for the bot and for each chat of a platform: a send needs a token from both."""

    overrides: Mapping[str, Mapping[str, Sequence[float]]] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def limits(self, platform: str) -> dict[str, Limit]:
        chosen = {**DEFAULT_LIMITS, **PLATFORM_LIMITS.get(platform, {})}
        for kind, (calls, per) in self.overrides.get(platform, {}).items():
            chosen[kind] = (float(calls), float(per))
        return chosen

    def wait(self, platform: str, chat: str, *, group: bool, now: datetime) -> float:
        """0 when a send to `chat` may go now (tokens taken), else the seconds until it may."""
        limits = self.limits(platform)
        kind = "group" if group else "user"
        keys = ((platform, limits["bot"]), (f"{platform}:{kind}:{chat}", limits[kind]))
        buckets = [self.buckets.setdefault(key, TokenBucket(*limit)) for key, limit in keys]
        longest = max(bucket.peek(now) for bucket in buckets)
        if longest > 0:
            return longest
        for bucket in buckets:
            bucket.take(now)
        return 0.0


def gcra(tat: datetime | None, now: datetime, limit: Limit) -> tuple[datetime, float]:
    """The generic cell rate algorithm on one stored instant (the bucket's theoretical arrival time).

    Returns the new TAT when a call may go now (wait 0), else the unchanged TAT and the seconds to wait.
    Equivalent to a token bucket of `calls` tokens refilled over `per` seconds, but one value to store,
    so several processes can share it through a database row.
    """
    calls, per = limit
    interval = timedelta(seconds=per / calls)
    burst = interval * calls  # a full bucket: `calls` sends at once
    start = max(tat or now, now)
    allowed_at = start + interval - burst
    if allowed_at > now:
        return tat or now, (allowed_at - now).total_seconds()
    return start + interval, 0.0
