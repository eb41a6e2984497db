"""Referral statistics (issue 5 part 5): invites, joined and qualified invitees and rewards, per member,
campaign or channel, and the leaderboard built from them.

Every number is one GROUP BY in the database (SQLite and PostgreSQL alike):
- invites: distinct visitors who opened a member's referral link (`landing_view` events with a referrer),
- joined: referrals (one per invitee, the first join through a referral),
- qualified: referrals whose invitee did the first qualifying action (`qualified_at` set),
- paid / paid_value / review: rewards resting on those referrals, by the rewarded member (member view)
  or by the referral's campaign or channel,
- high_risk / medium_risk: referrals the fraud checks scored high or medium (high_risk_qualified: the
  high-risk ones that qualified).
The period (`start`..`end`, local days of the workspace, both included) applies to the referral's join
time, and to the visit time for invites.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, and_, case, func, select

from qunflow.errors import InvalidInput
from qunflow.store.tables import events, referrals, rewards
from qunflow.workspace import Workspace

By = Literal["member", "campaign", "channel"]
BY: tuple[By, ...] = ("member", "campaign", "channel")
NONE_KEY = "(none)"  # a referral without campaign or channel


@dataclass
class ReferralStats:
    key: str
    invites: int = 0
    joined: int = 0
    qualified: int = 0
    paid: int = 0
    paid_value: float = 0.0
    review: int = 0
    rank: int = 0
    high_risk: int = 0
    high_risk_qualified: int = 0
    medium_risk: int = 0

    @property
    def risk(self) -> str | None:
        """The worst fraud level among the row's referrals (None when none is flagged)."""
        return "high" if self.high_risk else "medium" if self.medium_risk else None

    def as_json(self, by: str) -> dict[str, Any]:
        row = asdict(self)
        row[by] = row.pop("key")
        row["risk"] = self.risk
        return row


def period_bounds(ws: Workspace, start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Local days (both included) as naive UTC bounds [low, high)."""
    if start and end and start > end:
        raise InvalidInput(f"from ({start}) is after to ({end})", zh=f"开始日期 {start} 晚于结束日期 {end}")

    def utc(day: date) -> datetime:
        return datetime.combine(day, time(), ws.settings.zone).astimezone(UTC).replace(tzinfo=None)

    return (utc(start) if start else None, utc(end + timedelta(days=1)) if end else None)


def _within(column: Any, low: datetime | None, high: datetime | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if low is not None:
        out.append(column >= low)
    if high is not None:
        out.append(column < high)
    return out


def referral_stats(ws: Workspace, *, by: str = "member", start: date | None = None,
                   end: date | None = None) -> list[ReferralStats]:
    """One row per member, campaign or channel with any referral activity in the period, unordered."""
    if by not in BY:
        raise InvalidInput(f"by must be one of {', '.join(BY)}, got {by!r}",
                           zh=f"by 须为以下之一:{', '.join(BY)};收到的是 {by!r}")
    low, high = period_bounds(ws, start, end)
    r, w, e = referrals.c, rewards.c, events.c
    ref_key = {"member": r.inviter_id, "campaign": r.campaign, "channel": r.channel}[by]
    visit_key = {"member": e.referrer_id, "campaign": e.campaign, "channel": e.channel}[by]
    reward_key = {"member": w.member_id, "campaign": r.campaign, "channel": r.channel}[by]
    found: dict[str, ReferralStats] = {}

    def row(key: str | None) -> ReferralStats:
        name = key if key is not None else NONE_KEY
        return found.setdefault(name, ReferralStats(name))

    with ws.engine.connect() as conn:
        high_risk = r.fraud_level == "high"
        for key, joined, qualified, flagged, flagged_qualified, medium in conn.execute(
                select(ref_key, func.count(), func.count(r.qualified_at), func.sum(case((high_risk, 1), else_=0)),
                       func.sum(case((and_(high_risk, r.qualified_at.is_not(None)), 1), else_=0)),
                       func.sum(case((r.fraud_level == "medium", 1), else_=0)))
                .where(*_within(r.joined_at, low, high)).group_by(ref_key)):
            stats = row(key)
            stats.joined, stats.qualified = int(joined), int(qualified)
            stats.high_risk, stats.high_risk_qualified = int(flagged or 0), int(flagged_qualified or 0)
            stats.medium_risk = int(medium or 0)
        visitors = func.count(func.distinct(func.coalesce(e.visitor_id, e.member_id)))
        for key, invites in conn.execute(
                select(visit_key, visitors)
                .where(e.type == "landing_view", e.referrer_id.is_not(None), *_within(e.ts, low, high))
                .group_by(visit_key)):
            row(key).invites = int(invites)
        _reward_counts(conn, reward_key, low, high, row)
    return list(found.values())


def _reward_counts(conn: Connection, key: Any, low: datetime | None, high: datetime | None, row: Any) -> None:
    r, w = referrals.c, rewards.c
    paid = w.status == "paid"
    query = (select(key, func.sum(case((paid, 1), else_=0)), func.sum(case((paid, w.value), else_=0)),
                    func.sum(case((w.status == "review", 1), else_=0)))
             .select_from(rewards.join(referrals, and_(w.referral_id == r.id)))
             .where(w.status.in_(("paid", "review")), *_within(r.joined_at, low, high)).group_by(key))
    for name, paid_count, paid_value, review in conn.execute(query):
        stats = row(name)
        stats.paid, stats.paid_value, stats.review = int(paid_count or 0), float(paid_value or 0), int(review or 0)


def rank(rows: list[ReferralStats], limit: int | None = None) -> list[ReferralStats]:
    """The leaderboard order: most qualified invitees, then most joined, then the key (stable on ties);
    rows without a joined invitee are left out. Ranks are 1, 2, 3... in that order.

    Invitees the fraud checks scored high do not count toward the order: a board that ranks by them pays
    the fraud the checks exist to stop with the top place. They still show in the row's numbers, and the
    console marks the row, so an operator sees them and decides in the review queue. Medium-risk
    invitees (often a shared office network) count."""
    if limit is not None and not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be between 1 and 1000, got {limit}",
                           zh=f"limit 须在 1 到 1000 之间,当前为 {limit}")
    ordered = sorted((s for s in rows if s.joined), key=lambda s: (
        -(s.qualified - s.high_risk_qualified), -(s.joined - s.high_risk), s.key))
    for place, stats in enumerate(ordered, 1):
        stats.rank = place
    return ordered[:limit] if limit else ordered


def leaderboard(ws: Workspace, *, by: str = "member", start: date | None = None, end: date | None = None,
                limit: int | None = 20) -> list[ReferralStats]:
    return rank(referral_stats(ws, by=by, start=start, end=end), limit)



__all__ = ["BY", "ReferralStats", "leaderboard", "period_bounds", "rank", "referral_stats"]
