"""Who may do what: roles, permissions (which are also the API token scopes) and group scopes.

One vocabulary serves the console and the API: a role grants a set of permissions, a token carries a set
of scopes taken from the same names. A user or token may also be limited to some groups; then it sees
only the members, inbox items and numbers of those groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# name -> what it allows (shown by `qunflow token create --help` and in the docs)
PERMISSIONS: dict[str, str] = {
    "metrics:read": "metrics, the dashboard, reports, entry points and leaderboards (no personal data)",
    "members:read": "member records and their personal data, personal exports",
    "members:erase": "erase a member's personal data",
    "members:consent": "record a member's marketing consent given elsewhere (a shop's checkout)",
    "inbox:use": "the advisor inbox: read, assign, mark done",
    "events:write": "send events (orders, bookings) to /api/v1/events",
    "coupons:redeem": "look up and redeem coupons (a shop's till)",
    "coupons:manage": "issue, send and reverse coupons",
    "rewards:decide": "the reward review queue: approve, reject, claw back",
    "automation:manage": "playbooks and dead letters: retry, skip",
    "config:write": "set-up: entry points, groups, the sandbox",
    "users:manage": "console users and API tokens",
    "audit:read": "the audit log",
}

ROLES: dict[str, frozenset[str]] = {
    "owner": frozenset(PERMISSIONS),
    "operator": frozenset({"metrics:read", "members:read", "members:consent", "inbox:use", "events:write",
                           "coupons:redeem", "coupons:manage", "rewards:decide", "automation:manage", "config:write"}),
    "advisor": frozenset({"inbox:use", "members:read"}),
    "analyst": frozenset({"metrics:read"}),
}

# What an API token may carry: everything but managing people and reading the audit log.
TOKEN_SCOPES: frozenset[str] = frozenset(PERMISSIONS) - {"users:manage", "audit:read"}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a console user, an API token, or the command line."""

    kind: str  # user, token, cli
    name: str
    permissions: frozenset[str]
    groups: frozenset[str] | None = None  # None: every group
    role: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def sees_group(self, group_key: str | None) -> bool:
        """Whether a record of this group is in scope (a record of no group only for the unlimited)."""
        return self.groups is None or (group_key is not None and group_key in self.groups)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    if not chosen:
        raise ValueError(f"give at least one --scope: {', '.join(sorted(TOKEN_SCOPES))}")
    unknown = [s for s in chosen if s not in TOKEN_SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}: choose from {', '.join(sorted(TOKEN_SCOPES))}")
    return chosen


def parse_groups(text: str | None) -> list[str] | None:
    """'G1,G2' -> ['G1', 'G2']; empty -> None (every group)."""
    if not text or not text.strip():
        return None
    groups = sorted({g.strip() for g in text.split(",") if g.strip()})
    return groups or None


MIN_PASSWORD = 10


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise ValueError("a password has at most 1024 characters")
    return password
