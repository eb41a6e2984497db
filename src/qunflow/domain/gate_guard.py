"""The gate's guard (issue 11): who the client is, when traffic looks automated, and the coupon cap. Pure.

The rate limits themselves are GCRA buckets (domain/ratelimit.py `gcra`), kept in the state database by
services/gate_guard.py so several processes share them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Browsers driven by a program, and HTTP libraries, say so in their user agent more often than not.
AUTOMATED_AGENT = re.compile(
    r"headless|phantomjs|selenium|webdriver|puppeteer|playwright|python-|httpx|aiohttp|curl/|wget/|"
    r"go-http-client|okhttp|java/|libwww|scrapy|node-fetch|axios/|bot\b|spider|crawler", re.IGNORECASE)


def looks_automated_agent(user_agent: str | None) -> bool:
    """True for no user agent at all, or one that names a headless browser or an HTTP library."""
    agent = (user_agent or "").strip()
    return not agent or bool(AUTOMATED_AGENT.search(agent))


def _networks(trusted: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in trusted]


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().split("%")[0])
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[str],
                   trust_any: bool = False) -> str | None:
    """The client's IP. X-Forwarded-For counts only when the peer is a trusted proxy; then its hops are read
    from the right (the nearest proxy appends last) and the first hop that is not a trusted proxy is the
    client: addresses further left were written by the client itself and prove nothing.
    `trust_any` (the old `trust_proxy` setting) trusts every peer and hop: the header's first address."""
    networks = _networks(trusted)

    def is_trusted(value: str | None) -> bool:
        found = _address(value or "")
        return trust_any or (found is not None and any(found in net for net in networks))

    if not is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop if _address(hop) is not None else peer
    return hops[0] if hops else peer


@dataclass(frozen=True)
class PassCheck:
    """What the guard decided about a gate pass: refused for `retry_after` seconds, or let through
    with or without a proof-of-work first."""

    retry_after: float = 0.0
    challenge: bool = False
    why: tuple[str, ...] = ()  # the hints that asked for the challenge (for tests and logs: no personal data)

    @property
    def refused(self) -> bool:
        return self.retry_after > 0


def challenge_hints(*, has_visitor_cookie: bool, user_agent: str | None, ip_over: bool,
                    device_over: bool) -> tuple[str, ...]:
    """Why a pass looks automated (empty: it does not): a post that never loaded the page, a headless or
    library user agent, or more passes from one IP or device than a person makes."""
    hints = []
    if not has_visitor_cookie:
        hints.append("no_cookie")
    if looks_automated_agent(user_agent):
        hints.append("agent")
    if ip_over:
        hints.append("ip_rate")
    if device_over:
        hints.append("device_rate")
    return tuple(hints)


def coupon_allowed(device_passes: int, ip_passes: int, per_device: int, per_ip: int) -> bool:
    """Whether one more pass earns a new-member coupon, given the passes with a coupon already counted in
    the last 24 hours from the same device and from the same IP."""
    return device_passes < per_device and ip_passes < per_ip


def retry_header(seconds: float) -> str:
    """Retry-After in whole seconds, never 0 (a client would retry at once)."""
    return str(max(1, int(seconds) + (seconds % 1 > 0)))
