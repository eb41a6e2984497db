"""The live code (C2): send each person to a group of their tier that still has room."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LOW_ROOM_SHARE = 0.1
# The workspace's default fallback order (settings.tier_fallback): a pass routed to a tier with no room tries
# the tiers after it in this order, then those before it, nearest first (see `fallback_tiers`).
DEFAULT_FALLBACK = ("core", "interest", "newbie", "broadcast")


@dataclass(frozen=True)
class GroupSlot:
    id: int
    key: str
    tier: str
    capacity: int
    occupied: int  # members, plus join requests in flight (services/catalog.py JOIN_HOLD)
    active: bool = True
    pending: int = 0  # recent gate passes that have not joined yet: they steer, they never fill

    @property
    def room(self) -> int:
        return max(self.capacity - self.occupied, 0)


def choose_group(groups: Iterable[GroupSlot], tier: str) -> GroupSlot | None:
    """The first active group of the tier (in creation order) with room, or None when all are full.

    Only joins (and join requests) take room, so gate passes alone can never fill a tier. Passes still
    waiting to join steer the choice: the first group with room for them too, else the one with most room,
    so a burst of passes spreads over the groups instead of all racing for the first one's last seats."""
    candidates = [g for g in sorted(groups, key=lambda g: g.id) if g.active and g.tier == tier and g.room > 0]
    spare = next((g for g in candidates if g.room > g.pending), None)
    return spare or max(candidates, key=lambda g: g.room - g.pending, default=None)


def fallback_tiers(tier: str, order: Sequence[str]) -> list[str]:
    """The tiers to try for a pass routed to `tier`: itself, then the tiers after it in `order`, then those
    before it, nearest first. A tier not in `order` has no fallback.

    >>> fallback_tiers("interest", ("core", "interest", "newbie", "broadcast"))
    ['interest', 'newbie', 'broadcast', 'core']
    """
    if tier not in order:
        return [tier]
    i = list(order).index(tier)
    return [tier, *order[i + 1:], *reversed(order[:i])]


@dataclass(frozen=True)
class Placement:
    """Where a pass goes: the group (None: the waitlist), the tier it is in, and the tier the gate chose."""

    group: GroupSlot | None
    tier: str
    routed: str

    @property
    def fell_back(self) -> bool:
        return self.group is None or self.tier != self.routed


def place(groups: Sequence[GroupSlot], tier: str, order: Sequence[str]) -> Placement:
    """The live code with the fallback order: the first tier along `fallback_tiers` with a group with room."""
    for candidate in fallback_tiers(tier, order):
        group = choose_group(groups, candidate)
        if group is not None:
            return Placement(group, candidate, tier)
    return Placement(None, tier, tier)


@dataclass(frozen=True)
class TierRoom:
    tier: str
    groups: int
    capacity: int
    room: int

    @property
    def status(self) -> str:
        if self.room == 0:
            return "full"
        return "low" if self.room < self.capacity * LOW_ROOM_SHARE else "ok"


def room_by_tier(groups: Sequence[GroupSlot]) -> list[TierRoom]:
    """Room left per tier, for the console's alert when a tier runs out."""
    tiers = sorted({g.tier for g in groups})
    result = []
    for tier in tiers:
        active = [g for g in groups if g.tier == tier and g.active]
        result.append(TierRoom(tier, len(active), sum(g.capacity for g in active),
                               sum(g.room for g in active)))
    return result
