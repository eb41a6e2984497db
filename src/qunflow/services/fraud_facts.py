"""The facts behind the fraud checks, gathered for many referrals at once in a handful of set-based queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from qunflow.domain.fraud import Circle, FraudRules, ReferralFacts, Signals, ring_of, rings
from qunflow.store.tables import coupons, events, join_signals, referrals

CHUNK = 900  # ids per IN (...) list: well inside every database's limit on bound parameters


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _signals(conn: Connection, member_ids: Iterable[str]) -> dict[str, Signals]:
    found: dict[str, Signals] = {}
    s = join_signals.c
    for part in _chunks(member_ids):
        for row in conn.execute(select(s.member_id, s.device, s.ip, s.ip_ua, s.phone, s.disposable)
                                .where(s.member_id.in_(part))):
            found[row.member_id] = Signals(row.device, row.ip, row.ip_ua, row.phone, bool(row.disposable))
    return found


def _invitees_of(conn: Connection, inviters: Iterable[str]) -> dict[str, list[tuple[str, datetime]]]:
    found: dict[str, list[tuple[str, datetime]]] = {}
    r = referrals.c
    for part in _chunks(inviters):
        for row in conn.execute(select(r.inviter_id, r.invitee_id, r.joined_at).where(r.inviter_id.in_(part))):
            found.setdefault(row.inviter_id, []).append((row.invitee_id, row.joined_at))
    return found


def _last_activity(conn: Connection, member_ids: Iterable[str], types: tuple[str, ...]) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    e = events.c
    for part in _chunks(member_ids):
        for member_id, last in conn.execute(select(e.member_id, func.max(e.ts))
                                            .where(e.member_id.in_(part), e.type.in_(types))
                                            .group_by(e.member_id)):
            found[member_id] = last
    return found


def _coupon_pairs(conn: Connection, inviters: Iterable[str], invitees: set[str]) -> set[tuple[str, str]]:
    """(owner, redeemed_by) of the inviters' coupons redeemed by one of these invitees."""
    found: set[tuple[str, str]] = set()
    c = coupons.c
    for part in _chunks(inviters):
        for row in conn.execute(select(c.member_id, c.redeemed_by).where(c.member_id.in_(part),
                                                                         c.redeemed_by.is_not(None))):
            if row.redeemed_by in invitees:
                found.add((row.member_id, row.redeemed_by))
    return found


def _clusters(conn: Connection, rows: list[Any]) -> dict[str, frozenset[str]]:
    """Closed clusters through these referrals. A cycle through inviter -> invitee runs up the chain of the
    inviter's inviters (each member has at most one) back to the invitee, so the chains up from the inviters
    hold every one: one recursive query (UNION stops on a cycle) per chunk of inviters."""
    inviter_of = {row.invitee_id: row.inviter_id for row in rows}
    r = referrals.c
    for part in _chunks({row.inviter_id for row in rows}):
        up = select(r.invitee_id, r.inviter_id).where(r.invitee_id.in_(part)).cte("up", recursive=True)
        up = up.union(select(r.invitee_id, r.inviter_id).join(up, r.invitee_id == up.c.inviter_id))
        inviter_of.update({row.invitee_id: row.inviter_id for row in conn.execute(select(up))})
    return rings((inviter, invitee) for invitee, inviter in inviter_of.items())


def gather(conn: Connection, referral_ids: Iterable[int], now: datetime, rules: FraudRules) -> list[ReferralFacts]:
    """The facts of each referral, from seven queries whatever their number (per chunk of 900 ids)."""
    rows: list[Any] = []
    for part in _chunks(referral_ids):
        rows.extend(conn.execute(select(referrals).where(referrals.c.id.in_(part))).all())
    if not rows:
        return []
    inviters = {row.inviter_id for row in rows}
    invitees = {row.invitee_id for row in rows}
    invitees_by = _invitees_of(conn, inviters)
    signals = _signals(conn, inviters | {m for items in invitees_by.values() for m, _ in items})
    last = _last_activity(conn, invitees, rules.active_types)
    used = _coupon_pairs(conn, inviters, invitees)
    clusters = _clusters(conn, rows)
    circles = {inviter: Circle.of((at, signals.get(m)) for m, at in members)
               for inviter, members in invitees_by.items()}
    facts = []
    for row in rows:
        seen = last.get(row.invitee_id)
        facts.append(ReferralFacts(
            referral_id=row.id, inviter_id=row.inviter_id, invitee_id=row.invitee_id, joined_at=row.joined_at,
            now=now, qualified_at=row.qualified_at, inviter=signals.get(row.inviter_id),
            invitee=signals.get(row.invitee_id), circle=circles[row.inviter_id],
            active=seen is not None and seen >= row.joined_at,
            inviter_coupon_used=(row.inviter_id, row.invitee_id) in used,
            ring=ring_of(clusters, row.inviter_id, row.invitee_id)))
    return facts
